import test from 'ava';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { CLIENT, NODE_IP, NODE_IP6, flowCases, services, slice, slices } from './fixtures';
import { buildState, testConfig } from './helpers';
import { createNftTracer } from './tracer/nft';
import { summarize } from './tracer/packet';

const nodeIPs = [NODE_IP, NODE_IP6];

function fullRuleset() {
  const { state, result } = buildState(services, slices);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs });
  const p = planner.plan({ state: result.state, changed: result.changed, full: true });
  p.commit();
  return { state, planner, text: p.transaction.text };
}

for (const c of flowCases) {
  test(`nftables flow: ${c.name}`, (t) => {
    const { text } = fullRuleset();
    const tracer = createNftTracer(text, { nodeIPs });
    t.deepEqual(summarize(tracer.trace(c.pkt)), c.expect);
  });
}

test('nftables flow: hairpin (endpoint reaching itself through its service) is masqueraded', (t) => {
  const tracer = createNftTracer(fullRuleset().text, { nodeIPs });
  const outcomes = tracer.trace({ src: '10.244.1.2', dst: '10.96.0.1', port: 80, proto: 'tcp' });
  t.deepEqual(
    outcomes.map((o) => [o.endpoint, o.masquerade]).sort(),
    [
      ['10.244.1.2:8080', true],
      ['10.244.2.2:8080', false],
    ],
  );
});

test('nftables flow: ClientIP affinity sticks to the first endpoint chosen', (t) => {
  const tracer = createNftTracer(fullRuleset().text, { nodeIPs });
  const pkt = { src: CLIENT, dst: '10.96.0.13', port: 80, proto: 'tcp' as const };
  const first = tracer.trace(pkt);
  t.is(first.length, 2);
  // The tracer explores both draws; the last one recorded wins, as a real second client packet would see.
  const again = summarize(tracer.trace(pkt));
  t.is(again.endpoints.length, 1);
  t.true(['10.244.1.2:8080', '10.244.2.2:8080'].includes(again.endpoints[0]!));
});

test('nftables: an endpoint change is an incremental transaction of element updates only', (t) => {
  const { state, planner, text } = fullRuleset();
  state.recordEndpointSlice(slices[0], slice('web', [{ ip: '10.244.2.2', node: 'node-b' }, { ip: '10.244.2.3', node: 'node-b' }], [{ port: 8080 }]));
  const r = state.build();
  t.deepEqual([...r.changed], ['default/web']);
  const p = planner.plan({ state: r.state, changed: r.changed, full: false });
  p.commit();
  const lines = p.transaction.text.trim().split('\n');
  t.true(lines.every((l) => /^(add|delete) element /.test(l)), p.transaction.text);
  t.true(lines.length <= 8, p.transaction.text);
  // Applied on top of the full ruleset (the tracer refuses duplicate adds and missing deletes).
  const tracer = createNftTracer(text + p.transaction.text, { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.1', port: 80, proto: 'tcp' })).endpoints, ['10.244.2.2:8080', '10.244.2.3:8080']);
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.2', port: 53, proto: 'udp' })).endpoints, ['10.244.1.3:53']);
});

test('nftables: deleting a service and its endpoints removes every element and unused chain', (t) => {
  const { state, planner, text } = fullRuleset();
  let all = text;
  for (const svc of services) state.recordService(svc, undefined);
  const r = state.build();
  const p = planner.plan({ state: r.state, changed: r.changed, full: false });
  p.commit();
  all += p.transaction.text;
  const tracer = createNftTracer(all, { nodeIPs });
  for (const [name, m] of tracer.tables.get('ip')!.elements) t.is(m.size, 0, `map ${name} still has elements`);
  t.deepEqual([...tracer.tables.get('ip')!.chains.keys()].sort(), ['endpoints-check', 'filter-forward', 'filter-input', 'filter-output', 'filter-prerouting', 'firewall-check', 'nat-output', 'nat-postrouting', 'nat-prerouting', 'reject-chain', 'services']);
});

test('nftables: a periodic full sync re-declares everything without deleting the table', (t) => {
  const { state, planner, text } = fullRuleset();
  const r = state.build(true);
  const p = planner.plan({ state: r.state, changed: r.changed, full: true });
  t.false(/delete table/.test(p.transaction.text));
  const tracer = createNftTracer(text + p.transaction.text, { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: CLIENT, dst: NODE_IP, port: 30080, proto: 'tcp' })).endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
});
