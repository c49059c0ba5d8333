/**
 * How the nftables backend implements two kube-proxy behaviours whose packet flows are in the
 * shared flow table (test/netproxy/fixtures.ts, traced for every backend):
 * - loadBalancerSourceRanges: checked in a filter chain hooked before DNAT (priority -110 <
 *   dstnat), through a verdict map keyed by LoadBalancer IP, protocol and port;
 * - externalTrafficPolicy: Local short-circuit: the Service's cluster endpoints sit in the same
 *   endpoint map as its local ones, at SHORT_CIRCUIT_OFFSET, so no chain per Service is needed.
 */
import test from 'ava';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { SHORT_CIRCUIT_OFFSET } from '../../netproxy/nftables/render';
import { NODE_IP, NODE_IP6, services, slices } from './fixtures';
import { buildState, testConfig } from './helpers';
import { createNftTracer } from './tracer/nft';

const nodeIPs = [NODE_IP, NODE_IP6];

function tables() {
  const { result } = buildState(services, slices);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs });
  const text = planner.plan({ state: result.state, changed: result.changed, full: true }).transaction.text;
  return { text, ip: createNftTracer(text, { nodeIPs }).tables.get('ip')! };
}

test('nftables policy: source ranges are enforced in a filter chain hooked before DNAT', (t) => {
  const { ip } = tables();
  const hook = ip.hooks.get('filter-prerouting')!;
  t.deepEqual(hook, { type: 'filter', hook: 'prerouting', priority: -110 });
  t.true(hook.priority < -100, 'before dstnat');
  t.deepEqual(ip.chains.get('filter-prerouting'), ['ct state new jump firewall-check']);
  const verdict = ip.elements.get('firewall-ips')!.get('192.168.1.210 . tcp . 80')!;
  t.regex(verdict, /^goto firewall-[0-9a-f]{12}$/);
  t.deepEqual(ip.chains.get(verdict.slice('goto '.length)), ['ip saddr != { 192.168.1.0/30, 172.16.0.0/12 } drop']);
  t.false(ip.elements.get('firewall-ips')!.has('192.168.1.211 . tcp . 80'), 'ranges of the other family only: no firewall entry');
});

test('nftables policy: the ETP Local short-circuit endpoints share the endpoint map, at SHORT_CIRCUIT_OFFSET', (t) => {
  const { ip } = tables();
  const np = ip.elements.get('nodeport-endpoints-tcp')!;
  // lb-local (NodePort 30083): one local endpoint, two cluster endpoints after the offset.
  t.is(np.get('tcp . 30083 . 0'), '10.244.1.8 . 8080');
  t.is(np.get(`tcp . 30083 . ${SHORT_CIRCUIT_OFFSET}`), '10.244.1.8 . 8080');
  t.is(np.get(`tcp . 30083 . ${SHORT_CIRCUIT_OFFSET + 1}`), '10.244.2.8 . 8080');
  t.false(np.has('tcp . 30083 . 1'));
  // both-local (ETP and ITP Local): no short-circuit entries.
  t.false([...np.keys()].some((k) => k.startsWith('tcp . 30093 . ')));
});
