/**
 * The pod lifecycle against the in-memory runtime and a fake clock: what is created, restart
 * policy and crash-loop backoff (the real 10 s, 20 s, 40 s sequence), termination, adoption after
 * a restart, and cleanup of orphans. The same behaviour is proven on containerd in standalone.test.ts.
 */
import test from 'ava';
import pino from 'pino';
import type { Pod } from 'kubernetes-types/core/v1';
import { createFakeClock, type FakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime, type FakeRuntime } from '../../agent/pods/fake-runtime';
import { createKubelet, type KubeletComponent } from '../../agent/pods/kubelet';
import type { PodSource } from '../../agent/pods/pod-source';
import { flush, IMAGE, makePod, running, setup as setupWith, unitRootDir, type Env } from './health-helpers';

const setup = (runtime?: FakeRuntime, clock?: FakeClock, initial: Pod[] = []): Promise<Env> =>
  setupWith({ ...(runtime ? { runtime } : {}), ...(clock ? { clock } : {}), initial });

const containerStatus = (k: KubeletComponent, name: string) => k.pods().find((p) => p.name === name)?.containers[0];

test('a pod gets a sandbox and its containers, labelled and logged like kubelet', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const pod = makePod('web', { hostname: 'h1' }, [
    { name: 'app', image: IMAGE, command: ['sh'], args: ['-c', 'echo hi'], workingDir: '/tmp', env: [{ name: 'A', value: '1' }, { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
      ports: [{ containerPort: 80, hostPort: 8080 }], securityContext: { runAsUser: 1000 }, resources: { limits: { cpu: '500m', memory: '64Mi' } } },
  ]);
  env.source.set([pod]);
  await env.tick();
  const [sb] = env.runtime.sandboxes.values();
  const uid = pod.metadata!.uid!;
  t.is(sb.config.metadata.name, 'web-node1');
  t.is(sb.config.hostname, 'h1');
  t.is(sb.config.logDirectory, `/tmp/keelson-test-pod-logs/default_web-node1_${uid}`);
  t.deepEqual(sb.config.portMappings, [{ protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '' }]);
  t.is(sb.labels['io.kubernetes.pod.uid'], uid);
  const [c] = env.runtime.containers.values();
  t.is(c.state, 'running');
  t.is(c.config.logPath, 'app/0.log');
  t.deepEqual(c.config.envs, [{ key: 'A', value: '1' }, { key: 'POD', value: 'web-node1' }]);
  t.deepEqual(c.config.linux.resources, { cpuShares: 512, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitInBytes: 64 * 2 ** 20 });
  t.is(c.config.linux.securityContext.runAsUser, 1000);
  t.is(c.labels['io.kubernetes.container.name'], 'app');
  t.regex(c.annotations['io.kubernetes.container.hash'], /^[0-9a-f]{16}$/);
  const status = env.kubelet.pods()[0];
  t.is(status.phase, 'Running');
  t.is(status.podIP, sb.ip);
  t.is(status.containers[0].state, 'running');
  t.is(status.containers[0].containerID, `fake://${c.id}`);
});

test('restartPolicy Always: immediate first restart, then 10 s, 20 s, 40 s backoff', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('crash')]);
  await env.tick();
  const restartDelays: number[] = [];
  const backoffMessages = new Set<string>();
  let last = running(env.runtime)[0];
  for (let i = 0; i < 4; i++) {
    env.runtime.exitContainer(last.id, 1);
    const exitAt = env.clock.now();
    for (let waited = 0; waited < 60; waited++) {
      await env.tick(1000);
      const status = containerStatus(env.kubelet, 'crash-node1');
      if (status?.reason === 'CrashLoopBackOff') backoffMessages.add(status.message!.split(' restarting')[0]);
      const now = running(env.runtime)[0];
      if (now) {
        last = now;
        restartDelays.push((now.startedAt - exitAt) / 1000);
        break;
      }
    }
  }
  // each restart happens once its backoff has run out (plus at most the 1 s relist that sees the exit)
  const expected = [0, 10, 20, 40];
  restartDelays.forEach((d, i) => t.true(d >= expected[i] && d <= expected[i] + 1.5, `restart ${i + 1} after ${d} s, expected ${expected[i]} s`));
  t.is(restartDelays.length, 4);
  t.deepEqual([...backoffMessages], ['back-off 10s', 'back-off 20s', 'back-off 40s']);
  t.is(containerStatus(env.kubelet, 'crash-node1')?.restartCount, 4);
  t.is(last.config.logPath, 'app/4.log');
  // old instances are removed; the newest exited one is kept (for logs --previous)
  t.is([...env.runtime.containers.values()].filter((c) => c.state === 'exited').length, 1);
});

