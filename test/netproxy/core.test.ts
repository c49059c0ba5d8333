import test from 'ava';
import { parseProxyConfig, parseDuration } from '../../netproxy/config';
import { createSyncRunner, type Clock } from '../../netproxy/syncrunner';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { NODE_IP, service, services, slice, slices } from './fixtures';
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

test('sync runner: a burst becomes one run, runs are minSyncPeriod apart, full resync every syncPeriod', async (t) => {
  const { clock, advance } = fakeClock();
  const runs: { at: number; full: boolean }[] = [];
  const runner = createSyncRunner({ minIntervalMs: 1000, maxIntervalMs: 30000, clock, run: async (full) => (runs.push({ at: clock.now(), full }), true) });
  runner.start();
  await advance(0);
  t.deepEqual(runs, [{ at: 0, full: true }]);
  for (let i = 0; i < 50; i++) runner.request();
  await advance(999);
  t.is(runs.length, 1);
  await advance(1);
  t.deepEqual(runs[1], { at: 1000, full: false });
  await advance(40000);
  t.deepEqual(runs.slice(2), [{ at: 31000, full: true }]);
  await runner.stop();
});

test('sync runner: a failed run is retried as a full run', async (t) => {
  const { clock, advance } = fakeClock();
  const runs: boolean[] = [];
  let fail = true;
  const runner = createSyncRunner({ minIntervalMs: 100, maxIntervalMs: 10000, clock, random: () => 0.5, run: async (full) => {
    runs.push(full);
    if (fail) { fail = false; return false; }
    return true;
  } });
  runner.start();
  await advance(0);
  runner.request();
  await advance(1000);
  t.deepEqual(runs, [true, true]);
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
