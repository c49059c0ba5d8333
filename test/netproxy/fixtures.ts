/** Services and EndpointSlices covering every service kind and policy, and the packet-flow table. */
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import type { FlowResult, Packet } from './tracer/packet';

export const NODE = 'node-a';
export const NODE_IP = '192.168.1.10';
export const NODE_IP6 = 'fd01::10';
export const CLIENT = '192.168.1.1';
export const POD_CIDR = '10.244.0.0/16';

type PortSpec = { name?: string; port: number; protocol?: string; nodePort?: number; targetPort?: number };

export function service(name: string, clusterIP: string | string[], ports: PortSpec[], extra: Partial<Service['spec']> = {}, more: Partial<Service> = {}): Service {
  const ips = Array.isArray(clusterIP) ? clusterIP : [clusterIP];
  return {
    metadata: { namespace: 'default', name },
    spec: { type: 'ClusterIP', clusterIP: ips[0], clusterIPs: ips, ports: ports as never, ...extra },
    ...more,
  };
}

export interface Ep {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zone?: string;
}

export function slice(svc: string, eps: Ep[], ports: { name?: string; port: number; protocol?: string }[], suffix = 'a', family: 'IPv4' | 'IPv6' = 'IPv4'): EndpointSlice {
  return {
    metadata: { namespace: 'default', name: `${svc}-${suffix}`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: family,
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.zone ? { hints: { forZones: [{ name: e.zone }] } } : {}),
    })),
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' })),
  };
}

const lb = (ip: string): Partial<Service> => ({ status: { loadBalancer: { ingress: [{ ip }] } } });
const LOCAL1 = { ip: '10.244.1.2', node: NODE };
const REMOTE1 = { ip: '10.244.2.2', node: 'node-b' };

