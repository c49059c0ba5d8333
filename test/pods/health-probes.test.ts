/**
 * Probes and lifecycle hooks on the fake runtime and fake clock: upstream defaults (period 10 s,
 * failure threshold 3), thresholds, readiness feeding `ready`, liveness failures restarting the
 * container, the startup probe gating the others, hooks, and a bad probe spec reported in status.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { registerEventSink } from '../../agent/pods/events';
import type { ExecResult } from '../../agent/pods/runtime';
import { flush, IMAGE, makePod, running, setup, type Env } from './health-helpers';

const result = (exitCode: number): ExecResult => ({ stdout: Buffer.from(exitCode ? 'bad' : 'ok'), stderr: Buffer.alloc(0), exitCode });

/** Exec probes answer by command name: `check <name>` exits with codes[name] (default 0). */
function programmable(env: Env) {
  const codes: Record<string, number> = {};
  const calls: { name: string; at: number }[] = [];
  env.runtime.execHandler = (_id, cmd) => {
    const name = cmd[1] ?? '';
    calls.push({ name, at: env.clock.now() });
    return result(codes[name] ?? 0);
  };
  return { codes, calls };
}

const exec = (name: string, extra: object = {}) => ({ exec: { command: ['check', name] }, ...extra });
const statusOf = (env: Env, pod: Pod) => env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)!;
const ready = (env: Env, pod: Pod) => statusOf(env, pod)?.containerStatuses?.[0]?.ready === true;

test('readiness: not ready until the probe succeeds, not ready after 3 failures (period 10 s), ready again after 1 success', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const probe = programmable(env);
  probe.codes.ready = 1;
  const pod = makePod('web', {}, [{ name: 'app', image: IMAGE, readinessProbe: exec('ready') }]);
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  await env.pass(25_000);
  t.false(ready(env, pod));
  t.like(statusOf(env, pod).conditions!.find((c) => c.type === 'Ready'), { status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [app]' });
  t.is(statusOf(env, pod).containerStatuses![0].started, true);
  // probed at once, then every 10 s (defaults)
  const gaps = probe.calls.slice(1).map((c, i) => c.at - probe.calls[i].at);
  t.true(gaps.length >= 2);
  t.true(gaps.every((g) => g === 10_000), `gaps ${gaps}`);
  probe.codes.ready = 0;
  const becameReady = await env.until(() => ready(env, pod), 20_000);
  t.true(becameReady <= 10_000);
  t.like(statusOf(env, pod).conditions!.find((c) => c.type === 'Ready'), { status: 'True' });
  probe.codes.ready = 1;
  const failingSince = env.clock.now();
  await env.until(() => !ready(env, pod), 60_000);
  // three failures in a row: the first at the next period, the third two periods later
  t.true(env.clock.now() - failingSince >= 20_000, `not ready after ${env.clock.now() - failingSince} ms`);
  t.is(running(env.runtime).length, 1, 'readiness failures never restart the container');
});

test('liveness: 3 failures kill the container (grace period), it restarts with restartCount 1 and lastState Terminated', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const probe = programmable(env);
  const pod = makePod('live', { terminationGracePeriodSeconds: 7 }, [{ name: 'app', image: IMAGE, livenessProbe: exec('live', { periodSeconds: 2 }) }]);
  const events: { reason: string; message: string; fieldPath?: string }[] = [];
  const sink = { owns: (uid: string) => uid === pod.metadata!.uid, record: (_p: Pod, _type: string, reason: string, message: string, o?: { fieldPath?: string }) => void events.push({ reason, message, fieldPath: o?.fieldPath }) };
  t.teardown(registerEventSink(sink));
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  const [first] = running(env.runtime);
  await env.pass(10_000);
  t.is(running(env.runtime)[0].id, first.id);
  probe.codes.live = 1;
  const failedAt = env.clock.now();
  await env.until(() => running(env.runtime).length === 1 && running(env.runtime)[0].id !== first.id, 30_000, 200);
  t.true(env.clock.now() - failedAt >= 4000, 'killed only after the third failure');
  t.true(env.runtime.calls.includes(`stopContainer ${first.id} 7`));
  t.true(env.logs.some((l) => l.msg === 'killing container' && l.reason === 'Container app failed liveness probe, will be restarted'));
  const status = statusOf(env, pod).containerStatuses![0];
  t.is(status.restartCount, 1, JSON.stringify(statusOf(env, pod)));
  t.is(status.lastState?.terminated?.exitCode, 143);
  t.is(status.lastState?.terminated?.containerID, `fake://${first.id}`);
  // Events: each failure is Unhealthy, the kill is Killing with the probe's message
  const unhealthy = events.filter((e) => e.reason === 'Unhealthy');
  t.true(unhealthy.length >= 3);
  t.deepEqual(unhealthy[0], { reason: 'Unhealthy', message: 'Liveness probe failed: command "check live" exited with 1: bad', fieldPath: 'spec.containers{app}' });
  t.like(events.find((e) => e.reason === 'Killing'), { message: 'Container app failed liveness probe, will be restarted' });
  t.true(events.filter((e) => e.reason === 'Started').length >= 2);
  // the new instance starts from a clean slate: the probe passes again and it keeps running
  probe.codes.live = 0;
  const second = running(env.runtime)[0].id;
  await env.pass(20_000);
  t.is(running(env.runtime)[0].id, second);
});

