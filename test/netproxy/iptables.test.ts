import test from 'ava';
import type { ExecResult } from '../../netproxy/exec';
import { endpointChain, servicePortChains } from '../../netproxy/iptables/chains';
import { cleanupRestore, createIptablesBackend } from '../../netproxy/iptables/backend';
import { createIptablesPlanner, parseSave } from '../../netproxy/iptables/planner';
import type { Family } from '../../netproxy/iptables/render';
import { CLIENT, NODE_IP, NODE_IP6, flowCases, service, services, slice, slices } from './fixtures';
import { buildState, recordingLogger, testConfig } from './helpers';
import { createIptablesTracer } from './tracer/iptables';
import { summarize, type FlowResult } from './tracer/packet';

const nodeIPs = [NODE_IP, NODE_IP6];
const FAMILIES: Family[] = [4, 6];

function fullRuleset(svcs = services, sls = slices, config = testConfig()) {
  const { state, result } = buildState(svcs, sls);
  const planner = createIptablesPlanner({ config, nodeIPs });
  const p = planner.plan({ state: result.state, changed: result.changed, full: true }, FAMILIES);
  p.commit();
  return { state, planner, plan: p, inputs: p.families.map((f) => ({ family: f.family, text: f.text })) };
}

/** Cases of the shared flow table where iptables mode's answer differs, and why. */
const IPTABLES_DIFFERENCES: Record<string, { expect: FlowResult; why: string }> = {
  'NodePort on 127.0.0.1 from the node is not touched': {
    expect: { endpoints: ['10.244.1.2:8080', '10.244.2.2:8080'], masquerade: true, verdict: 'accept' },
    why: 'iptables.localhostNodePorts (default true, as kube-proxy): NodePorts answer on 127.0.0.1 with route_localnet, masqueraded',
  },
};

for (const c of flowCases) {
  const diff = IPTABLES_DIFFERENCES[c.name];
  test(`iptables flow: ${c.name}${diff ? ' (differs: ' + diff.why + ')' : ''}`, (t) => {
    const tracer = createIptablesTracer(fullRuleset().inputs, { nodeIPs });
    t.deepEqual(summarize(tracer.trace(c.pkt)), diff ? diff.expect : c.expect);
  });
}

test('iptables flow: the documented differences are real differences from the shared table', (t) => {
  for (const [name, d] of Object.entries(IPTABLES_DIFFERENCES)) {
    const shared = flowCases.find((c) => c.name === name);
    t.truthy(shared, `no shared case named ${name}`);
    t.notDeepEqual(shared!.expect, d.expect, name);
  }
});

