import test from 'ava';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createCommandRunner, type CommandRunner } from '../../netproxy/exec';
import { createProxyComponent } from '../../netproxy/index';
import { chooseMode, nftablesProbe, nftablesSupported } from '../../netproxy/mode';
import { createMemoryFeed } from '../harness/feed';
import { createNetns, deleteNetns, nsenterArgs } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { parseProxyConfig, parseDuration } from '../../netproxy/config';
import { createSyncRunner, type Clock, type SyncKind, type SyncOutcome } from '../../netproxy/syncrunner';
import { createNftablesBackend, createNftPlanner } from '../../netproxy/nftables/backend';
import { NODE, NODE_IP, service, services, slice, slices } from './fixtures';
import { buildState, recordingLogger, testConfig } from './helpers';
import { createNftTracer } from './tracer/nft';
import { summarize } from './tracer/packet';

test('config: defaults follow kube-proxy', (t) => {
  const { config, problems } = parseProxyConfig(undefined);
  t.deepEqual(problems, []);
  t.is(config.minSyncPeriodMs, 1000);
  t.is(config.syncPeriodMs, 30000);
  t.is(config.healthzBindAddress, '0.0.0.0:10256');
  t.is(config.metricsBindAddress, '127.0.0.1:10249');
  t.is(config.mode, '');
});

test('config: KubeProxyConfiguration field names, bad fields reported and defaulted', (t) => {
  const { config, problems } = parseProxyConfig({
    mode: 'nftables', clusterCIDR: '10.244.0.0/16,fd00::/64', minSyncPeriod: '250ms', syncPeriod: '1m',
    ipvs: { scheduler: 'lc' }, masqueradeAll: true, nodePortAddresses: ['nope'], healthzBindAddress: 'x', bogus: 1,
  });
  t.is(config.mode, 'nftables');
  t.deepEqual(config.clusterCIDR, ['10.244.0.0/16', 'fd00::/64']);
  t.is(config.minSyncPeriodMs, 250);
  t.is(config.syncPeriodMs, 60000);
  t.is(config.ipvs.scheduler, 'lc');
  t.true(config.masqueradeAll);
  t.deepEqual(config.nodePortAddresses, []);
  t.is(config.healthzBindAddress, '0.0.0.0:10256');
  t.deepEqual(problems.map((p) => p.field).sort(), ['bogus', 'healthzBindAddress', 'nodePortAddresses']);
  t.is(parseDuration('1m30s'), 90000);
  t.is(config.fullSyncPeriodMs, 3_600_000, 'a full rewrite hourly by default');
  t.is(parseProxyConfig({ fullSyncPeriod: '2h' }).config.fullSyncPeriodMs, 7_200_000);
  t.deepEqual(parseProxyConfig({ fullSyncPeriod: '0' }).problems.map((p) => p.field), ['fullSyncPeriod']);
  t.is(parseDuration('1x'), undefined);
});

function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let id = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => (timers.push({ at: now + ms, fn, id: ++id }), id),
    clearTimeout: (h) => {
      const i = timers.findIndex((x) => x.id === h);
      if (i >= 0) timers.splice(i, 1);
    },
  };
  const advance = async (ms: number) => {
    const end = now + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const next = timers[0];
      if (!next || next.at > end) break;
      timers.shift();
      now = next.at;
      next.fn();
      await new Promise((r) => setImmediate(r));
    }
    now = end;
  };
  return { clock, advance };
}

type Run = { at: number; kind: SyncKind };

function recordingRunner(opts: { min?: number; max?: number; fullEvery?: number; outcomes?: SyncOutcome[] } = {}) {
  const { clock, advance } = fakeClock();
  const runs: Run[] = [];
  const outcomes = [...(opts.outcomes ?? [])];
  const runner = createSyncRunner({
    minIntervalMs: opts.min ?? 1000,
    maxIntervalMs: opts.max ?? 30000,
    ...(opts.fullEvery !== undefined ? { fullIntervalMs: opts.fullEvery } : {}),
    clock,
    random: () => 0.5,
    run: async (kind) => (runs.push({ at: clock.now(), kind }), outcomes.shift() ?? 'ok'),
  });
  return { runner, runs, advance, clock };
}

