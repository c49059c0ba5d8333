import test from 'ava';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime } from '../../agent/pods/fake-runtime';
import { createPleg, type PodLifecycleEvent } from '../../agent/pods/pleg';
import type { ContainerConfig, PodSandboxConfig } from '../../agent/pods/runtime';

const labels = (uid: string, extra: Record<string, string> = {}) => ({
  'io.kubernetes.pod.uid': uid, 'io.kubernetes.pod.name': 'p', 'io.kubernetes.pod.namespace': 'default', 'app.kubernetes.io/managed-by': 'keelson', ...extra,
});

function sandboxConfig(uid: string, managed = true): PodSandboxConfig {
  const l = labels(uid);
  if (!managed) delete (l as Record<string, string>)['app.kubernetes.io/managed-by'];
  return {
    metadata: { name: 'p', namespace: 'default', uid, attempt: 0 }, hostname: 'p', logDirectory: '/l', portMappings: [], labels: l, annotations: {},
    linux: { securityContext: { namespaceOptions: { network: 'pod', pid: 'container', ipc: 'pod' }, privileged: false } },
  };
}

function containerConfig(uid: string): ContainerConfig {
  return {
    metadata: { name: 'app', attempt: 0 }, image: 'i', command: [], args: [], workingDir: '', envs: [], labels: labels(uid, { 'io.kubernetes.container.name': 'app' }),
    annotations: {}, logPath: 'app/0.log',
    linux: { resources: { cpuShares: 2, cpuQuota: 0, cpuPeriod: 100_000, memoryLimitInBytes: 0 }, securityContext: { privileged: false, namespaceOptions: { network: 'pod', pid: 'container', ipc: 'pod' } } },
  };
}

test('relist turns runtime changes into pod lifecycle events, for keelson-managed pods only', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: ['i'] });
  const events: PodLifecycleEvent[] = [];
  const pleg = createPleg({ runtime, clock, logger: pino({ level: 'silent' }), onEvent: (e) => events.push(e) });
  const sb = await runtime.runPodSandbox(sandboxConfig('u1'));
  await runtime.runPodSandbox(sandboxConfig('foreign', false));
  const id = await runtime.createContainer(sb, containerConfig('u1'), sandboxConfig('u1'));
  await runtime.startContainer(id);
  t.deepEqual((await pleg.relist()).map((e) => e.type).sort(), ['ContainerStarted', 'SandboxChanged']);
  t.deepEqual(pleg.runtimePods(), [{ uid: 'u1', name: 'p', namespace: 'default' }]);
  t.deepEqual(await pleg.relist(), []);
  runtime.exitContainer(id, 1);
  t.deepEqual(await pleg.relist(), [{ type: 'ContainerDied', uid: 'u1', id, containerName: 'app' }]);
  await runtime.removeContainer(id);
  t.deepEqual(await pleg.relist(), [{ type: 'ContainerRemoved', uid: 'u1', id, containerName: 'app' }]);
  t.is(events.length, 4);
  t.true(pleg.healthy().healthy);
});

test('a failing relist makes the PLEG unhealthy, and it recovers', async (t) => {
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock);
  const pleg = createPleg({ runtime, clock, logger: pino({ level: 'silent' }), onEvent: () => {} });
  await pleg.relist();
  runtime.failNext('listPodSandboxes', 'connection refused');
  await pleg.relist();
  t.like(pleg.healthy(), { healthy: false });
  t.regex(pleg.healthy().message ?? '', /connection refused/);
  await pleg.relist();
  t.true(pleg.healthy().healthy);
  clock.advance(181_000);
  t.false(pleg.healthy().healthy);
});
