import test from 'ava';
import { createNotifier, statusText, watchdogUsecFrom, type NotifyRunner } from '../../systemd/notify';
import { serviceStatusLine } from '../../agent/run';
import { hostShuttingDown } from '../../systemd/shutdown';
import { toCriError } from '../../cri/errors';

function recorder(fail = false) {
  const calls: { args: string[]; socket: string | undefined }[] = [];
  const run: NotifyRunner = async (args, env) => {
    calls.push({ args, socket: env.NOTIFY_SOCKET });
    if (fail) throw new Error('boom');
  };
  return { calls, run };
}

function fakeTimers() {
  const timers: { fn: () => void; ms: number; cleared: boolean }[] = [];
  return {
    timers,
    setInterval: (fn: () => void, ms: number) => {
      const t = { fn, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearInterval: (h: unknown) => void ((h as { cleared: boolean }).cleared = true),
  };
}

test('no NOTIFY_SOCKET: every call is a no-op and no watchdog timer is set', async (t) => {
  const { calls, run } = recorder();
  const timers = fakeTimers();
  const n = createNotifier({ env: {}, run, ...timers });
  t.false(n.enabled);
  await n.status('starting');
  await n.ready('up');
  n.startWatchdog()();
  t.deepEqual(calls, []);
  t.is(timers.timers.length, 0);
});

test('messages carry MAINPID via --pid, keep their order, and only systemd-notify gets the socket', async (t) => {
  const { calls, run } = recorder();
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '4000000', WATCHDOG_PID: '42', PATH: '/bin' };
  const n = createNotifier({ env, pid: 42, ppid: 1, run });
  t.true(n.enabled);
  t.is(n.watchdogUsec, 4_000_000);
  t.is(env.NOTIFY_SOCKET, undefined, 'removed from the environment children inherit');
  t.is(env.WATCHDOG_USEC, undefined);
  void n.status('starting kubelet');
  void n.ready('running: kubelet healthy');
  await n.stopping('stopping');
  t.deepEqual(
    calls.map((c) => c.args),
    [
      ['--pid=42', 'STATUS=starting kubelet'],
      ['--pid=42', 'READY=1', 'STATUS=running: kubelet healthy'],
      ['--pid=42', 'STOPPING=1', 'STATUS=stopping'],
    ],
  );
  t.true(calls.every((c) => c.socket === '/run/systemd/notify'));
});

test('watchdog pings at half of WATCHDOG_USEC from a timer, and stops', async (t) => {
  const { calls, run } = recorder();
  const timers = fakeTimers();
  const n = createNotifier({ env: { NOTIFY_SOCKET: '@sock', WATCHDOG_USEC: '60000000' }, pid: 7, run, ...timers });
  const stop = n.startWatchdog();
  t.is(timers.timers.length, 1);
  t.is(timers.timers[0]!.ms, 30_000);
  timers.timers[0]!.fn();
  await n.status('x');
  t.deepEqual(calls.map((c) => c.args.join(' ')), ['--pid=7 WATCHDOG=1', '--pid=7 WATCHDOG=1', '--pid=7 STATUS=x']);
  stop();
  t.true(timers.timers[0]!.cleared);
});

test('the watchdog is not ours when WATCHDOG_PID names another process', (t) => {
  t.is(watchdogUsecFrom({ WATCHDOG_USEC: '1000' }, 5, 1), 1000);
  t.is(watchdogUsecFrom({ WATCHDOG_USEC: '1000', WATCHDOG_PID: '5' }, 5, 1), 1000);
  t.is(watchdogUsecFrom({ WATCHDOG_USEC: '1000', WATCHDOG_PID: '1' }, 5, 1), 1000, 'a wrapper script that forked us');
  t.is(watchdogUsecFrom({ WATCHDOG_USEC: '1000', WATCHDOG_PID: '99' }, 5, 1), undefined);
  t.is(watchdogUsecFrom({ WATCHDOG_USEC: 'x' }, 5, 1), undefined);
  t.is(watchdogUsecFrom({}, 5, 1), undefined);
});

test('a failing systemd-notify warns once per outage, not once per ping', async (t) => {
  let fail = true;
  const warnings: string[] = [];
  const run: NotifyRunner = async () => {
    if (fail) throw new Error('no such file');
  };
  const logger = { warn: (_o: object, msg: string) => void warnings.push(msg), debug: () => {} };
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/s' }, pid: 1, run, logger });
  await n.status('a');
  await n.status('b');
  await n.status('c');
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /cannot notify systemd/);
  fail = false;
  await n.status('d');
  t.is(warnings.length, 2);
  t.regex(warnings[1]!, /work again/);
});