test('sync runner: a burst becomes one run, runs are minSyncPeriod apart, a consistency run every syncPeriod', async (t) => {
  const { runner, runs, advance } = recordingRunner();
  runner.start();
  await advance(0);
  t.deepEqual(runs, [{ at: 0, kind: 'full' }]);
  for (let i = 0; i < 50; i++) runner.request();
  await advance(999);
  t.is(runs.length, 1);
  await advance(1);
  t.deepEqual(runs[1], { at: 1000, kind: 'partial' });
  await advance(40000);
  // 30 s after the last full or consistency run (the first one), not after the partial one.
  t.deepEqual(runs.slice(2), [{ at: 30000, kind: 'verify' }]);
  await advance(60000);
  t.deepEqual(runs.slice(3).map((r) => `${r.at} ${r.kind}`), ['60000 verify', '90000 verify']);
  await runner.stop();
});

test('sync runner: a full rewrite only every fullSyncPeriod; syncPeriod resyncs in between are consistency runs', async (t) => {
  const { runner, runs, advance } = recordingRunner({ max: 30000, fullEvery: 3_600_000 });
  runner.start();
  await advance(3_600_000 + 29999);
  const kinds = runs.map((r) => r.kind);
  t.is(kinds[0], 'full');
  t.is(kinds.filter((k) => k === 'full').length, 2, kinds.join(','));
  t.is(kinds.filter((k) => k === 'verify').length, 119);
  t.deepEqual(runs.find((r, i) => i > 0 && r.kind === 'full'), { at: 3_600_000, kind: 'full' });
  await runner.stop();
});

test('sync runner: drift found by a consistency run is repaired at once by a full run', async (t) => {
  const { runner, runs, advance } = recordingRunner({ outcomes: ['ok', 'drift'] });
  runner.start();
  await advance(30000);
  t.deepEqual(runs.map((r) => `${r.at} ${r.kind}`), ['0 full', '30000 verify', '30000 full']);
  await advance(30000);
  t.deepEqual(runs.at(-1), { at: 60000, kind: 'verify' }, 'the next period starts from the repair');
  await runner.stop();
});

test('sync runner: a failed partial run is retried at once as a full run; a failed full run backs off', async (t) => {
  const { runner, runs, advance } = recordingRunner({ min: 100, max: 10000, outcomes: ['ok', 'failed', 'failed', 'failed', 'ok'] });
  runner.start();
  await advance(0);
  runner.request();
  await advance(100);
  t.deepEqual(runs.map((r) => `${r.at} ${r.kind}`), ['0 full', '100 partial', '100 full']);
  // Backoff from 500 ms, doubling, jittered (0.8–1.2; 1.0 here).
  await advance(5000);
  t.deepEqual(runs.slice(3).map((r) => `${r.at} ${r.kind}`), ['1100 full', '3100 full']);
  await advance(7999);
  t.is(runs.length, 5, 'healthy again: only the periodic consistency run is scheduled, at syncPeriod');
  await advance(1);
  t.deepEqual(runs.at(-1), { at: 13100, kind: 'verify' });
  await runner.stop();
});

test('sync runner: runs that could not start (inputs not synced) keep the full run due without spinning', async (t) => {
  const { runner, runs, advance } = recordingRunner({ min: 0, outcomes: ['deferred'] });
  runner.start();
  await advance(5000);
  t.deepEqual(runs, [{ at: 0, kind: 'full' }]);
  runner.request();
  await advance(0);
  t.deepEqual(runs[1], { at: 5000, kind: 'full' });
  await runner.stop();
});

