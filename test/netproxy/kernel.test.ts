/**
 * Kernel-level tests: real TCP and UDP traffic through the rules netproxy programs into a node
 * namespace. Topology (all namespaces created here, never the host's):
 *   client 192.168.1.1 ──veth── node 192.168.1.10 ──veth── pod1 10.244.1.2 (this node)
 *                                     └────────────veth── pod2 10.244.2.2 (another node, by its slice)
 */
import { execFileSync } from 'node:child_process';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed } from '../harness/feed';
import { netnsPath } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { createCommandRunner } from '../../netproxy/exec';
import { createProxyComponent, type ProxyComponent } from '../../netproxy/index';
import type { ProxyMode } from '../../netproxy/config';
import { NODE, slice } from './fixtures';
import { recordingLogger, testConfig } from './helpers';
import { createLab, destroyLab, fixtures, P, POD2, probe, type Lab } from './lab';

const itest = integrationTest({ root: true, commands: ['nft', 'iptables-restore', 'ip', 'nsenter', 'conntrack'] });

for (const mode of ['nftables'] as ProxyMode[]) {
  let lab: Lab;
  let proxy: ProxyComponent;
  const feeds = { services: createMemoryFeed<Service>(), endpointSlices: createMemoryFeed<EndpointSlice>() };
  let hostRulesBefore = '';

  itest.serial.before(async () => {
    hostRulesBefore = execFileSync('nft', ['list', 'tables']).toString();
    lab = await createLab();
    const f = fixtures();
    for (const s of f.services) feeds.services.upsert(s);
    for (const s of f.slices) feeds.endpointSlices.upsert(s);
    proxy = createProxyComponent({
      input: feeds,
      config: testConfig({ mode, minSyncPeriodMs: 50, healthzBindAddress: '127.0.0.1:0', metricsBindAddress: '127.0.0.1:0' }),
      logger: recordingLogger().logger,
      nodeName: NODE,
      nodeIPs: ['192.168.1.10'],
      exec: createCommandRunner(['nsenter', `--net=${netnsPath(lab.node)}`, '--']),
      healthCheckBindHost: '127.0.0.1',
    });
    await proxy.start();
    await proxy.flush();
  });

  itest.after.always(async () => {
    await proxy?.stop();
    if (lab) await destroyLab(lab);
  });

  itest.serial(`${mode} kernel: ClusterIP TCP spreads over both endpoints`, async (t) => {
    t.true(proxy.health().healthy, JSON.stringify(proxy.health()));
    const answers = await probe(lab, 'tcp', '10.96.0.1', 80, 30);
    t.deepEqual([...new Set(answers)].sort(), ['pod1', 'pod2']);
  });

  itest.serial(`${mode} kernel: ClusterIP UDP`, async (t) => {
    const answers = await probe(lab, 'udp', '10.96.0.1', 53, 20);
    t.deepEqual([...new Set(answers)].sort(), ['pod1', 'pod2']);
  });

  itest.serial(`${mode} kernel: NodePort, externalIP and LoadBalancer IP reach the endpoints`, async (t) => {
    for (const [host, port] of [['192.168.1.10', 30080], ['203.0.113.100', 80], ['203.0.113.200', 80]] as const) {
      const answers = await probe(lab, 'tcp', host, port, 20);
      t.deepEqual([...new Set(answers)].sort(), ['pod1', 'pod2'], `${host}:${port}`);
    }
    const udp = await probe(lab, 'udp', '192.168.1.10', 30053, 10);
    t.true(udp.every((a) => a === 'pod1' || a === 'pod2'), udp.join());
  });

  itest.serial(`${mode} kernel: externalTrafficPolicy Local reaches only the local endpoint`, async (t) => {
    const answers = await probe(lab, 'tcp', '192.168.1.10', 30081, 20);
    t.deepEqual([...new Set(answers)], ['pod1']);
  });

  itest.serial(`${mode} kernel: ClientIP affinity sticks`, async (t) => {
    const answers = await probe(lab, 'tcp', '10.96.0.3', 80, 15);
    t.is(new Set(answers).size, 1, answers.join());
    t.true(answers[0] === 'pod1' || answers[0] === 'pod2');
  });

  itest.serial(`${mode} kernel: a service without endpoints rejects (connection from the node)`, async (t) => {
    const answers = await probe(lab, 'tcp', '10.96.0.4', 80, 2, lab.node);
    t.deepEqual(answers, ['ERR:ECONNREFUSED', 'ERR:ECONNREFUSED']);
  });

  itest.serial(`${mode} kernel: endpoint changes are followed within a second (TCP and UDP)`, async (t) => {
    t.deepEqual([...new Set(await probe(lab, 'tcp', '10.96.0.5', 80, 5))], ['pod1']);
    t.deepEqual([...new Set(await probe(lab, 'udp', '10.96.0.5', 53, 3))], ['pod1']);
    const started = Date.now();
    feeds.endpointSlices.upsert(slice('moving', [POD2], P));
    let answers: string[] = [];
    while (Date.now() - started < 1000) {
      answers = await probe(lab, 'tcp', '10.96.0.5', 80, 3);
      if (answers.every((a) => a === 'pod2')) break;
    }
    t.true(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    t.deepEqual([...new Set(answers)], ['pod2']);
    await proxy.flush();
    t.deepEqual([...new Set(await probe(lab, 'udp', '10.96.0.5', 53, 3))], ['pod2']);
  });

  itest.serial(`${mode} kernel: the host namespace's rules are untouched`, (t) => {
    t.is(execFileSync('nft', ['list', 'tables']).toString(), hostRulesBefore);
    t.false(hostRulesBefore.includes('keelson'));
  });
}