test('restartPolicy OnFailure: exit 0 is not restarted and the pod Succeeds', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('job', { restartPolicy: 'OnFailure' })]);
  await env.tick();
  env.runtime.exitContainer(running(env.runtime)[0].id, 0);
  await env.tick();
  await env.tick(30_000);
  t.is(running(env.runtime).length, 0);
  t.is(env.runtime.containers.size, 1);
  const status = env.kubelet.pods()[0];
  t.is(status.phase, 'Succeeded');
  t.is(status.containers[0].state, 'terminated');
  t.is(status.containers[0].exitCode, 0);
  t.is([...env.runtime.sandboxes.values()][0].state, 'notready');
});

test('restartPolicy OnFailure restarts a failure; Never does not and the pod Fails', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('retry', { restartPolicy: 'OnFailure' }), makePod('once', { restartPolicy: 'Never' })]);
  await env.tick();
  for (const c of running(env.runtime)) env.runtime.exitContainer(c.id, 2);
  await env.tick();
  const retry = env.kubelet.pods().find((p) => p.name === 'retry-node1')!;
  const once = env.kubelet.pods().find((p) => p.name === 'once-node1')!;
  t.is(retry.containers[0].state, 'running');
  t.is(retry.containers[0].restartCount, 1);
  t.is(once.phase, 'Failed');
  t.is(once.containers[0].exitCode, 2);
});

test('a removed pod is stopped with its grace period, then removed with its logs folder', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('web', { terminationGracePeriodSeconds: 7 })]);
  await env.tick();
  const id = running(env.runtime)[0].id;
  env.source.set([]);
  await env.tick();
  t.true(env.runtime.calls.includes(`stopContainer ${id} 7`));
  t.is(env.runtime.containers.size, 0);
  t.is(env.runtime.sandboxes.size, 0);
  t.deepEqual(env.kubelet.pods(), []);
});

test('a changed pod (new UID, same name) replaces the old one only after it stopped', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('web')]);
  await env.tick();
  const old = running(env.runtime)[0];
  const next = makePod('web', {}, [{ name: 'app', image: IMAGE, args: ['new'] }]);
  env.source.set([next]);
  await env.tick();
  const now = running(env.runtime);
  t.is(now.length, 1);
  t.not(now[0].id, old.id);
  t.is(now[0].labels['io.kubernetes.pod.uid'], next.metadata!.uid!);
  const stopAt = env.runtime.calls.indexOf(`stopContainer ${old.id} 30`);
  const createAt = env.runtime.calls.findIndex((c, i) => i > 0 && c === 'runPodSandbox web-node1' && i > env.runtime.calls.indexOf('runPodSandbox web-node1'));
  t.true(stopAt >= 0 && createAt > stopAt);
});

test('a pod removed and added back (same UID) runs again once its removal finished', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const pod = makePod('web');
  env.source.set([pod]);
  await env.tick();
  const first = running(env.runtime)[0].id;
  env.source.set([]);
  env.source.set([pod]);
  await env.tick();
  await env.tick();
  const now = running(env.runtime);
  t.is(now.length, 1);
  t.not(now[0].id, first);
  t.is(env.kubelet.pods().length, 1);
  t.is(env.kubelet.pods()[0].phase, 'Running');
});

test('a new keelson adopts running containers: nothing restarted, restart count kept', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: [IMAGE] });
  const first = await setup(runtime, clock);
  const pod = makePod('web');
  first.source.set([pod]);
  await first.tick();
  first.runtime.exitContainer(running(runtime)[0].id, 1);
  await first.tick();
  const before = running(runtime)[0];
  t.is(containerStatus(first.kubelet, 'web-node1')?.restartCount, 1);
  await first.kubelet.stop();
  const callsBefore = runtime.calls.length;

  const second = await setup(runtime, clock, [pod]);
  t.teardown(() => second.kubelet.stop());
  await second.tick();
  await second.tick(30_000);
  const mutating = runtime.calls.slice(callsBefore).filter((c) => /^(runPodSandbox|createContainer|startContainer|stopContainer|stopPodSandbox)/.test(c));
  t.deepEqual(mutating, []);
  t.is(running(runtime)[0].id, before.id);
  t.is(containerStatus(second.kubelet, 'web-node1')?.restartCount, 1);
});

test('a container whose spec hash differs from the spec is recreated', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('web')]);
  await env.tick();
  const old = running(env.runtime)[0];
  old.annotations['io.kubernetes.container.hash'] = 'made-by-an-older-keelson';
  await env.tick(30_000);
  const now = running(env.runtime)[0];
  t.not(now.id, old.id);
  t.is(now.annotations['io.kubernetes.container.restartCount'], '1');
});

