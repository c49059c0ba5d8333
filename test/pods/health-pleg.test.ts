/**
 * Observing the runtime: pod syncs read the PLEG's relist instead of listing the runtime per pod,
 * and container events (where the runtime streams them) are noticed without waiting for a relist.
 */
import test from 'ava';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime } from '../../agent/pods/fake-runtime';
import { createPleg, type PodLifecycleEvent } from '../../agent/pods/pleg';
import type { ContainerConfig, PodSandboxConfig } from '../../agent/pods/runtime';
import { createRuntimeStateReader } from '../../agent/pods/runtime-state';
import { flush, IMAGE, makePod, running, setup } from './health-helpers';

test('40 pods resync from the relist cache: no per-pod list or status call', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set(Array.from({ length: 40 }, (_, i) => makePod(`p${i}`)));
  await env.until(() => env.kubelet.pods().filter((p) => p.phase === 'Running').length === 40);
  await env.tick(1000);
  env.runtime.calls.length = 0;
  // 60 s: two periodic resyncs of every pod and 60 relists
  for (let i = 0; i < 60; i++) await env.tick(1000);
  const count = (method: string) => env.runtime.calls.filter((c) => c.startsWith(`${method} `)).length;
  t.true(count('listContainers') <= 61, `listContainers called ${count('listContainers')} times`);
  t.true(count('listPodSandboxes') <= 61, `listPodSandboxes called ${count('listPodSandboxes')} times`);
  t.is(count('containerStatus'), 0);
  t.is(count('podSandboxStatus'), 0);
  t.is(env.kubelet.pods().filter((p) => p.phase === 'Running').length, 40);
});

test('a container death is noticed on the next relist (1 s) and restarted from fresh state', async (t) => {
  const env = await setup();
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('one')]);
  await env.until(() => running(env.runtime).length === 1);
  const [c] = running(env.runtime);
  env.runtime.exitContainer(c.id, 2);
  await env.tick(1000);
  const now = running(env.runtime);
  t.is(now.length, 1);
  t.not(now[0].id, c.id);
  t.is(env.kubelet.pods()[0].containers[0].restartCount, 1);
});

function sandboxConfig(uid: string): PodSandboxConfig {
  return {
    metadata: { name: 'p', namespace: 'default', uid, attempt: 0 }, hostname: 'p', logDirectory: '/l', portMappings: [], labels: labels(uid), annotations: {},
    linux: { securityContext: { namespaceOptions: { network: 'pod', pid: 'container', ipc: 'pod' }, privileged: false } },
  };
}

function containerConfig(uid: string): ContainerConfig {
  return {
    metadata: { name: 'app', attempt: 0 }, image: IMAGE, command: [], args: [], workingDir: '', envs: [], labels: labels(uid, { 'io.kubernetes.container.name': 'app' }),
    annotations: {}, logPath: 'app/0.log',
    linux: { resources: { cpuShares: 2, cpuQuota: 0, cpuPeriod: 100_000, memoryLimitInBytes: 0 }, securityContext: { privileged: false, namespaceOptions: { network: 'pod', pid: 'container', ipc: 'pod' } } },
  };
}

const labels = (uid: string, extra: Record<string, string> = {}) => ({
  'io.kubernetes.pod.uid': uid, 'io.kubernetes.pod.name': 'p', 'io.kubernetes.pod.namespace': 'default', 'app.kubernetes.io/managed-by': 'keelson', ...extra,
});

test('container events trigger a relist at once; the periodic relist slows down while they flow', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: [IMAGE] });
  runtime.eventsSupported = true;
  const events: PodLifecycleEvent[] = [];
  const reader = createRuntimeStateReader(runtime);
  const pleg = createPleg({ runtime, clock, logger: pino({ level: 'silent' }), cache: reader, onEvent: (e) => events.push(e) });
  pleg.start();
  t.teardown(() => pleg.stop());
  await flush(runtime);
  t.is(pleg.mode(), 'relist');
  const sb = await runtime.runPodSandbox(sandboxConfig('u1'));
  const id = await runtime.createContainer(sb, containerConfig('u1'), sandboxConfig('u1'));
  await runtime.startContainer(id);
  await flush(runtime); // no clock movement at all
  t.is(pleg.mode(), 'events');
  t.deepEqual(events.map((e) => e.type).sort(), ['ContainerStarted', 'SandboxChanged']);
  runtime.exitContainer(id, 1);
  await flush(runtime);
  t.deepEqual(events.slice(2), [{ type: 'ContainerDied', uid: 'u1', id, containerName: 'app' }]);
  // the next sync of the pod reads the exit from the relist, without listing the runtime itself
  runtime.calls.length = 0;
  const state = await reader.read('u1');
  t.is(state.containers[0].state, 'exited');
  t.deepEqual(runtime.calls.filter((c) => c.startsWith('list')), []);
  // with events flowing, the periodic relist runs every 5 s instead of every second
  const lists = () => runtime.calls.filter((c) => c.startsWith('listContainers')).length;
  clock.advance(4000);
  await flush(runtime);
  t.is(lists(), 0);
  clock.advance(1000);
  await flush(runtime);
  t.is(lists(), 1);
});

test('a runtime without container events (containerd 1.6) keeps the 1 s relist and says so once', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const pleg = createPleg({ runtime, clock, logger, onEvent: () => {} });
  pleg.start();
  t.teardown(() => pleg.stop());
  await flush(runtime);
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await flush(runtime);
  }
  t.is(pleg.mode(), 'relist');
  t.is(runtime.calls.filter((c) => c.startsWith('listContainers')).length, 4);
  t.is(lines.filter((l) => String(l.msg).includes('no container events')).length, 1);
});
