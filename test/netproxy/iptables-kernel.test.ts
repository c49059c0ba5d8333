/**
 * Kernel-level tests of the iptables backend, once per iptables variant (nft and legacy), each in
 * namespaces of its own. Real TCP and UDP traffic:
 *   client 192.168.1.1 ──veth── node 192.168.1.10 ──veth── pod1 10.244.1.2 (this node)
 *                                     └────────────veth── pod2 10.244.2.2 (another node, by its slice)
 * The variant is found the way the backend finds it on a host: each node namespace first gets one
 * foreign rule in its variant (which must survive everything, cleanup included).
 */
import { execFileSync } from 'node:child_process';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed } from '../harness/feed';
import { execIn, netnsPath } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { createCommandRunner } from '../../netproxy/exec';
import { cleanup, createProxyComponent, type ProxyComponent } from '../../netproxy/index';
import { NODE, slice } from './fixtures';
import { recordingLogger, testConfig } from './helpers';
import { createLab, destroyLab, fixtures, P, POD1, POD2, probe, type Lab } from './lab';

const itest = integrationTest({
  root: true,
  commands: ['iptables-nft-restore', 'iptables-legacy-restore', 'iptables-nft-save', 'iptables-legacy-save', 'ip', 'nsenter', 'conntrack'],
});
/** The host's own rules, read-only: rules and user chains of both variants. */
function hostRules(): string {
  return ['iptables-nft-save', 'iptables-legacy-save', 'ip6tables-nft-save', 'ip6tables-legacy-save']
    .map((bin) => {
      try {
        return execFileSync(bin, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n').filter((l) => l.startsWith('-A') || (l.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(l))).join('\n');
      } catch {
        return `${bin}: unavailable`;
      }
    })
    .join('\n---\n');
}


const FOREIGN = { nft: ['-t', 'filter', '-A', 'INPUT', '-s', '198.51.100.7/32', '-j', 'ACCEPT'], legacy: ['-t', 'filter', '-N', 'KEELSON-TEST-FOREIGN'] } as const;
let hostBefore = '';

itest.serial.before(() => {
  hostBefore = hostRules();
});

for (const variant of ['nft', 'legacy'] as const) {
  const other = variant === 'nft' ? 'legacy' : 'nft';
  let lab: Lab;
  let proxy: ProxyComponent;
  const log = recordingLogger();
  const feeds = { services: createMemoryFeed<Service>(), endpointSlices: createMemoryFeed<EndpointSlice>() };
  const inNode = (bin: string, args: string[] = []) => execIn(lab.node, bin, args);
  const save = async (v: 'nft' | 'legacy') => (await inNode(`iptables-${v}-save`)).stdout;

  itest.serial.before(async () => {
    lab = await createLab();
    await inNode(`iptables-${variant}`, [...FOREIGN[variant]]);
    const f = fixtures();
    for (const s of f.services) feeds.services.upsert(s);
    for (const s of f.slices) feeds.endpointSlices.upsert(s);
    proxy = createProxyComponent({
      input: feeds,
      config: testConfig({ mode: 'iptables', minSyncPeriodMs: 50, healthzBindAddress: '', metricsBindAddress: '' }),
      logger: log.logger,
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

  itest.serial(`iptables-${variant} kernel: the host's variant is detected and only it holds the rules`, async (t) => {
    t.true(proxy.health().healthy, JSON.stringify(proxy.health()));
    t.true(log.lines.some((l) => l.variant === variant && String(l.msg).includes(`variant ${variant} chosen`)));
    t.regex(await save(variant), /-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    t.regex(await save(variant), /:KUBE-SVC-\w{16} /);
    t.false((await save(other)).includes('KUBE-'));
  });

  itest.serial(`iptables-${variant} kernel: ClusterIP TCP and UDP spread over both endpoints`, async (t) => {
    t.deepEqual([...new Set(await probe(lab, 'tcp', '10.96.0.1', 80, 30))].sort(), ['pod1', 'pod2']);
    t.deepEqual([...new Set(await probe(lab, 'udp', '10.96.0.1', 53, 20))].sort(), ['pod1', 'pod2']);
  });

  itest.serial(`iptables-${variant} kernel: NodePort, externalIP and LoadBalancer IP reach the endpoints`, async (t) => {
    for (const [host, port] of [['192.168.1.10', 30080], ['203.0.113.100', 80], ['203.0.113.200', 80]] as const) {
      t.deepEqual([...new Set(await probe(lab, 'tcp', host, port, 20))].sort(), ['pod1', 'pod2'], `${host}:${port}`);
    }
    const udp = await probe(lab, 'udp', '192.168.1.10', 30053, 10);
    t.true(udp.every((a) => a === 'pod1' || a === 'pod2'), udp.join());
  });

  itest.serial(`iptables-${variant} kernel: externalTrafficPolicy Local reaches only the local endpoint`, async (t) => {
    t.deepEqual([...new Set(await probe(lab, 'tcp', '192.168.1.10', 30081, 20))], ['pod1']);
  });

  itest.serial(`iptables-${variant} kernel: NodePorts answer on 127.0.0.1 for the node itself (localhostNodePorts)`, async (t) => {
    t.is((await inNode('sysctl', ['-n', 'net.ipv4.conf.all.route_localnet'])).stdout.trim(), '1');
    t.deepEqual([...new Set(await probe(lab, 'tcp', '127.0.0.1', 30080, 20, lab.node))].sort(), ['pod1', 'pod2']);
  });

  itest.serial(`iptables-${variant} kernel: ClientIP affinity sticks`, async (t) => {
    const answers = await probe(lab, 'tcp', '10.96.0.3', 80, 15);
    t.is(new Set(answers).size, 1, answers.join());
    t.true(answers[0] === 'pod1' || answers[0] === 'pod2');
  });

  itest.serial(`iptables-${variant} kernel: a service without endpoints rejects (connection from the node)`, async (t) => {
    t.deepEqual(await probe(lab, 'tcp', '10.96.0.4', 80, 2, lab.node), ['ERR:ECONNREFUSED', 'ERR:ECONNREFUSED']);
  });

  itest.serial(`iptables-${variant} kernel: endpoint changes are followed within a second (TCP and UDP)`, async (t) => {
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

  itest.serial(`iptables-${variant} kernel: after someone flushes the tables, the next sync restores everything`, async (t) => {
    // What a firewall reload does: every rule and user chain of nat and mangle gone.
    await inNode(`iptables-${variant}`, ['-t', 'nat', '-F']);
    await inNode(`iptables-${variant}`, ['-t', 'nat', '-X']);
    await inNode(`iptables-${variant}`, ['-t', 'mangle', '-X']);
    t.deepEqual(await probe(lab, 'tcp', '10.96.0.1', 80, 1), ['ERR:TIMEOUT'], 'the flush broke the service');
    feeds.endpointSlices.upsert(slice('moving', [POD1, POD2], P));
    await proxy.flush();
    t.true(log.lines.some((l) => String(l.msg).includes('canary')), 'the canary told');
    t.deepEqual([...new Set(await probe(lab, 'tcp', '10.96.0.1', 80, 20))].sort(), ['pod1', 'pod2']);
    t.deepEqual([...new Set(await probe(lab, 'tcp', '10.96.0.5', 80, 20))].sort(), ['pod1', 'pod2']);
  });

  itest.serial(`iptables-${variant} kernel: cleanup removes everything netproxy owns and nothing else`, async (t) => {
    await proxy.stop();
    await cleanup('iptables', { exec: createCommandRunner(['nsenter', `--net=${netnsPath(lab.node)}`, '--']), logger: log.logger });
    for (const v of ['nft', 'legacy'] as const) t.false((await save(v)).includes('KUBE-'), `${v}: ${await save(v)}`);
    const rest = await save(variant);
    t.true(variant === 'nft' ? rest.includes('-A INPUT -s 198.51.100.7/32 -j ACCEPT') : rest.includes(':KEELSON-TEST-FOREIGN'), rest);
  });
}

itest.serial.after('iptables kernel: the host namespace rules are untouched', (t) => {
  t.is(hostRules(), hostBefore);
  t.false(hostBefore.includes('KUBE-PROXY-CANARY'));
});
