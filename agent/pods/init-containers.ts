/**
 * Init containers and sidecars (kubelet's computeInitContainerActions): init containers run one at
 * a time in spec order, each must exit 0 before the next starts; a failure is retried with the
 * crash-loop backoff, or fails the pod under restartPolicy Never. Init containers with
 * `restartPolicy: Always` are sidecars: started in order (the next init container waits until the
 * sidecar has started: it runs and its startupProbe, if any, succeeded), kept running (restarted
 * whatever the pod's policy, also when its liveness or startup probe fails) beside the app
 * containers, and stopped with the pod. Only instances in the current sandbox count: a new sandbox
 * runs the init containers again.
 */
import type { Container, ContainerStatus, Pod, PodCondition, PodStatus } from 'kubernetes-types/core/v1';
import type { Backoff } from './backoff';
import { ANNOTATION_CONTAINER_HASH, containerSpecHash } from './labels';
import { backoffKey, type ContainerToKill, type ContainerToStart, type PodActions, type ProbeVerdicts, type Waiting } from './pod-actions';
import { iso, terminatedState } from './container-state';
import type { ContainerInstance, RuntimePodState } from './runtime-state';

export const isSidecar = (c: Container): boolean => c.restartPolicy === 'Always';

export interface InitDecision {
  /** Every regular init container exited 0 and every sidecar runs (or the app containers already ran). */
  initialized: boolean;
  /** A regular init container failed under restartPolicy Never: the pod fails. */
  failed: boolean;
  start: ContainerToStart[];
  kill: ContainerToKill[];
  waiting: Map<string, Waiting>;
  retryAfterMs?: number;
}

function crashLoop(pod: Pod, c: Container, delayMs: number): Waiting {
  const s = delayMs / 1000;
  const delay = s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
  return { reason: 'CrashLoopBackOff', message: `back-off ${delay} restarting failed container=${c.name} pod=${pod.metadata!.name}_${pod.metadata!.namespace}(${pod.metadata!.uid})` };
}

/**
 * Whether a running sidecar counts as started: without a startupProbe (or without a prober) once it
 * runs; with one, once the probe succeeded (not known to the prober yet: not started).
 */
export function sidecarStarted(c: Container, id: string, probes?: Pick<ProbeVerdicts, 'health'>): boolean {
  if (!c.startupProbe || !probes?.health) return true;
  return probes.health(id)?.started ?? false;
}

export function computeInitContainerActions(pod: Pod, state: RuntimePodState, backoff: Backoff, now: number, probes?: ProbeVerdicts): InitDecision {
  const init = pod.spec?.initContainers ?? [];
  const policy = pod.spec?.restartPolicy ?? 'Always';
  const uid = pod.metadata!.uid!;
  const sandboxId = state.sandboxes[0]?.id;
  const decision: InitDecision = { initialized: true, failed: false, start: [], kill: [], waiting: new Map() };
  if (!init.length) return decision;
  const inSandbox = state.containers.filter((c) => c.podSandboxId === sandboxId || c.podSandboxId === '');
  const latestOf = (name: string) => inSandbox.find((c) => c.name === name);
  const anyOf = (name: string) => state.containers.find((c) => c.name === name);
  const appNames = new Set((pod.spec?.containers ?? []).map((c) => c.name));
  // once an app container ran in this sandbox, initialization is over: only sidecars are looked after
  const appsStarted = inSandbox.some((c) => appNames.has(c.name));
  let retry = Infinity;

  /** Restarts an exited container now or after its backoff; returns false while it waits. */
  const restart = (c: Container, latest: ContainerInstance): boolean => {
    const wait = backoff.remaining(backoffKey(uid, c.name), latest.finishedAt || now);
    if (wait > 0) {
      decision.waiting.set(c.name, crashLoop(pod, c, backoff.current(backoffKey(uid, c.name))));
      retry = Math.min(retry, wait);
      return false;
    }
    decision.start.push({ container: c, restartCount: latest.restartCount + 1, previous: latest, reason: 'restart' });
    return true;
  };

  for (const c of init) {
    const latest = latestOf(c.name);
    const restartCount = (anyOf(c.name)?.restartCount ?? -1) + 1;
    if (isSidecar(c)) {
      if (latest?.state === 'running') {
        const probeFailure = probes?.killReason(latest.id);
        if (probeFailure) {
          // killed now; restarted by a later sync once it exited (with crash-loop backoff)
          decision.kill.push({ id: latest.id, name: c.name, reason: `${probeFailure}, will be restarted` });
        } else if (latest.annotations[ANNOTATION_CONTAINER_HASH] !== containerSpecHash(c)) {
          decision.kill.push({ id: latest.id, name: c.name, reason: 'container spec changed' });
          decision.start.push({ container: c, restartCount: latest.restartCount + 1, reason: 'spec changed' });
        } else if (sidecarStarted(c, latest.id, probes)) {
          continue;
        }
        if (appsStarted) continue;
        // the next init container waits until this sidecar has started (runs, startup probe passed)
        decision.initialized = false;
        break;
      }
      if (!latest) decision.start.push({ container: c, restartCount, reason: 'first start' });
      else if (latest.state === 'exited') restart(c, latest);
      else {
        decision.kill.push({ id: latest.id, name: c.name, reason: `container in state ${latest.state}` });
        decision.start.push({ container: c, restartCount: latest.restartCount + 1, reason: 'restart' });
      }
      // the next init container starts once this sidecar runs
      if (!appsStarted) decision.initialized = false;
      if (!appsStarted) break;
      continue;
    }
    if (appsStarted) continue;
    if (latest?.state === 'exited' && latest.exitCode === 0) continue;
    decision.initialized = false;
    if (!latest) {
      decision.start.push({ container: c, restartCount, reason: 'first start' });
    } else if (latest.state === 'running') {
      // wait for it to finish
    } else if (latest.state === 'exited') {
      if (policy === 'Never') decision.failed = true;
      else restart(c, latest);
    } else {
      decision.kill.push({ id: latest.id, name: c.name, reason: `container in state ${latest.state}` });
      decision.start.push({ container: c, restartCount: latest.restartCount + 1, reason: 'restart' });
    }
    break;
  }
  if (retry !== Infinity) decision.retryAfterMs = retry;
  return decision;
}

