/**
 * Packet-flow cases for two kube-proxy behaviours of the nftables backend:
 * - loadBalancerSourceRanges: traffic to a LoadBalancer IP from outside the ranges is dropped
 *   (before DNAT), while the ClusterIP and the NodePort of the same Service stay open;
 * - externalTrafficPolicy: Local short-circuit: pods and the node itself reaching an external
 *   frontend (NodePort, externalIP, LoadBalancer IP) are cluster traffic and may reach every
 *   endpoint; only traffic from outside is limited to the local ones.
 */
import test from 'ava';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { CLIENT, NODE_IP, NODE_IP6, services, service, slice, slices } from './fixtures';
import { buildState, testConfig } from './helpers';
import { createNftTracer } from './tracer/nft';
import { summarize, type FlowResult, type Packet } from './tracer/packet';

const nodeIPs = [NODE_IP, NODE_IP6];
const LOCAL1 = { ip: '10.244.1.2', node: 'node-a' };
const REMOTE1 = { ip: '10.244.2.2', node: 'node-b' };
const p80 = [{ port: 8080 }];
const lb = (ip: string) => ({ status: { loadBalancer: { ingress: [{ ip }] } } });

const extraServices = [
  service('lb-ranges', '10.96.1.1', [{ port: 80, nodePort: 30090 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.1.0/30', '172.16.0.0/12'] }, lb('192.168.1.210')),
  service('lb-ranges-v6only', '10.96.1.2', [{ port: 80, nodePort: 30091 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['fd99::/64'] }, lb('192.168.1.211')),
  service('lb-ranges-node', '10.96.1.3', [{ port: 80 }], { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, loadBalancerSourceRanges: ['192.168.1.0/24'] }, lb('192.168.1.212')),
  service('ext-local', '10.96.1.4', [{ port: 80 }], { externalIPs: ['192.168.1.120'], externalTrafficPolicy: 'Local' }),
  service('sticky-local', '10.96.1.5', [{ port: 80, nodePort: 30092 }], { type: 'NodePort', externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP' }),
  service('both-local', '10.96.1.6', [{ port: 80, nodePort: 30093 }], { type: 'NodePort', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' }),
];
const extraSlices = [
  slice('lb-ranges', [LOCAL1, REMOTE1], p80),
  slice('lb-ranges-v6only', [LOCAL1], p80),
  slice('lb-ranges-node', [LOCAL1], p80),
  slice('ext-local', [{ ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.2.9', node: 'node-b' }], p80),
  slice('sticky-local', [{ ip: '10.244.2.10', node: 'node-b' }], p80),
  slice('both-local', [{ ip: '10.244.2.11', node: 'node-b' }], p80),
];

function tracer() {
  const { result } = buildState([...services, ...extraServices], [...slices, ...extraSlices]);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs });
  const p = planner.plan({ state: result.state, changed: result.changed, full: true });
  p.commit();
  return createNftTracer(p.transaction.text, { nodeIPs });
}

const tcp = (src: string, dst: string, port: number, fromNode = false): Packet => ({ src, dst, port, proto: 'tcp', ...(fromNode ? { fromNode } : {}) });
const POD = '10.244.1.50';
const both = ['10.244.1.2:8080', '10.244.2.2:8080'];

const cases: { name: string; pkt: Packet; expect: FlowResult }[] = [
  // loadBalancerSourceRanges
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
  // externalTrafficPolicy: Local short-circuit
  { name: 'ETP Local LB IP from a pod: every endpoint, no masquerade', pkt: tcp(POD, '192.168.1.201', 80), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local LB IP from the node: every endpoint, masquerade', pkt: tcp(NODE_IP, '192.168.1.201', 80, true), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP Local LB IP from outside: local endpoint only', pkt: tcp(CLIENT, '192.168.1.201', 80), expect: { endpoints: ['10.244.1.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local NodePort from a pod: every endpoint', pkt: tcp(POD, NODE_IP, 30083), expect: { endpoints: ['10.244.1.8:8080', '10.244.2.8:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local externalIP from a pod: every endpoint', pkt: tcp(POD, '192.168.1.120', 80), expect: { endpoints: ['10.244.1.9:8080', '10.244.2.9:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local externalIP from outside: local endpoint only', pkt: tcp(CLIENT, '192.168.1.120', 80), expect: { endpoints: ['10.244.1.9:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local without local endpoints, from a pod: the remote endpoint', pkt: tcp(POD, NODE_IP, 30084), expect: { endpoints: ['10.244.2.2:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local without local endpoints, from the node: the remote endpoint, masquerade', pkt: tcp(NODE_IP, NODE_IP, 30084, true), expect: { endpoints: ['10.244.2.2:8080'], masquerade: true, verdict: 'accept' } },
  { name: 'ETP Local without local endpoints, from outside: drop', pkt: tcp(CLIENT, NODE_IP, 30084), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'ETP Local with affinity, from a pod: the remote endpoint', pkt: tcp(POD, NODE_IP, 30092), expect: { endpoints: ['10.244.2.10:8080'], masquerade: false, verdict: 'accept' } },
  { name: 'ETP Local with affinity, from outside: drop', pkt: tcp(CLIENT, NODE_IP, 30092), expect: { endpoints: [], verdict: 'drop' } },
  { name: 'ETP and ITP Local: no short-circuit for pods', pkt: tcp(POD, NODE_IP, 30093), expect: { endpoints: [], verdict: 'drop' } },
];

for (const c of cases) {
  test(`nftables policy flow: ${c.name}`, (t) => {
    t.deepEqual(summarize(tracer().trace(c.pkt)), c.expect);
  });
}
