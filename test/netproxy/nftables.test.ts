import test from 'ava';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { CLIENT, NODE_IP, NODE_IP6, flowCases, service, services, slice, slices } from './fixtures';
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
  for (const [name, m] of tracer.tables.get('ip')!.elements) if (name !== 'generation') t.is(m.size, 0, `map ${name} still has elements`);
  t.is(tracer.tables.get('ip')!.elements.get('generation')!.size, 1, 'the generation of the last full sync stays');
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

test('nftables: two Services on one external IP and port: the first owns it, the second takes over when it goes', (t) => {
  const a = service('ext-a', '10.96.5.1', [{ port: 80 }], { externalIPs: ['192.168.1.150'] });
  const b = service('ext-b', '10.96.5.2', [{ port: 80 }], { externalIPs: ['192.168.1.150'] });
  const sa = slice('ext-a', [{ ip: '10.244.1.20', node: 'node-a' }], [{ port: 8080 }]);
  const sb = slice('ext-b', [{ ip: '10.244.2.21', node: 'node-b' }, { ip: '10.244.2.22', node: 'node-b' }], [{ port: 8080 }]);
  const { state, result } = buildState([a, b], [sa, sb]);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs });
  const p1 = planner.plan({ state: result.state, changed: result.changed, full: true });
  p1.commit();
  let text = p1.transaction.text;
  const ext = { src: CLIENT, dst: '192.168.1.150', port: 80, proto: 'tcp' as const };
  t.deepEqual(summarize(createNftTracer(text, { nodeIPs }).trace(ext)).endpoints, ['10.244.1.20:8080']);
  // The owner's endpoints change: only its elements move.
  state.recordEndpointSlice(sa, slice('ext-a', [{ ip: '10.244.1.23', node: 'node-a' }], [{ port: 8080 }]));
  const r2 = state.build();
  const p2 = planner.plan({ state: r2.state, changed: r2.changed, full: false });
  p2.commit();
  text += p2.transaction.text;
  t.deepEqual(summarize(createNftTracer(text, { nodeIPs }).trace(ext)).endpoints, ['10.244.1.23:8080']);
  // The owner goes: the second Service's frontend and endpoints take its place in one transaction.
  state.recordService(a, undefined);
  const r3 = state.build();
  const p3 = planner.plan({ state: r3.state, changed: r3.changed, full: false });
  p3.commit();
  text += p3.transaction.text;
  const tracer = createNftTracer(text, { nodeIPs });
  t.deepEqual(summarize(tracer.trace(ext)).endpoints, ['10.244.2.21:8080', '10.244.2.22:8080']);
  t.deepEqual(summarize(tracer.trace({ ...ext, dst: '10.96.5.1' })).endpoints, []);
  // A full resync writes the same thing.
  const r4 = state.build(true);
  const full = planner.plan({ state: r4.state, changed: r4.changed, full: true });
  t.deepEqual(summarize(createNftTracer(text + full.transaction.text, { nodeIPs }).trace(ext)).endpoints, ['10.244.2.21:8080', '10.244.2.22:8080']);
  t.is(full.transaction.count, p3.transaction.count);
});

test('nftables flow: IPv6 ClientIP affinity (address and port in two maps) sticks, for ClusterIP and NodePort', (t) => {
  const sticky6 = service('sticky6', ['10.96.7.1', 'fd00::7:1'], [{ port: 80, nodePort: 30097 }], {
    type: 'NodePort',
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'RequireDualStack',
    sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
  });
  const eps6 = slice('sticky6', [{ ip: 'fd00:244::2', node: 'node-a' }, { ip: 'fd00:244::3', node: 'node-b' }], [{ port: 8080 }], 'b', 'IPv6');
  const eps4 = slice('sticky6', [{ ip: '10.244.1.2', node: 'node-a' }, { ip: '10.244.2.2', node: 'node-b' }], [{ port: 8080 }]);
  const { result } = buildState([sticky6], [eps4, eps6]);
  const text = createNftPlanner({ config: testConfig(), nodeIPs }).plan({ state: result.state, changed: result.changed, full: true }).transaction.text;
  // Never the concatenated IPv6 value nft 1.0.6 aborts on.
  t.false(/update @\S+ \{ ip6 saddr timeout \d+s : \S+ \. \d+ \}/.test(text), text);
  t.regex(text, /dnat ip6 to ip6 saddr map @affinity-\w+ : ip6 saddr map @affinity-\w+-port/);
  const both6 = ['[fd00:244::2]:8080', '[fd00:244::3]:8080'];
  for (const [dst, port] of [['fd00::7:1', 80], [NODE_IP6, 30097]] as const) {
    const tracer = createNftTracer(text, { nodeIPs });
    const pkt = { src: 'fd00:99::1', dst, port, proto: 'tcp' as const };
    t.deepEqual(summarize(tracer.trace(pkt)).endpoints, both6, `${dst}: the first connection may reach any endpoint`);
    const again = summarize(tracer.trace(pkt)).endpoints;
    t.is(again.length, 1, `${dst}: ${again.join()}`);
    t.true(both6.includes(again[0]!));
    // Another client is not stuck to it.
    t.deepEqual(summarize(tracer.trace({ ...pkt, src: 'fd00:99::2' })).endpoints, both6);
  }
  // IPv4 keeps its one map with the concatenated value.
  const tracer4 = createNftTracer(text, { nodeIPs });
  const pkt4 = { src: CLIENT, dst: '10.96.7.1', port: 80, proto: 'tcp' as const };
  tracer4.trace(pkt4);
  t.is(summarize(tracer4.trace(pkt4)).endpoints.length, 1);
});

test('nftables: removing an IPv6 endpoint of an affinity Service flushes both of its affinity maps', (t) => {
  const svc = service('sticky6', 'fd00::7:2', [{ port: 80 }], { ipFamilies: ['IPv6'], sessionAffinity: 'ClientIP' });
  const two = slice('sticky6', [{ ip: 'fd00:244::2', node: 'node-a' }, { ip: 'fd00:244::3', node: 'node-b' }], [{ port: 8080 }], 'b', 'IPv6');
  const { state, result } = buildState([svc], [two]);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs });
  const p1 = planner.plan({ state: result.state, changed: result.changed, full: true });
  const full = p1.transaction.text; // generated (and the applied state filled) before it is committed
  p1.commit();
  state.recordEndpointSlice(two, slice('sticky6', [{ ip: 'fd00:244::3', node: 'node-b' }], [{ port: 8080 }], 'b', 'IPv6'));
  const r = state.build();
  const p2 = planner.plan({ state: r.state, changed: r.changed, full: false });
  p2.commit();
  t.is((p2.transaction.text.match(/^flush map ip6 \S+ affinity-\w+(-port)?$/gm) ?? []).length, 2, p2.transaction.text);
  const tracer = createNftTracer(full + p2.transaction.text, { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: 'fd00:99::1', dst: 'fd00::7:2', port: 80, proto: 'tcp' })).endpoints, ['[fd00:244::3]:8080']);
});