test('startup probe gates liveness and readiness; a failing startup probe kills the container', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const probe = programmable(env);
  probe.codes.startup = 1;
  probe.codes.live = 1; // would kill the container if it ran before startup succeeded
  const pod = makePod('slow', {}, [{
    name: 'app', image: IMAGE,
    startupProbe: exec('startup', { periodSeconds: 1, failureThreshold: 30 }),
    livenessProbe: exec('live', { periodSeconds: 1 }),
    readinessProbe: exec('ready', { periodSeconds: 1 }),
  }]);
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  const [c] = running(env.runtime);
  await env.pass(10_000);
  t.deepEqual([...new Set(probe.calls.map((x) => x.name))], ['startup']);
  t.like(statusOf(env, pod).containerStatuses![0], { started: false, ready: false });
  probe.codes.startup = 0;
  probe.codes.live = 0;
  await env.until(() => ready(env, pod), 5000, 200);
  t.like(statusOf(env, pod).containerStatuses![0], { started: true, ready: true });
  const startupCalls = probe.calls.filter((x) => x.name === 'startup').length;
  await env.pass(5000);
  t.is(probe.calls.filter((x) => x.name === 'startup').length, startupCalls, 'startup probe stops once it succeeded');
  t.true(probe.calls.some((x) => x.name === 'live'));
  t.is(running(env.runtime)[0].id, c.id);

  // a second pod whose startup never succeeds: killed after failureThreshold × period
  probe.codes.never = 1;
  const doomed = makePod('doomed', {}, [{ name: 'app', image: IMAGE, startupProbe: exec('never', { periodSeconds: 1, failureThreshold: 3 }) }]);
  env.source.set([pod, doomed]);
  await env.until(() => statusOf(env, doomed)?.containerStatuses?.[0]?.restartCount === 1, 20_000, 200);
  t.true(env.logs.some((l) => l.msg === 'killing container' && l.reason === 'Container app failed startup probe, will be restarted'));
});

test('initialDelaySeconds delays the first probe; timeouts count as failures', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const calls: number[] = [];
  const seconds: number[] = [];
  env.runtime.execHandler = (_id, _cmd, timeoutSeconds) => {
    calls.push(env.clock.now());
    seconds.push(timeoutSeconds);
    throw new Error('rpc error: code = DeadlineExceeded desc = timeout 3s exceeded: context deadline exceeded');
  };
  const pod = makePod('delayed', {}, [{ name: 'app', image: IMAGE, readinessProbe: exec('x', { initialDelaySeconds: 15, timeoutSeconds: 3 }) }]);
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  const startedAt = running(env.runtime)[0].startedAt;
  await env.pass(14_000);
  t.deepEqual(calls, []);
  await env.pass(2000);
  t.deepEqual(calls, [startedAt + 15_000]);
  t.deepEqual(seconds, [3]);
  t.false(ready(env, pod));
  t.is(statusOf(env, pod).conditions!.find((c) => c.type === 'Ready')!.message, 'containers with unready status: [app]');
});

