import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { createBackoff } from '../../agent/pods/backoff';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { ANNOTATION_CONTAINER_HASH, containerSpecHash } from '../../agent/pods/labels';
import { computePodActions } from '../../agent/pods/pod-actions';
import { generatePodStatus } from '../../agent/pods/pod-status';
import type { ContainerInstance, RuntimePodState } from '../../agent/pods/runtime-state';

const pod = (restartPolicy = 'Always'): Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u' },
  spec: {
    restartPolicy,
    initContainers: [{ name: 'one', image: 'i' }, { name: 'side', image: 'i', restartPolicy: 'Always' }, { name: 'two', image: 'i' }],
    containers: [{ name: 'app', image: 'i' }],
  },
});

const hashOf = (name: string) => containerSpecHash([...pod().spec!.initContainers!, ...pod().spec!.containers].find((c) => c.name === name)!);
let seq = 0;
function inst(name: string, state: ContainerInstance['state'], exitCode = 0): ContainerInstance {
  seq++;
  return {
    id: `c${seq}`, podSandboxId: 's1', name, restartCount: 0, metadata: { name, attempt: 0 }, image: 'i', imageRef: 'i', state, createdAt: seq,
    labels: {}, annotations: { [ANNOTATION_CONTAINER_HASH]: hashOf(name) }, startedAt: 1, finishedAt: state === 'exited' ? 1 : 0, exitCode, reason: '', message: '', logPath: '',
  };
}

function state(...containers: ContainerInstance[]): RuntimePodState {
  return { uid: 'u', sandboxes: [{ id: 's1', ip: '10.0.0.1', state: 'ready', metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 }, createdAt: 0, labels: {}, annotations: {} }], containers };
}

const starts = (p: Pod, s: RuntimePodState, policy = createBackoff(createFakeClock(1000))) => computePodActions(p, s, policy, 1000).containersToStart.map((c) => c.container.name);

test('init containers: one at a time in order; a sidecar is started and the next waits until it runs; then the app', (t) => {
  const clock = createFakeClock(1000);
  const noSandbox = computePodActions(pod(), { uid: 'u', sandboxes: [], containers: [] }, createBackoff(clock), 1000);
  t.true(noSandbox.createSandbox);
  t.deepEqual(noSandbox.containersToStart.map((c) => c.container.name), ['one']);
  t.deepEqual(starts(pod(), state()), ['one']);
  t.deepEqual(starts(pod(), state(inst('one', 'running'))), []);
  t.deepEqual(starts(pod(), state(inst('one', 'exited', 0))), ['side']);
  t.deepEqual(starts(pod(), state(inst('one', 'exited', 0), inst('side', 'running'))), ['two']);
  t.deepEqual(starts(pod(), state(inst('one', 'exited', 0), inst('side', 'running'), inst('two', 'exited', 0))), ['app']);
  // after the app started, a dead sidecar is restarted (any restart policy); init containers are not re-run
  const after = state(inst('one', 'exited', 0), inst('side', 'exited', 1), inst('two', 'exited', 0), inst('app', 'running'));
  t.deepEqual(starts(pod('Never'), after), ['side']);
});

test('a failed init container: retried with backoff under Always/OnFailure, fails the pod under Never', (t) => {
  const s = state(inst('one', 'exited', 2));
  t.deepEqual(starts(pod('OnFailure'), s), ['one']);
  const never = computePodActions(pod('Never'), s, createBackoff(createFakeClock(1000)), 1000);
  t.true(never.podDone);
  t.deepEqual(never.containersToStart, []);
  const clock = createFakeClock(1000);
  const backoff = createBackoff(clock);
  backoff.next('u/one', 1);
  const waiting = computePodActions(pod(), s, backoff, 1000);
  t.is(waiting.waiting.get('one')?.reason, 'CrashLoopBackOff');
  t.deepEqual(waiting.containersToStart, []);
  t.true((waiting.retryAfterMs ?? 0) > 0);
});

test('a running sidecar is not killed as "not in the pod spec"', (t) => {
  const a = computePodActions(pod(), state(inst('one', 'exited', 0), inst('side', 'running'), inst('two', 'exited', 0), inst('app', 'running')), createBackoff(createFakeClock(1000)), 1000);
  t.deepEqual(a.containersToKill, []);
});

test('a sidecar with a startupProbe: the next init container waits until the probe passed; a failed probe restarts it; status follows', (t) => {
  const probed = (): Pod => {
    const p = pod();
    p.spec!.initContainers![1].startupProbe = { exec: { command: ['true'] } };
    return p;
  };
  const p = probed();
  const sideOf = (c: ContainerInstance) => ({ ...c, annotations: { [ANNOTATION_CONTAINER_HASH]: containerSpecHash(p.spec!.initContainers![1]) } });
  const side = sideOf(inst('side', 'running'));
  const s = state(inst('one', 'exited', 0), side);
  const verdicts = (health: { started: boolean; ready: boolean } | undefined, kill?: { id: string; reason: string }) =>
    ({ killReason: (id: string) => (id === kill?.id ? kill.reason : undefined), health: () => health });
  const actions = (v: ReturnType<typeof verdicts>) => computePodActions(p, s, createBackoff(createFakeClock(1000)), 1000, v);
  // not known to the prober yet, or probe not passed: init container two waits
  t.deepEqual(actions(verdicts(undefined)).containersToStart, []);
  t.deepEqual(actions(verdicts({ started: false, ready: false })).containersToStart, []);
  t.deepEqual(actions(verdicts({ started: true, ready: true })).containersToStart.map((c) => c.container.name), ['two']);
  // without a prober the probe cannot gate anything: running is started
  t.deepEqual(starts(p, s), ['two']);
  // a failed startup probe kills the sidecar (restarted once it exited), and two still waits
  const failed = actions(verdicts({ started: false, ready: false }, { id: side.id, reason: 'Container side failed startup probe' }));
  t.deepEqual(failed.containersToKill.map((k) => [k.id, k.name]), [[side.id, 'side']]);
  t.deepEqual(failed.containersToStart, []);
  // once the apps run, a sidecar failing liveness is killed without holding anything back
  const laterSide = sideOf(inst('side', 'running'));
  const later = state(inst('one', 'exited', 0), laterSide, inst('two', 'exited', 0), inst('app', 'running'));
  const live = computePodActions(p, later, createBackoff(createFakeClock(1000)), 1000, verdicts({ started: true, ready: true }, { id: laterSide.id, reason: 'Container side failed liveness probe' }));
  t.deepEqual(live.containersToKill.map((k) => k.name), ['side']);
  t.deepEqual(live.containersToStart, []);

  // status: not Initialized while the probe has not passed; the sidecar's started/ready follow its probes
  const status = (health: { started: boolean; ready: boolean }) =>
    generatePodStatus(p, s, { runtimeName: 'containerd', hostIP: '', startTime: '', now: 1000, errors: new Map(), health: () => health });
  const waiting = status({ started: false, ready: false });
  t.is(waiting.conditions!.find((c) => c.type === 'Initialized')!.status, 'False');
  t.like(waiting.initContainerStatuses![1], { started: false, ready: false });
  const started = status({ started: true, ready: true });
  t.is(started.conditions!.find((c) => c.type === 'Initialized')!.status, 'False'); // two has not run yet
  t.like(started.initContainerStatuses![1], { started: true, ready: true });
});