export const services: Service[] = [
  service('web', '10.96.0.1', [{ port: 80 }]),
  service('dns', '10.96.0.2', [{ name: 'dns', port: 53, protocol: 'UDP' }]),
  service('np', '10.96.0.3', [{ port: 80, nodePort: 30080 }], { type: 'NodePort' }),
  service('np-local', '10.96.0.4', [{ port: 80, nodePort: 30081 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
  service('ext', '10.96.0.5', [{ port: 80 }], { externalIPs: ['192.168.1.100'] }),
  service('lb', '10.96.0.6', [{ port: 80, nodePort: 30082 }], { type: 'LoadBalancer' }, { status: { loadBalancer: { ingress: [{ ip: '192.168.1.200' }] } } }),
  service('empty', '10.96.0.7', [{ port: 80 }]),
  service('itp-local', '10.96.0.8', [{ port: 80 }], { internalTrafficPolicy: 'Local' }),
  service('terminating', '10.96.0.9', [{ port: 80 }]),
  service('notready', '10.96.0.10', [{ port: 80 }]),
  service('sctp', '10.96.0.11', [{ port: 9999, protocol: 'SCTP' }]),
  service('dual', ['10.96.0.12', 'fd00::12'], [{ port: 80 }], { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' }),
  service('sticky', '10.96.0.13', [{ port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }),
  service('zoned', '10.96.0.14', [{ port: 80 }], {}, { metadata: { namespace: 'default', name: 'zoned', annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } } }),
  service('lb-local', '10.96.0.15', [{ port: 80, nodePort: 30083 }], { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }, { status: { loadBalancer: { ingress: [{ ip: '192.168.1.201' }] } } }),
  service('np-local-none', '10.96.0.16', [{ port: 80, nodePort: 30084 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
  service('multi', '10.96.0.17', [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }]),
  // loadBalancerSourceRanges
  service('lb-ranges', '10.96.1.1', [{ port: 80, nodePort: 30090 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.1.0/30', '172.16.0.0/12'] }, lb('192.168.1.210')),
  service('lb-ranges-v6only', '10.96.1.2', [{ port: 80, nodePort: 30091 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['fd99::/64'] }, lb('192.168.1.211')),
  service('lb-ranges-node', '10.96.1.3', [{ port: 80 }], { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, loadBalancerSourceRanges: ['192.168.1.0/24'] }, lb('192.168.1.212')),
  // externalTrafficPolicy: Local short-circuit
  service('ext-local', '10.96.1.4', [{ port: 80 }], { externalIPs: ['192.168.1.120'], externalTrafficPolicy: 'Local' }),
  service('sticky-local', '10.96.1.5', [{ port: 80, nodePort: 30092 }], { type: 'NodePort', externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP' }),
  service('both-local', '10.96.1.6', [{ port: 80, nodePort: 30093 }], { type: 'NodePort', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' }),
  service('both-local-ep', '10.96.1.7', [{ port: 80, nodePort: 30094 }], { type: 'NodePort', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' }),
];

const p80 = [{ port: 8080 }];
export const slices: EndpointSlice[] = [
  slice('web', [LOCAL1, REMOTE1], p80),
  slice('dns', [{ ip: '10.244.1.3', node: NODE }], [{ name: 'dns', port: 53, protocol: 'UDP' }]),
  slice('np', [LOCAL1, REMOTE1], p80),
  slice('np-local', [{ ip: '10.244.1.4', node: NODE }, { ip: '10.244.2.4', node: 'node-b' }], p80),
  slice('ext', [LOCAL1, REMOTE1], p80),
  slice('lb', [LOCAL1, REMOTE1], p80),
  slice('itp-local', [REMOTE1], p80),
  slice('terminating', [{ ip: '10.244.1.5', node: NODE, ready: false, serving: true, terminating: true }, { ip: '10.244.2.5', node: 'node-b', ready: false, serving: false, terminating: true }], p80),
  slice('notready', [{ ip: '10.244.1.6', node: NODE, ready: false, serving: false }], p80),
  slice('sctp', [LOCAL1], [{ port: 9999, protocol: 'SCTP' }]),
  slice('dual', [LOCAL1], p80),
  slice('dual', [{ ip: 'fd00:244::2', node: NODE }], p80, 'b', 'IPv6'),
  slice('sticky', [LOCAL1, REMOTE1], p80),
  slice('zoned', [{ ip: '10.244.1.7', node: NODE, zone: 'zone-a' }, { ip: '10.244.2.7', node: 'node-b', zone: 'zone-b' }], p80),
  slice('lb-local', [{ ip: '10.244.1.8', node: NODE }, { ip: '10.244.2.8', node: 'node-b' }], p80),
  slice('np-local-none', [REMOTE1], p80),
  slice('multi', [LOCAL1], [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }]),
  slice('lb-ranges', [LOCAL1, REMOTE1], p80),
  slice('lb-ranges-v6only', [LOCAL1], p80),
  slice('lb-ranges-node', [LOCAL1], p80),
  slice('ext-local', [{ ip: '10.244.1.9', node: NODE }, { ip: '10.244.2.9', node: 'node-b' }], p80),
  slice('sticky-local', [{ ip: '10.244.2.10', node: 'node-b' }], p80),
  slice('both-local', [{ ip: '10.244.2.11', node: 'node-b' }], p80),
  slice('both-local-ep', [{ ip: '10.244.1.12', node: NODE }, { ip: '10.244.2.12', node: 'node-b' }], p80),
];

export interface FlowCase {
  name: string;
  pkt: Packet;
  expect: FlowResult;
}

const tcp = (src: string, dst: string, port: number, fromNode = false): Packet => ({ src, dst, port, proto: 'tcp', ...(fromNode ? { fromNode } : {}) });
const both = ['10.244.1.2:8080', '10.244.2.2:8080'];
const POD = '10.244.1.50';

export const flowCases: FlowCase[] = [
  { name: 'ClusterIP from a pod: both endpoints, no masquerade', pkt: tcp(POD, '10.96.0.1', 80), expect: { endpoints: both, masquerade: false, verdict: 'accept' } },
  { name: 'ClusterIP from outside the pod CIDR: masquerade', pkt: tcp(CLIENT, '10.96.0.1', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'ClusterIP from the node itself', pkt: tcp(NODE_IP, '10.96.0.1', 80, true), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'ClusterIP wrong port is not touched', pkt: tcp(POD, '10.96.0.1', 81), expect: { endpoints: [], verdict: 'accept' } },
  { name: 'unknown address is not touched', pkt: tcp(POD, '10.96.0.99', 80), expect: { endpoints: [], verdict: 'accept' } },
  { name: 'UDP ClusterIP', pkt: { src: POD, dst: '10.96.0.2', port: 53, proto: 'udp' }, expect: { endpoints: ['10.244.1.3:53'], masquerade: false, verdict: 'accept' } },
  { name: 'UDP to a TCP-only service port is not touched', pkt: { src: POD, dst: '10.96.0.1', port: 80, proto: 'udp' }, expect: { endpoints: [], verdict: 'accept' } },
  { name: 'SCTP ClusterIP', pkt: { src: POD, dst: '10.96.0.11', port: 9999, proto: 'sctp' }, expect: { endpoints: ['10.244.1.2:9999'], masquerade: false, verdict: 'accept' } },
  { name: 'multi-port: second port maps to its own target', pkt: { src: POD, dst: '10.96.0.17', port: 53, proto: 'udp' }, expect: { endpoints: ['10.244.1.2:5353'], masquerade: false, verdict: 'accept' } },
  { name: 'NodePort ETP Cluster: all endpoints, masquerade', pkt: tcp(CLIENT, NODE_IP, 30080), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'NodePort from the node itself', pkt: tcp(NODE_IP, NODE_IP, 30080, true), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'NodePort on a non-node address is not touched', pkt: tcp(CLIENT, '192.168.1.55', 30080), expect: { endpoints: [], verdict: 'accept' } },
  // No NodePorts on localhost (upstream's nftables mode); iptables mode differs: localhostNodePorts.
  { name: 'NodePort on 127.0.0.1 from the node is not touched', pkt: tcp('127.0.0.1', '127.0.0.1', 30080, true), expect: { endpoints: [], verdict: 'accept' } },
  { name: 'NodePort ETP Local: local endpoint only, no masquerade', pkt: tcp(CLIENT, NODE_IP, 30081), expect: { endpoints: ['10.244.1.4:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ClusterIP of an ETP Local service: all endpoints', pkt: tcp(POD, '10.96.0.4', 80), expect: { endpoints: ['10.244.1.4:8080', '10.244.2.4:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'NodePort ETP Local without local endpoints: drop', pkt: tcp(CLIENT, NODE_IP, 30084), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'externalIP: all endpoints, masquerade', pkt: tcp(CLIENT, '192.168.1.100', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'LoadBalancer IP', pkt: tcp(CLIENT, '192.168.1.200', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'LoadBalancer NodePort', pkt: tcp(CLIENT, NODE_IP, 30082), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'LoadBalancer IP ETP Local: local endpoint, no masquerade', pkt: tcp(CLIENT, '192.168.1.201', 80), expect: { endpoints: ['10.244.1.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'no endpoints: reject', pkt: tcp(POD, '10.96.0.7', 80), expect: { endpoints: [], verdict: 'reject' } },
  { name: 'no endpoints, from the node: reject', pkt: tcp(NODE_IP, '10.96.0.7', 80, true), expect: { endpoints: [], verdict: 'reject' } },
  { name: 'ITP Local without local endpoints: drop', pkt: tcp(POD, '10.96.0.8', 80), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'only serving-terminating endpoints: used', pkt: tcp(POD, '10.96.0.9', 80), expect: { endpoints: ['10.244.1.5:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'only not-ready endpoints: reject', pkt: tcp(POD, '10.96.0.10', 80), expect: { endpoints: [], verdict: 'reject' } },
  { name: 'dual stack IPv4', pkt: tcp(POD, '10.96.0.12', 80), expect: { endpoints: ['10.244.1.2:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'dual stack IPv6', pkt: tcp('fd00:244::50', 'fd00::12', 80), expect: { endpoints: ['[fd00:244::2]:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ClientIP affinity: first connection may reach any endpoint', pkt: tcp(POD, '10.96.0.13', 80), expect: { endpoints: both, masquerade: false, verdict: 'accept' } },
  { name: 'topology hints: same-zone endpoint only', pkt: tcp(POD, '10.96.0.14', 80), expect: { endpoints: ['10.244.1.7:8080'], masquerade: false, verdict: 'accept' } },
  // loadBalancerSourceRanges: traffic to the LoadBalancer IP from outside the ranges is dropped
  // (before DNAT); the ClusterIP and the NodePort of the same Service stay open.
  { name: 'LB IP from inside the source ranges', pkt: tcp(CLIENT, '192.168.1.210', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'LB IP from the second source range', pkt: tcp('172.20.0.5', '192.168.1.210', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'LB IP from outside the source ranges: drop', pkt: tcp('192.168.1.77', '192.168.1.210', 80), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'LB IP from a pod outside the source ranges: drop', pkt: tcp(POD, '192.168.1.210', 80), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'LB IP from the node, outside the source ranges: drop', pkt: tcp(NODE_IP, '192.168.1.210', 80, true), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'source ranges: other port of the LB IP is not touched', pkt: tcp('192.168.1.77', '192.168.1.210', 81), expect: { endpoints: [], verdict: 'accept' } },
  { name: 'source ranges: the ClusterIP stays open', pkt: tcp('192.168.1.77', '10.96.1.1', 80), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'source ranges: the NodePort stays open', pkt: tcp('192.168.1.77', NODE_IP, 30090), expect: { endpoints: both, masquerade: true, verdict: 'accept' } },
  { name: 'source ranges of the other family only: LB IP open', pkt: tcp('192.168.1.77', '192.168.1.211', 80), expect: { endpoints: ['10.244.1.2:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'node inside the ranges: LB IP as source (LB hairpin) allowed', pkt: tcp('192.168.1.212', '192.168.1.212', 80), expect: { endpoints: ['10.244.1.2:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'node inside the ranges: others outside still dropped', pkt: tcp('10.1.1.1', '192.168.1.212', 80), expect: { endpoints: [], verdict: 'drop' } },
  // externalTrafficPolicy: Local short-circuit: pods and the node itself reaching an external
  // frontend are cluster traffic and may reach every endpoint; only outside traffic is limited.
  { name: 'ETP Local LB IP from a pod: every endpoint, no masquerade', pkt: tcp(POD, '192.168.1.201', 80), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local LB IP from the node: every endpoint, masquerade', pkt: tcp(NODE_IP, '192.168.1.201', 80, true), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP Local NodePort from a pod: every endpoint', pkt: tcp(POD, NODE_IP, 30083), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local NodePort from the node: every endpoint, masquerade', pkt: tcp(NODE_IP, NODE_IP, 30081, true), expect: { endpoints: ['10.244.1.4:8080', '10.244.2.4:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP Local externalIP from a pod: every endpoint', pkt: tcp(POD, '192.168.1.120', 80), expect: { endpoints: ['10.244.1.9:8080', '10.244.2.9:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local externalIP from outside: local endpoint only', pkt: tcp(CLIENT, '192.168.1.120', 80), expect: { endpoints: ['10.244.1.9:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local without local endpoints, from a pod: the remote endpoint', pkt: tcp(POD, NODE_IP, 30084), expect: { endpoints: ['10.244.2.2:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local without local endpoints, from the node: the remote endpoint, masquerade', pkt: tcp(NODE_IP, NODE_IP, 30084, true), expect: { endpoints: ['10.244.2.2:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP Local with affinity, from a pod: the remote endpoint', pkt: tcp(POD, NODE_IP, 30092), expect: { endpoints: ['10.244.2.10:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local with affinity, from outside: drop', pkt: tcp(CLIENT, NODE_IP, 30092), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'ETP and ITP Local: no short-circuit for pods', pkt: tcp(POD, NODE_IP, 30093), expect: { endpoints: [], verdict: 'drop' } },
  // With both policies Local, pod and node traffic stays on the local endpoints (internal policy).
  { name: 'ETP and ITP Local, local endpoint, from a pod: local only', pkt: tcp(POD, NODE_IP, 30094), expect: { endpoints: ['10.244.1.12:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP and ITP Local, local endpoint, from the node: local only, masquerade', pkt: tcp(NODE_IP, NODE_IP, 30094, true), expect: { endpoints: ['10.244.1.12:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP and ITP Local, local endpoint, from outside: local only', pkt: tcp(CLIENT, NODE_IP, 30094), expect: { endpoints: ['10.244.1.12:8080'], masquerade: false, verdict: 'accept' } },
];