test('iptables flow: localhost NodePorts: only the node may use them; off with localhostNodePorts false or for IPv6', (t) => {
  const onLocalhost = { src: '127.0.0.1', dst: '127.0.0.1', port: 30080, proto: 'tcp' as const };
  const on = createIptablesTracer(fullRuleset().inputs, { nodeIPs });
  // ETP Local: the node's own connection is short-circuited to every endpoint, masqueraded.
  t.deepEqual(summarize(on.trace({ ...onLocalhost, port: 30081, fromNode: true })), { endpoints: ['10.244.1.4:8080', '10.244.2.4:8080'], masquerade: true, verdict: 'accept' });
  // route_localnet lets such packets in from the network: they are not NodePort traffic, and dropped.
  t.deepEqual(summarize(on.trace({ ...onLocalhost, src: CLIENT })), { endpoints: [], verdict: 'drop' });
  t.deepEqual(summarize(on.trace({ src: 'fd01::10', dst: '::1', port: 30080, proto: 'tcp', fromNode: true })), { endpoints: [], verdict: 'accept' });
  const off = createIptablesTracer(fullRuleset(services, slices, testConfig({ iptables: { localhostNodePorts: false } })).inputs, { nodeIPs });
  t.deepEqual(summarize(off.trace({ ...onLocalhost, fromNode: true })), { endpoints: [], verdict: 'accept' });
  t.deepEqual(summarize(off.trace({ ...onLocalhost, src: CLIENT })), { endpoints: [], verdict: 'accept' });
  // With nodePortAddresses, only when they include 127.0.0.1.
  const only = (cidrs: string[]) => createIptablesTracer(fullRuleset(services, slices, testConfig({ nodePortAddresses: cidrs })).inputs, { nodeIPs });
  t.deepEqual(summarize(only([`${NODE_IP}/32`]).trace({ ...onLocalhost, fromNode: true })).endpoints, []);
  t.deepEqual(summarize(only([`${NODE_IP}/32`, '127.0.0.0/8']).trace({ ...onLocalhost, fromNode: true })).endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
  t.deepEqual(summarize(only([`${NODE_IP}/32`, '127.0.0.0/8']).trace({ src: CLIENT, dst: NODE_IP, port: 30080, proto: 'tcp' })).endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
});

test('iptables: chain names are the ones kube-proxy computes', (t) => {
  // Values from kube-proxy's own tests for ns1/svc1:p80 and endpoint 10.180.0.1:80.
  t.is(servicePortChains('ns1/svc1:p80', 'tcp').svc, 'KUBE-SVC-XPGD46QRK7WJZT7O');
  t.is(endpointChain('ns1/svc1:p80', 'tcp', { ip: '10.180.0.1', port: 80 }), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
  const text = fullRuleset().inputs.find((i) => i.family === 4)!.text;
  t.true(text.includes(`:${servicePortChains('default/web', 'tcp').svc} - [0:0]`));
  t.true(text.includes(`:${servicePortChains('default/multi:dns', 'udp').svc} - [0:0]`));
});

test('iptables flow: random spread is uniform (probabilities 1/n, 1/(n-1), …)', (t) => {
  const eps = ['10.244.1.2', '10.244.1.3', '10.244.2.2', '10.244.2.3'].map((ip) => ({ ip, node: 'node-b' }));
  const { inputs } = fullRuleset([service('four', '10.96.1.1', [{ port: 80 }])], [slice('four', eps, [{ port: 8080 }])]);
  const tracer = createIptablesTracer(inputs, { nodeIPs });
  const out = tracer.traceWeighted({ src: '10.244.9.9', dst: '10.96.1.1', port: 80, proto: 'tcp' });
  t.is(out.length, 4);
  for (const o of out) t.true(Math.abs(o.weight - 0.25) < 1e-9, `${o.endpoint} ${o.weight}`);
});

test('iptables flow: hairpin (endpoint reaching itself through its service) is masqueraded', (t) => {
  const tracer = createIptablesTracer(fullRuleset().inputs, { nodeIPs });
  const outcomes = tracer.trace({ src: '10.244.1.2', dst: '10.96.0.1', port: 80, proto: 'tcp' });
  t.deepEqual(outcomes.map((o) => [o.endpoint, o.masquerade]).sort(), [
    ['10.244.1.2:8080', true],
    ['10.244.2.2:8080', false],
  ]);
});

test('iptables flow: ClientIP affinity sticks to the endpoint chosen first (-m recent)', (t) => {
  const { inputs } = fullRuleset();
  const text = inputs.find((i) => i.family === 4)!.text;
  t.regex(text, /-m recent --name KUBE-SEP-\S+ --rcheck --seconds 600 --reap -j KUBE-SEP-/);
  const tracer = createIptablesTracer(inputs, { nodeIPs });
  const pkt = { src: CLIENT, dst: '10.96.0.13', port: 80, proto: 'tcp' as const };
  t.is(tracer.trace(pkt).length, 2);
  const again = summarize(tracer.trace(pkt));
  t.is(again.endpoints.length, 1);
  t.true(['10.244.1.2:8080', '10.244.2.2:8080'].includes(again.endpoints[0]!));
});

test('iptables flow: loadBalancerSourceRanges admit listed sources and drop the rest (KUBE-FW, KUBE-PROXY-FIREWALL)', (t) => {
  const fw = service('fw', '10.96.2.1', [{ port: 80, nodePort: 30090 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.1.0/28'] }, {
    status: { loadBalancer: { ingress: [{ ip: '192.168.1.250' }] } },
  });
  const { inputs } = fullRuleset([fw], [slice('fw', [{ ip: '10.244.1.2', node: 'node-a' }], [{ port: 8080 }])]);
  const tracer = createIptablesTracer(inputs, { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: CLIENT, dst: '192.168.1.250', port: 80, proto: 'tcp' })).endpoints, ['10.244.1.2:8080']);
  t.deepEqual(summarize(tracer.trace({ src: '192.168.1.77', dst: '192.168.1.250', port: 80, proto: 'tcp' })), { endpoints: [], verdict: 'drop' });
  // NodePorts are not subject to source ranges (as in kube-proxy).
  t.deepEqual(summarize(tracer.trace({ src: '192.168.1.77', dst: NODE_IP, port: 30090, proto: 'tcp' })).endpoints, ['10.244.1.2:8080']);
});

test('iptables: the full restore writes every owned chain, jumps only when missing', (t) => {
  const { state } = fullRuleset();
  const planner = createIptablesPlanner({ config: testConfig(), nodeIPs });
  const r = state.build(true);
  const empty = planner.plan({ state: r.state, changed: r.changed, full: true }, [4]);
  const text = empty.families[0]!.text;
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL', 'KUBE-PROXY-CANARY']) {
    t.true(text.includes(`:${c} - [0:0]`), c);
  }
  t.true(text.includes('-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'));
  t.true(text.includes('-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000'));
  t.regex(text, /-A KUBE-SVC-\S+ -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-/);
  // The NodePort hand-off is the last rule of nat KUBE-SERVICES.
  const natServices = text.split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES ') && text.indexOf(l) > text.indexOf('*nat'));
  t.regex(natServices[natServices.length - 1]!, /-j KUBE-NODEPORTS$/);
  // With the jumps already there (as iptables-save shows them), none is inserted again.
  const saved = parseSave(['*nat', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', ':KUBE-SVC-STALESTALESTALE1 - [0:0]', 'COMMIT', '*filter', '-A INPUT -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES', 'COMMIT', ''].join('\n'));
  const again = planner.plan({ state: r.state, changed: r.changed, full: true }, [4], new Map([[4, saved]])).families[0]!.text;
  t.false(/-I (PREROUTING|OUTPUT|POSTROUTING) 1 /.test(again.slice(again.indexOf('*nat'))));
  t.false(again.includes('-I INPUT 1 -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals"'));
  t.true(again.includes('-I FORWARD 1 '));
  // Stale service chains left by an earlier run are flushed and deleted.
  t.true(again.includes(':KUBE-SVC-STALESTALESTALE1 - [0:0]') && again.includes('-X KUBE-SVC-STALESTALESTALE1'));
});

test('iptables: a partial sync rewrites only the chains of the Service that changed', (t) => {
  const { state, planner, inputs } = fullRuleset();
  const web = servicePortChains('default/web', 'tcp');
  const kept = endpointChain('default/web', 'tcp', { ip: '10.244.2.2', port: 8080 });
  const gone = endpointChain('default/web', 'tcp', { ip: '10.244.1.2', port: 8080 });
  const added = endpointChain('default/web', 'tcp', { ip: '10.244.2.3', port: 8080 });
  state.recordEndpointSlice(slices[0], slice('web', [{ ip: '10.244.2.2', node: 'node-b' }, { ip: '10.244.2.3', node: 'node-b' }], [{ port: 8080 }]));
  const r = state.build();
  t.deepEqual([...r.changed], ['default/web']);
  const p = planner.plan({ state: r.state, changed: r.changed, full: false }, FAMILIES);
  p.commit();
  t.is(p.families.find((f) => f.family === 6)!.text, '', 'nothing to do for IPv6');
  const text = p.families.find((f) => f.family === 4)!.text;
  const declared = text.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]).sort();
  t.deepEqual(declared, [added, gone, web.svc].sort(), text);
  t.false(text.includes(`-A ${kept} `), 'an unchanged endpoint chain is not rewritten');
  t.true(text.includes(`-j ${kept}`), 'but the service chain still sends traffic to it');
  t.false(text.includes('*filter'), 'no filter change');
  t.true(text.includes(`-X ${gone}`));
  t.false(/^-[AID] KUBE-SERVICES /m.test(text), 'the ClusterIP dispatch rule did not change');
  t.false(text.includes('default/dns'), 'other services untouched');
  // Applied on top of the full ruleset (the interpreter refuses what iptables-restore refuses).
  const tracer = createIptablesTracer([...inputs, { family: 4, text }], { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.1', port: 80, proto: 'tcp' })).endpoints, ['10.244.2.2:8080', '10.244.2.3:8080']);
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.2', port: 53, proto: 'udp' })).endpoints, ['10.244.1.3:53']);
  t.false(tracer.tables(4).get('nat')!.has(gone));
});

test('iptables: a Service losing its endpoints moves from DNAT to REJECT with -D/-I in the shared chains', (t) => {
  const { state, planner, inputs } = fullRuleset();
  state.recordEndpointSlice(slices[0], undefined);
  const r = state.build();
  const p = planner.plan({ state: r.state, changed: r.changed, full: false }, FAMILIES);
  const text = p.families.find((f) => f.family === 4)!.text;
  t.regex(text, /^-D KUBE-SERVICES -m comment --comment "default\/web cluster IP" .* -j KUBE-SVC-/m);
  t.regex(text, /^\*filter\n-A KUBE-PROXY-CANARY -j RETURN\n-D KUBE-PROXY-CANARY -j RETURN\n-I KUBE-SERVICES 1 -m comment --comment "default\/web has no endpoints" .* -j REJECT$/m);
  const tracer = createIptablesTracer([...inputs, { family: 4, text }], { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.1', port: 80, proto: 'tcp' })), { endpoints: [], verdict: 'reject' });
});

test('iptables: deleting every Service leaves only the static chains', (t) => {
  const { state, planner, inputs } = fullRuleset();
  for (const svc of services) state.recordService(svc, undefined);
  const r = state.build();
  const p = planner.plan({ state: r.state, changed: r.changed, full: false }, FAMILIES);
  const tracer = createIptablesTracer([...inputs, ...p.families.filter((f) => f.text)], { nodeIPs });
  for (const f of FAMILIES) {
    t.deepEqual([...tracer.tables(f).get('nat')!.keys()].filter((c) => c.startsWith('KUBE-')).sort(), ['KUBE-MARK-MASQ', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-PROXY-CANARY', 'KUBE-SERVICES']);
    // IPv4 also keeps the localhost NodePort hand-off and its martian block (localhostNodePorts).
    t.is(tracer.tables(f).get('nat')!.get('KUBE-SERVICES')!.length, f === 4 ? 2 : 1, 'only the NodePort hand-offs are left');
    for (const c of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL']) {
      t.is(tracer.tables(f).get('filter')!.get(c)!.length, c === 'KUBE-EXTERNAL-SERVICES' && f === 4 ? 1 : 0, c);
    }
  }
  t.is(p.rules, createIptablesPlanner({ config: testConfig(), nodeIPs }).plan({ state: { services: new Map() }, changed: [], full: true }, FAMILIES).rules);
});

/** A fake iptables host: records commands, answers -save and the canary check. */
function fakeHost(opts: { saves?: Record<string, string>; canary?: () => boolean; failRestore?: (input: string) => boolean } = {}) {
  const calls: { argv: string[]; input?: string }[] = [];
  const exec = async (argv: string[], o: { input?: string } = {}): Promise<ExecResult> => {
    calls.push({ argv, ...(o.input !== undefined ? { input: o.input } : {}) });
    const bin = argv[0]!;
    if (bin.endsWith('-save')) return { code: 0, stdout: opts.saves?.[bin] ?? '', stderr: '' };
    if (argv.includes('-S')) return (opts.canary?.() ?? true) ? { code: 0, stdout: '-N KUBE-PROXY-CANARY\n', stderr: '' } : { code: 1, stdout: '', stderr: 'No chain' };
    if (bin.endsWith('-restore')) return opts.failRestore?.(o.input ?? '') ? { code: 1, stdout: '', stderr: 'iptables-restore: line 3 failed' } : { code: 0, stdout: '', stderr: '' };
    return { code: 127, stdout: '', stderr: 'unknown' };
  };
  return { exec, calls, restores: () => calls.filter((c) => c.argv[0]!.endsWith('-restore')) };
}

function backendFixture(host: ReturnType<typeof fakeHost>, variant?: 'nft' | 'legacy') {
  const { logger, lines } = recordingLogger();
  const backend = createIptablesBackend({ exec: host.exec, logger, config: testConfig(), nodeIPs }, variant ? { variant } : {});
  const { state, result } = buildState(services, slices);
  return { backend, state, result, lines };
}

test('iptables backend: the variant holding the host rules is detected and its tools are used', async (t) => {
  const host = fakeHost({ saves: { 'iptables-legacy-save': '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n' } });
  const { backend, result, lines } = backendFixture(host);
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  t.is(backend.variant(), 'legacy');
  t.deepEqual(host.restores().map((c) => c.argv[0]), ['iptables-legacy-restore', 'ip6tables-legacy-restore']);
  t.true(host.restores().every((c) => c.argv.includes('--noflush')));
  t.true(lines.some((l) => l.variant === 'legacy' && String(l.msg).includes('variant legacy chosen')));

  const empty = fakeHost();
  const b2 = backendFixture(empty);
  await b2.backend.sync({ state: b2.result.state, changed: b2.result.changed, full: true });
  t.is(b2.backend.variant(), 'nft', 'no rules anywhere: nft');
});

test('iptables backend: consistency syncs check the canary and report drift; full syncs only when asked or needed', async (t) => {
  let canary = true;
  const host = fakeHost({ canary: () => canary });
  const { backend, state, result } = backendFixture(host, 'nft');
  // `iptables -S KUBE-PROXY-CANARY`, per family until one is missing.
  const canaryChecks = () => host.calls.filter((c) => c.argv.includes('-S')).length;
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  t.true(backend.lastSyncWasFull());
  const r = state.build();
  const rules = (await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true })).rules;
  t.false(backend.lastSyncWasFull(), 'a resync with nothing changed is partial');
  t.is(host.restores().length, 2, 'and writes nothing');
  t.is(canaryChecks(), 2);

  canary = false;
  const drifted = await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true });
  t.regex(drifted.drift ?? '', /KUBE-PROXY-CANARY is gone/);
  t.is(drifted.rules, rules);
  t.is(host.restores().length, 2, 'drift is reported, not repaired: the core asks for the full sync');
  await backend.sync({ state: r.state, changed: r.changed, full: true });
  t.true(backend.lastSyncWasFull());
  t.true(host.restores().at(-2)!.input!.includes(':KUBE-PROXY-CANARY - [0:0]'));

  // Partial syncs do not exec the canary check: the guard in their transaction does it.
  state.recordEndpointSlice(slices[0], slice('web', [{ ip: '10.244.2.2', node: 'node-b' }], [{ port: 8080 }]));
  const r2 = state.build();
  await backend.sync({ state: r2.state, changed: r2.changed, full: false });
  t.false(backend.lastSyncWasFull());
  t.is(canaryChecks(), 3, 'no check since the drifted one');
  t.true(host.restores().at(-1)!.input!.includes('-A KUBE-PROXY-CANARY -j RETURN'));
});

test('iptables backend: after a failed partial restore (chains removed under it) the next sync is full', async (t) => {
  let failPartial = false;
  const host = fakeHost({ failRestore: (input) => failPartial && !input.includes('*mangle') });
  const { backend, state, result } = backendFixture(host, 'nft');
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  failPartial = true;
  state.recordEndpointSlice(slices[0], slice('web', [{ ip: '10.244.2.2', node: 'node-b' }], [{ port: 8080 }]));
  const r = state.build();
  const before = host.restores().length;
  await t.throwsAsync(backend.sync({ state: r.state, changed: r.changed, full: false }));
  const after = host.restores().slice(before);
  t.is(after.length, 1);
  t.true(after[0]!.input!.includes('-A KUBE-PROXY-CANARY -j RETURN'), 'the partial attempt carries the canary guard');
  // The core retries at once; whatever it asks for, this backend rewrites everything.
  await backend.sync({ state: r.state, changed: new Set(), full: false });
  t.true(backend.lastSyncWasFull());
  t.true(host.restores().slice(before + 1).some((c) => c.input!.includes('*mangle')), 'a full restore');
});

test('iptables backend: route_localnet is enabled once for localhost NodePorts, and not when they are off', async (t) => {
  const sysctls = (h: ReturnType<typeof fakeHost>) => h.calls.filter((c) => c.argv[0] === 'sysctl').map((c) => c.argv.join(' '));
  const host = fakeHost();
  const { backend, state, result, lines } = backendFixture(host, 'nft');
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  const r = state.build();
  await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true });
  t.deepEqual(sysctls(host), ['sysctl -w net.ipv4.conf.all.route_localnet=1']);
  t.true(lines.some((l) => String(l.msg).includes('route_localnet') && l.level === 40), 'the fake host refuses: warned, sync goes on');
  const off = fakeHost();
  const b2 = createIptablesBackend({ exec: off.exec, logger: recordingLogger().logger, config: testConfig({ iptables: { localhostNodePorts: false } }), nodeIPs }, { variant: 'nft' });
  await b2.sync({ state: result.state, changed: result.changed, full: true });
  t.deepEqual(sysctls(off), []);
});

test('iptables backend: a failed full restore is reported and the next sync is full again', async (t) => {
  const host = fakeHost({ failRestore: () => true });
  const { backend, result } = backendFixture(host, 'legacy');
  const err = await t.throwsAsync(backend.sync({ state: result.state, changed: result.changed, full: false }));
  t.regex(err!.message, /iptables-legacy-restore/);
  t.is((err as { code?: string }).code, 'KEELSON_ERR_PROXY_COMMAND_FAILED');
});

test('iptables cleanup: unlinks and deletes only the chains netproxy owns', (t) => {
  const saved = [
    '*mangle', ':PREROUTING ACCEPT [0:0]', ':KUBE-PROXY-CANARY - [0:0]', 'COMMIT',
    '*filter', ':INPUT ACCEPT [0:0]', ':KUBE-FIREWALL - [0:0]', ':KUBE-SERVICES - [0:0]', ':MY-CHAIN - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A INPUT -j KUBE-FIREWALL', '-A INPUT -j MY-CHAIN', 'COMMIT',
    '*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]', ':KUBE-MARK-DROP - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', 'COMMIT', '',
  ].join('\n');
  const text = cleanupRestore(parseSave(saved));
  t.true(text.includes('-D INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'));
  t.true(text.includes('-X KUBE-SVC-AAAAAAAAAAAAAAAA') && text.includes('-X KUBE-PROXY-CANARY'));
  for (const foreign of ['KUBE-FIREWALL', 'MY-CHAIN', 'KUBE-MARK-DROP']) t.false(text.includes(foreign), foreign);
  t.is(cleanupRestore(parseSave('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j MY-CHAIN\nCOMMIT\n')), '');
});

test('iptables: a name iptables cannot quote is sanitised in comments and other services keep working', (t) => {
  const odd = service('odd', '10.96.3.1', [{ name: 'we"ird port', port: 80 }]);
  const { inputs } = fullRuleset([odd, ...services], [slice('odd', [{ ip: '10.244.1.9', node: 'node-a' }], [{ name: 'we"ird port', port: 8080 }]), ...slices]);
  const text = inputs.find((i) => i.family === 4)!.text;
  t.true(text.includes('--comment "default/odd:we_ird port cluster IP"'));
  const tracer = createIptablesTracer(inputs, { nodeIPs });
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.3.1', port: 80, proto: 'tcp' })).endpoints, ['10.244.1.9:8080']);
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.1', port: 80, proto: 'tcp' })).endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
});