test('a bad probe spec (unknown port name) is reported in the pod status and does not disturb other pods', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const bad = makePod('bad', {}, [{ name: 'app', image: IMAGE, ports: [{ name: 'http', containerPort: 80 }], readinessProbe: { httpGet: { port: 'no-such-port', path: '/' } }, livenessProbe: { tcpSocket: { port: 'nope' } } }]);
  const good = makePod('good', {}, [{ name: 'app', image: IMAGE, readinessProbe: exec('fine') }]);
  env.source.set([bad, good]);
  await env.until(() => running(env.runtime).length === 2);
  await env.pass(35_000);
  const status = statusOf(env, bad);
  t.is(status.phase, 'Running');
  t.false(status.containerStatuses![0].ready);
  const cond = status.conditions!.find((c) => c.type === 'Ready')!;
  t.is(cond.status, 'False');
  t.regex(cond.message!, /app: (Readiness|Liveness) probe errored: .*port name "(no-such-port|nope)" not found in the ports of container app/);
  // an errored liveness probe never kills the container
  t.is(status.containerStatuses![0].restartCount, 0);
  t.true(ready(env, good));
  t.true(env.logs.some((l) => l.level === 40 && l.pod === 'default/bad-node1' && String(l.msg).includes('probe errored')));
  // logged once per distinct error, not once per period
  t.is(env.logs.filter((l) => String(l.msg).startsWith('Readiness probe errored')).length, 1);
});

test('postStart: a failing hook kills the container (FailedPostStartHook) and it is restarted with backoff', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const probe = programmable(env);
  probe.codes.poststart = 1;
  const pod = makePod('hooked', {}, [{ name: 'app', image: IMAGE, lifecycle: { postStart: exec('poststart') } }]);
  env.source.set([pod]);
  await flush(env.runtime);
  const status = statusOf(env, pod).containerStatuses![0];
  t.is(status.state?.waiting?.reason, 'PostStartHookError');
  t.regex(status.state!.waiting!.message!, /Exec lifecycle hook \(\["check","poststart"\]\) for Container "app" in Pod "default\/hooked-node1" failed/);
  t.true(env.logs.some((l) => l.msg === 'killing container' && l.reason === 'FailedPostStartHook'));
  t.is(running(env.runtime).length, 0);
  probe.codes.poststart = 0;
  await env.until(() => running(env.runtime).length === 1, 60_000);
  t.is(statusOf(env, pod).containerStatuses![0].restartCount, 1);
});

test('preStop runs before the stop signal and its time counts against the grace period', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const order: string[] = [];
  env.runtime.execHandler = async (_id, cmd) => {
    order.push(`exec ${cmd[1]}`);
    env.clock.advance(3000); // the hook takes 3 s
    return result(0);
  };
  const pod = makePod('graceful', { terminationGracePeriodSeconds: 10 }, [{ name: 'app', image: IMAGE, lifecycle: { preStop: exec('prestop') } }]);
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  const [c] = running(env.runtime);
  env.runtime.calls.length = 0;
  env.source.set([]);
  await env.until(() => env.runtime.containers.size === 0);
  const stops = env.runtime.calls.filter((x) => x.startsWith('execSync') || x.startsWith('stopContainer'));
  t.deepEqual(stops, [`execSync ${c.id} check prestop`, `stopContainer ${c.id} 7`]);
  t.deepEqual(order, ['exec prestop']);
});

test("a probe's own terminationGracePeriodSeconds replaces the pod's when it kills", async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const probe = programmable(env);
  probe.codes.live = 1;
  const pod = makePod('quick', { terminationGracePeriodSeconds: 30 }, [{ name: 'app', image: IMAGE, livenessProbe: exec('live', { periodSeconds: 1, failureThreshold: 1, terminationGracePeriodSeconds: 2 }) }]);
  env.source.set([pod]);
  await env.until(() => running(env.runtime).length === 1);
  const [c] = running(env.runtime);
  await env.until(() => env.runtime.calls.some((x) => x.startsWith(`stopContainer ${c.id}`)), 5000, 200);
  t.true(env.runtime.calls.includes(`stopContainer ${c.id} 2`));
});

test('httpGet hooks: postStart and preStop GET their path from the node; a failing postStart is FailedPostStartHook', async (t) => {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(req.url === '/broken' ? 500 : 200).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const hook = (path: string) => ({ httpGet: { host: '127.0.0.1', port, path } });
  const good = makePod('hooks', {}, [{ name: 'app', image: IMAGE, lifecycle: { postStart: hook('/started'), preStop: hook('/stopping') } }]);
  const bad = makePod('badhook', {}, [{ name: 'app', image: IMAGE, lifecycle: { postStart: hook('/broken') } }]);
  env.source.set([good, bad]);
  await env.until(() => statusOf(env, good)?.phase === 'Running' && statusOf(env, bad)?.containerStatuses?.[0]?.state?.waiting !== undefined, 10_000, 100);
  t.true(seen.includes('GET /started'));
  t.regex(statusOf(env, bad).containerStatuses![0].state!.waiting!.reason!, /PostStartHookError|CrashLoopBackOff/);
  env.source.set([bad]);
  await env.until(() => seen.includes('GET /stopping'), 10_000, 100);
  t.pass();
});