test('an updated pod with the same UID restarts only the container whose spec changed', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  const pod = makePod('web', {}, [{ name: 'a', image: IMAGE }, { name: 'b', image: IMAGE }]);
  env.source.set([pod]);
  await env.tick();
  const before = new Map(running(env.runtime).map((c) => [c.metadata.name, c.id]));
  const updated = structuredClone(pod);
  updated.spec!.containers[1].image = 'busybox:2';
  env.runtime.images.add('busybox:2');
  env.source.set([updated]);
  await env.tick();
  const after = new Map(running(env.runtime).map((c) => [c.metadata.name, c.id]));
  t.is(after.get('a'), before.get('a'));
  t.not(after.get('b'), before.get('b'));
  t.is(containerStatus(env.kubelet, 'web-node1')?.name, 'a');
  t.is(env.kubelet.pods()[0].containers[1].image, 'busybox:2');
});

test('pods in the runtime that no source wants are stopped and removed', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: [IMAGE] });
  const first = await setup(runtime, clock);
  first.source.set([makePod('gone'), makePod('kept')]);
  await first.tick();
  await first.kubelet.stop();
  t.is(running(runtime).length, 2);
  const second = await setup(runtime, clock, [makePod('kept')]);
  t.teardown(() => second.kubelet.stop());
  await second.tick();
  await second.tick();
  t.deepEqual([...runtime.sandboxes.values()].map((s) => s.metadata.name), ['kept-node1']);
  t.is(running(runtime).length, 1);
});

test('no orphan cleanup before the source delivered its first set (an unreadable folder is not an empty one)', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: [IMAGE] });
  const first = await setup(runtime, clock, [makePod('web')]);
  await first.tick();
  await first.kubelet.stop();
  const silent: PodSource = { name: 'file', start: async () => {}, stop() {}, problems: () => [] };
  const kubelet = createKubelet(
    { runtime, clock, logger: pino({ level: 'silent' }), config: { staticPodPath: '/m', podLogsDir: '/tmp/keelson-test-pod-logs', rootDir: unitRootDir(), nodeName: 'node1', resolvConf: '/nonexistent' } },
    { sources: [silent] },
  );
  await kubelet.start();
  t.teardown(() => kubelet.stop());
  for (let i = 0; i < 5; i++) {
    await flush(runtime);
    clock.advance(1000);
  }
  await flush(runtime);
  t.is(running(runtime).length, 1);
  t.false(runtime.calls.some((c) => c.startsWith('stopContainer')));
});

test('image pull policy: IfNotPresent pulls a missing image, Never reports ErrImageNeverPull, failed pulls back off', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.runtime.unpullable.add('nope:1');
  env.source.set([
    makePod('pull', {}, [{ name: 'app', image: 'other:2' }]),
    makePod('never', {}, [{ name: 'app', image: 'absent:1', imagePullPolicy: 'Never' }]),
    makePod('fail', {}, [{ name: 'app', image: 'nope:1' }]),
  ]);
  await env.tick();
  t.is(containerStatus(env.kubelet, 'pull-node1')?.state, 'running');
  t.is(containerStatus(env.kubelet, 'never-node1')?.reason, 'ErrImageNeverPull');
  t.regex(containerStatus(env.kubelet, 'fail-node1')?.reason ?? '', /^(ErrImagePull|ImagePullBackOff)$/);
  const pulls = () => env.runtime.calls.filter((c) => c === 'pullImage nope:1').length;
  t.is(pulls(), 1);
  await env.tick(5000);
  t.is(containerStatus(env.kubelet, 'fail-node1')?.reason, 'ImagePullBackOff');
  t.is(pulls(), 1);
  await env.tick(10_000);
  t.is(pulls(), 2);
  t.false(env.runtime.calls.includes('pullImage absent:1'));
  t.is(env.kubelet.pods().find((p) => p.name === 'pull-node1')?.phase, 'Running');
  t.is(env.kubelet.pods().find((p) => p.name === 'fail-node1')?.phase, 'Pending');
});

test('a failing sandbox creation leaves the pod Pending with the reason, and is retried', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.runtime.failNext('runPodSandbox', 'failed to setup network for sandbox: cni plugin not initialized');
  env.source.set([makePod('web')]);
  await env.tick(0);
  const pending = env.kubelet.pods()[0];
  t.is(pending.phase, 'Pending');
  t.regex(pending.containers[0].message ?? '', /cni plugin not initialized/);
  await env.tick(1000);
  t.is(env.kubelet.pods()[0].phase, 'Running');
});

test('stop() leaves containers running', async (t) => {
  const env = await setup();
  env.source.set([makePod('web')]);
  await env.tick();
  await env.kubelet.stop();
  await env.tick(60_000);
  t.is(running(env.runtime).length, 1);
});