/** Adds the decision to the pod's actions; returns true when the app containers may be looked at. */
export function applyInitDecision(actions: PodActions, d: InitDecision): boolean {
  actions.containersToStart.push(...d.start);
  actions.containersToKill.push(...d.kill);
  for (const [k, v] of d.waiting) actions.waiting.set(k, v);
  if (d.retryAfterMs !== undefined) actions.retryAfterMs = Math.min(actions.retryAfterMs ?? Infinity, d.retryAfterMs);
  if (d.failed) {
    actions.podDone = true;
    return false;
  }
  return d.initialized;
}

// ---------------------------------------------------------------- status

/**
 * Adds initContainerStatuses and the Initialized condition to a status built for the app
 * containers; app containers not started yet wait with reason PodInitializing.
 */
export function addInitContainerStatuses(
  pod: Pod, state: RuntimePodState, status: PodStatus,
  ctx: { runtimeName: string; waiting: (name: string) => Waiting | undefined; terminated?: boolean; health?: (containerId: string) => { ready: boolean; started: boolean } | undefined },
): void {
  const init = pod.spec?.initContainers ?? [];
  if (!init.length) return;
  const appNames = new Set(pod.spec!.containers.map((c) => c.name));
  const sandboxId = state.sandboxes[0]?.id;
  const appsStarted = state.containers.some((c) => appNames.has(c.name) && c.podSandboxId === sandboxId);
  let initialized = appsStarted;
  if (!initialized) {
    initialized = init.every((c) => {
      const latest = state.containers.find((i) => i.name === c.name && i.podSandboxId === sandboxId);
      return isSidecar(c) ? latest?.state === 'running' && sidecarStarted(c, latest.id, ctx) : latest?.state === 'exited' && latest.exitCode === 0;
    });
  }
  status.initContainerStatuses = init.map((c): ContainerStatus => {
    const [latest, previous] = state.containers.filter((i) => i.name === c.name);
    const s: ContainerStatus = {
      name: c.name, image: c.image!, imageID: latest?.imageRef ?? '', ready: false, restartCount: latest?.restartCount ?? 0, started: false, state: {},
    };
    if (latest) s.containerID = `${ctx.runtimeName}://${latest.id}`;
    if (latest?.state === 'running' && !ctx.terminated) {
      s.state = { running: { startedAt: iso(latest.startedAt || latest.createdAt) } };
      s.started = !isSidecar(c) || sidecarStarted(c, latest.id, ctx);
      s.ready = isSidecar(c) && s.started && (ctx.health?.(latest.id)?.ready ?? true);
    } else if (latest?.state === 'exited' && (latest.exitCode === 0 || ctx.terminated || !ctx.waiting(c.name))) {
      s.state = terminatedState(latest, ctx.runtimeName);
      s.ready = latest.exitCode === 0 && !isSidecar(c);
    } else {
      s.state = { waiting: ctx.waiting(c.name) ?? { reason: latest ? 'CrashLoopBackOff' : 'PodInitializing' } };
      if (latest?.state === 'exited') s.lastState = terminatedState(latest, ctx.runtimeName);
    }
    if (previous?.state === 'exited' && !s.lastState && latest !== previous && latest?.state !== 'exited') s.lastState = terminatedState(previous, ctx.runtimeName);
    return s;
  });
  if (!initialized) {
    for (const cs of status.containerStatuses ?? []) {
      if (cs.state?.waiting?.reason === 'ContainerCreating' && !cs.containerID) cs.state = { waiting: { reason: 'PodInitializing' } };
    }
  }
  const cond = status.conditions?.find((c: PodCondition) => c.type === 'Initialized');
  if (cond) {
    cond.status = initialized ? 'True' : 'False';
    if (!initialized) cond.reason = 'ContainersNotInitialized';
  }
}
