/**
 * loadBalancerSourceRanges and the externalTrafficPolicy: Local short-circuit with real traffic.
 *   client  192.168.1.1 ─┐                       ┌─ pod1 10.244.1.2 (this node)
 *   outside 192.168.2.1 ─┴─ node 192.168.1.10 ───┴─ pod2 10.244.2.2 (another node, by its slice)
 */
import type { ChildProcess } from 'node:child_process';
import { addRoute, addVethPair, createNetns, deleteNetns, execIn } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import type { ProxyComponent } from '../../netproxy/index';
import { NODE, service, slice } from './fixtures';
import { probeFrom, serve, startNodeProxy } from './lab';

const itest = integrationTest({ root: true, commands: ['nft', 'ip', 'nsenter'] });

const names: Record<string, string> = {};
const servers: ChildProcess[] = [];
let proxy: ProxyComponent | undefined;

itest.before(async () => {
  for (const n of ['client', 'outside', 'node', 'pod1', 'pod2']) names[n] = await createNetns();
  await addVethPair({ ns: names.client!, address: '192.168.1.1/24' }, { ns: names.node!, address: '192.168.1.10/24' });
  await addVethPair({ ns: names.outside!, address: '192.168.2.1/24' }, { ns: names.node!, address: '192.168.2.10/24' });
  await addVethPair({ ns: names.pod1!, address: '10.244.1.2/24' }, { ns: names.node!, address: '10.244.1.1/24' });
  await addVethPair({ ns: names.pod2!, address: '10.244.2.2/24' }, { ns: names.node!, address: '10.244.2.1/24' });
  await addRoute(names.client!, 'default', '192.168.1.10');
  await addRoute(names.outside!, 'default', '192.168.2.10');
  await addRoute(names.pod1!, 'default', '10.244.1.1');
  await addRoute(names.pod2!, 'default', '10.244.2.1');
  await execIn(names.node!, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  for (const pod of ['pod1', 'pod2']) servers.push(await serve(names[pod]!, pod));
  const eps = [{ ip: '10.244.1.2', node: NODE }, { ip: '10.244.2.2', node: 'node-b' }];
  const lb = (ip: string) => ({ status: { loadBalancer: { ingress: [{ ip }] } } });
  const services = [
    service('ranges', '10.96.0.1', [{ port: 80, nodePort: 30080 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.1.0/24'] }, lb('203.0.113.50')),
    service('local', '10.96.0.2', [{ port: 80, nodePort: 30081 }], { type: 'LoadBalancer', externalTrafficPolicy: 'Local' }, lb('203.0.113.60')),
  ];
  const slices = [slice('ranges', eps, [{ port: 8080 }]), slice('local', eps, [{ port: 8080 }])];
  proxy = await startNodeProxy(names.node!, { services, slices }, ['192.168.1.10', '192.168.2.10']);
});

itest.after.always(async () => {
  await proxy?.stop();
  for (const s of servers) s.kill('SIGKILL');
  for (const ns of Object.values(names)) await deleteNetns(ns).catch(() => undefined);
});

const probe = (from: string, host: string, port: number, count: number): Promise<string[]> => probeFrom(names[from]!, 'tcp', host, port, count);

itest.serial('nftables kernel: loadBalancerSourceRanges admit the range and drop the rest at the LoadBalancer IP', async (t) => {
  t.true(proxy!.health().healthy, JSON.stringify(proxy!.health()));
  t.deepEqual([...new Set(await probe('client', '203.0.113.50', 80, 24))].sort(), ['pod1', 'pod2']);
  t.deepEqual(await probe('outside', '203.0.113.50', 80, 2), ['ERR:TIMEOUT', 'ERR:TIMEOUT']);
  // The NodePort of the same Service is not covered by the ranges (as in kube-proxy).
  t.deepEqual([...new Set(await probe('outside', '192.168.2.10', 30080, 24))].sort(), ['pod1', 'pod2']);
});

itest.serial('nftables kernel: a pod reaching an externalTrafficPolicy Local LoadBalancer IP may reach every endpoint', async (t) => {
  t.deepEqual([...new Set(await probe('client', '203.0.113.60', 80, 12))], ['pod1'], 'from outside: the local endpoint only');
  t.deepEqual([...new Set(await probe('pod2', '203.0.113.60', 80, 20))].sort(), ['pod1', 'pod2'], 'from a pod: every endpoint');
});