test('STATUS= text is one bounded printable line', (t) => {
  t.is(statusText('a\nb\tc '), 'a b c');
  t.is(statusText('x'.repeat(500)).length, 200);
  t.is(statusText('ok\u0007'), 'ok');
});

test('the service status line names the unhealthy components and why', (t) => {
  t.is(serviceStatusLine([{ name: 'kubelet', healthy: true }, { name: 'dns', healthy: true }]), 'running: kubelet, dns healthy');
  t.is(
    serviceStatusLine([{ name: 'kubelet', healthy: false, message: 'runtime unreachable' }, { name: 'dns', healthy: true }]),
    'running; unhealthy: kubelet (runtime unreachable)',
  );
});

test('host shutdown: a queued poweroff/reboot job, state stopping, or a shutdown due within a minute', async (t) => {
  const probe = (jobs: string, state: string, files: Record<string, string> = {}, now = 1_000_000) =>
    hostShuttingDown({
      exists: (p) => p === '/run/systemd/system' || p in files,
      readFile: (p) => files[p],
      systemctl: async (args) => (args[0] === 'list-jobs' ? jobs : state),
      now: () => now,
    });
  t.deepEqual(await probe('', 'running\n'), { shuttingDown: false });
  t.deepEqual(await probe('  42 keelson.service stop running\n', 'degraded\n'), { shuttingDown: false }, 'systemctl stop keelson is not a host shutdown');
  t.deepEqual(await probe('  7 poweroff.target start waiting\n  8 keelson.service stop running\n', 'running\n'), { shuttingDown: true, reason: 'poweroff.target job queued' });
  t.deepEqual(await probe(' 9 reboot.target start waiting\n', 'running\n'), { shuttingDown: true, reason: 'reboot.target job queued' });
  t.deepEqual(await probe(' 3 shutdown.target start waiting\n 4 reboot.target start waiting\n', 'running\n'), { shuttingDown: true, reason: 'reboot.target job queued' });
  t.deepEqual(await probe('', 'stopping\n'), { shuttingDown: true, reason: 'system state stopping' });
  const scheduled = (inMs: number) => ({ '/run/systemd/shutdown/scheduled': `USEC=${(1_000_000 + inMs) * 1000}\nMODE=poweroff\n` });
  t.deepEqual(await probe('', 'running\n', scheduled(30_000)), { shuttingDown: true, reason: 'scheduled shutdown due' });
  t.deepEqual(await probe('', 'running\n', scheduled(10 * 60_000)), { shuttingDown: false }, 'a shutdown +10 is not now');
  const noSystemd = await hostShuttingDown({ exists: () => false, systemctl: async () => 'stopping' });
  t.false(noSystemd.shuttingDown);
});

test('journal lines about a missing runtime carry no empty grpc "Resolution note:" tail', (t) => {
  const err = toCriError(
    Object.assign(new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ENOENT /run/x.sock. Resolution note: '), {
      code: 14,
      details: 'No connection established. Last error: Error: connect ENOENT /run/x.sock. Resolution note: ',
    }),
    { socket: '/run/x.sock', method: 'RuntimeService/Version', timeoutMs: 1000 },
  );
  t.is(err.message, 'CRI runtime unavailable at unix socket /run/x.sock: No connection established. Last error: Error: connect ENOENT /run/x.sock. [RuntimeService/Version]');
});