test('sync runner: runNow runs the due run at once and does not leave a second one behind', async (t) => {
  const { runner, runs, advance } = recordingRunner();
  runner.start();
  runner.requestFull();
  t.is(await runner.runNow(), 'ok');
  t.deepEqual(runs, [{ at: 0, kind: 'full' }]);
  await advance(29999);
  t.is(runs.length, 1);
  t.is(await runner.runNow(), 'ok', 'nothing due: nothing run');
  t.is(runs.length, 1);
  await runner.stop();
});

test('bad input: invalid IP or port and orphan EndpointSlices are skipped and logged; others keep working', (t) => {
  const { logger, lines } = recordingLogger();
  const bad = [
    service('bad-ip', '10.96.999.1', [{ port: 80 }]),
    service('bad-port', '10.96.0.40', [{ port: 70000 }, { name: 'ok', port: 81 }]),
    service('bad-ext', '10.96.0.41', [{ port: 80 }], { externalIPs: ['not-an-ip'] }),
  ];
  const extraSlices = [slice('bad-port', [{ ip: '10.244.1.9' }], [{ name: 'ok', port: 9090 }]), slice('ghost', [{ ip: '10.244.1.10' }], [{ port: 80 }])];
  const { result } = buildState([...services, ...bad], [...slices, ...extraSlices], logger);
  const planner = createNftPlanner({ config: testConfig(), nodeIPs: [NODE_IP] });
  const tracer = createNftTracer(planner.plan({ state: result.state, changed: result.changed, full: true }).transaction.text, { nodeIPs: [NODE_IP] });
  t.false(result.state.services.has('default/bad-ip'));
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.40', port: 81, proto: 'tcp' })).endpoints, ['10.244.1.9:9090']);
  t.deepEqual(summarize(tracer.trace({ src: '10.244.1.50', dst: '10.96.0.1', port: 80, proto: 'tcp' })).endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
  const text = lines.map((l) => `${String(l.service)} ${String(l.msg)}`).join('\n');
  t.regex(text, /default\/bad-ip .*invalid clusterIP/);
  t.regex(text, /default\/bad-port .*invalid port 70000/);
  t.regex(text, /default\/bad-ext .*invalid externalIP/);
  t.regex(text, /default\/ghost endpointslice for unknown service/);
});

/** A fake `nft`: applies nothing, remembers the generation the last full transaction wrote. */
function fakeNft() {
  const calls: { argv: string[]; input: string; streamed: boolean }[] = [];
  let generation: number | undefined;
  let checks = 0;
  const exec: CommandRunner = async (argv, o = {}) => {
    const input = o.inputChunks ? [...o.inputChunks].join('') : (o.input ?? '');
    calls.push({ argv, input, streamed: o.inputChunks !== undefined });
    const cmd = argv.join(' ');
    const list = /^nft list set (ip6?) keelson-proxy generation$/.exec(cmd);
    if (list) {
      checks++;
      if (generation === undefined) return { code: 1, stdout: '', stderr: 'Error: No such file or directory\nlist set ip keelson-proxy generation\n' };
      const el = `0x${generation.toString(16).padStart(8, '0')}`;
      return { code: 0, stdout: `table ${list[1]} keelson-proxy {\n\tset generation {\n\t\ttype mark\n\t\telements = { ${el} }\n\t}\n}\n`, stderr: '' };
    }
    if (cmd !== 'nft -f -') return { code: 127, stdout: '', stderr: `unexpected ${cmd}` };
    const m = /^add element ip keelson-proxy generation \{ (\d+) \}$/m.exec(input);
    if (m) generation = Number(m[1]);
    return { code: 0, stdout: '', stderr: '' };
  };
  return {
    exec,
    applied: () => calls.filter((c) => c.argv.join(' ') === 'nft -f -').map((c) => c.input),
    streamed: () => calls.filter((c) => c.streamed).length,
    /** Consistency checks (one `nft list set` per family, the second only when the first passed). */
    checks: () => checks,
    /** Someone deletes the tables. */
    deleteTables: () => (generation = undefined),
  };
}

function component(exec: CommandRunner, clock: Clock, afterFullSync?: () => void) {
  // Fixtures without a health-check node port: that would bind a real port.
  const feeds = {
    services: createMemoryFeed<Service>(services.filter((s) => !s.spec?.healthCheckNodePort)),
    endpointSlices: createMemoryFeed<EndpointSlice>(slices),
  };
  const config = testConfig({ mode: 'nftables', healthzBindAddress: '', metricsBindAddress: '', conntrack: { udpStaleFlowCleanup: false } });
  const proxy = createProxyComponent({ input: feeds, config, logger: recordingLogger().logger, nodeName: NODE, nodeIPs: [NODE_IP], exec, clock, ...(afterFullSync ? { afterFullSync } : {}) });
  return { proxy, feeds };
}

test('proxy: flush() right after start() is the first full sync, with no second one after it', async (t) => {
  const { clock, advance } = fakeClock();
  const nft = fakeNft();
  const { proxy } = component(nft.exec, clock);
  await advance(1); // health counts a sync at time 0 as none
  await proxy.start();
  await proxy.flush();
  t.is(nft.applied().length, 1);
  t.regex(nft.applied()[0]!, /^add table ip keelson-proxy\ndelete table ip keelson-proxy\n/);
  t.is(nft.streamed(), 1, 'the full transaction is streamed to nft, not passed as one string');
  await advance(5000);
  t.is(nft.applied().length, 1, 'no second full sync');
  t.is(nft.checks(), 0);
  t.true(proxy.health().healthy);
  await proxy.stop();
});

test('proxy: the syncPeriod resync only checks the generation; drift (tables deleted) brings a full rebuild at once', async (t) => {
  const { clock, advance } = fakeClock();
  const nft = fakeNft();
  const { proxy, feeds } = component(nft.exec, clock);
  await proxy.start();
  await proxy.flush();
  await advance(30000);
  t.is(nft.checks(), 2, 'one consistency check: both families');
  t.is(nft.applied().length, 1, 'nothing changed: nothing written');
  // A change and a resync together: the change is applied incrementally after the check.
  feeds.endpointSlices.upsert(slice('web', [{ ip: '10.244.2.2', node: 'node-b' }], [{ port: 8080 }]));
  await advance(1000);
  t.is(nft.applied().length, 2);
  t.true(nft.applied()[1]!.split('\n').filter(Boolean).every((l) => /^(add|delete) element /.test(l)), nft.applied()[1]);
  nft.deleteTables();
  await advance(29000);
  t.is(nft.checks(), 3, 'the first family is missing: drift');
  t.is(nft.applied().length, 3, 'drift repaired in the same period');
  t.regex(nft.applied()[2]!, /^add table ip keelson-proxy\ndelete table ip keelson-proxy\n/, 'rebuilt from scratch');
  await advance(30000);
  t.is(nft.checks(), 5);
  t.is(nft.applied().length, 3, 'the rebuilt table passes the next check');
  await proxy.stop();
});

test('proxy: afterFullSync (the daemon memory release) follows every full rewrite and no incremental sync', async (t) => {
  const { clock, advance } = fakeClock();
  const nft = fakeNft();
  let fullSyncs = 0;
  const { proxy, feeds } = component(nft.exec, clock, () => fullSyncs++);
  await proxy.start();
  await proxy.flush();
  t.is(fullSyncs, 1, 'the first full sync');
  feeds.endpointSlices.upsert(slice('web', [{ ip: '10.244.2.3', node: 'node-b' }], [{ port: 8080 }]));
  await advance(1000);
  t.is(nft.applied().length, 2);
  t.is(fullSyncs, 1, 'an incremental sync does not ask for it');
  nft.deleteTables();
  await advance(30000);
  t.is(nft.applied().length, 3, 'drift repaired with a full rebuild');
  t.is(fullSyncs, 2, 'the rebuild asks for it');
  await proxy.stop();
});

test('mode probe: only `nft --check`, with the per-protocol endpoint maps of the real ruleset, in a table of its own', async (t) => {
  const calls: { argv: string[]; input?: string }[] = [];
  const ok = await nftablesSupported(async (argv, o = {}) => (calls.push({ argv, ...(o.input !== undefined ? { input: o.input } : {}) }), { code: 0, stdout: '', stderr: '' }));
  t.true(ok.ok);
  t.is(calls.length, 1);
  t.deepEqual(calls[0]!.argv, ['nft', '--check', '-f', '-']);
  const probe = calls[0]!.input!;
  t.is(probe.replace(/generation \{ \d+ \}/g, ''), nftablesProbe().replace(/generation \{ \d+ \}/g, ''));
  t.false(probe.includes('keelson-proxy'), 'never names the live table');
  for (const f of ['ip', 'ip6']) {
    for (const p of ['tcp', 'udp', 'sctp']) {
      t.true(probe.includes(`: ${f} daddr . ${p} dport`), `${f} ${p} endpoint map value type`);
      t.regex(probe, new RegExp(`add rule ${f} keelson-probe \\S+ .*meta l4proto ${p} dnat ${f} to .* map @endpoints-${p}`));
      t.regex(probe, new RegExp(`add rule ${f} keelson-probe \\S+ .*meta l4proto ${p} dnat ${f} to .* map @nodeport-endpoints-${p}`));
    }
    t.regex(probe, new RegExp(`add rule ${f} keelson-probe \\S+ .*numgen random mod \\d+ offset 65536 map`), 'ETP Local short-circuit');
    t.regex(probe, new RegExp(`add rule ${f} keelson-probe firewall-\\S+ ${f} saddr != `), 'loadBalancerSourceRanges');
  }
  t.regex(probe, /add rule ip keelson-probe affinity-\S+ update @affinity-/, 'ClientIP affinity (IPv4 only, see netproxy/mode.ts)');
  const refused = await nftablesSupported(async () => ({ code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory\nmore' }));
  t.deepEqual(refused, { ok: false, reason: 'Error: Could not process rule: No such file or directory' });
});

const kernelTest = integrationTest({ root: true, commands: ['nft', 'ip', 'nsenter'] });

kernelTest('mode probe: the real nft accepts it and nothing is left behind', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  const exec = createCommandRunner(['nsenter', ...nsenterArgs(ns)]);
  t.deepEqual(await nftablesSupported(exec), { ok: true });
  t.is((await exec(['nft', 'list', 'ruleset'])).stdout.trim(), '');
  // The probe names the live table nowhere: a table keelson already has is not consulted.
  t.is(await chooseMode('', exec, recordingLogger().logger), 'nftables');
});

kernelTest('nftables consistency check on the real nft: passes on its own table, finds a deleted or rewritten one', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  const exec = createCommandRunner(['nsenter', ...nsenterArgs(ns)]);
  const backend = createNftablesBackend({ exec, logger: recordingLogger().logger, config: testConfig(), nodeIPs: [NODE_IP] });
  const { state, result } = buildState(services, slices);
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  const r = state.build();
  t.deepEqual(await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true }), { rules: (await backend.sync({ state: r.state, changed: new Set(), full: false })).rules });
  // Someone loads an older copy of the table (another generation).
  t.is((await exec(['nft', 'flush', 'set', 'ip6', 'keelson-proxy', 'generation'])).code, 0);
  t.is((await exec(['nft', 'add', 'element', 'ip6', 'keelson-proxy', 'generation', '{ 7 }'])).code, 0);
  t.regex((await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true })).drift ?? '', /^ip6 table keelson-proxy: generation \d+ expected, found 0x00000007/);
  await backend.sync({ state: r.state, changed: r.changed, full: true });
  t.is((await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true })).drift, undefined, 'repaired');
  t.is((await exec(['nft', 'delete', 'table', 'ip', 'keelson-proxy'])).code, 0);
  t.regex((await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true })).drift ?? '', /^ip table keelson-proxy or its generation set is missing/);
  await backend.sync({ state: r.state, changed: r.changed, full: true });
  t.is((await backend.sync({ state: r.state, changed: r.changed, full: false, verify: true })).drift, undefined, 'rebuilt');
});
