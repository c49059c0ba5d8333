/**
 * The one place that answers "should this container be running?" (kubelet's computePodActions):
 * given the pod spec, what the runtime holds and the crash-loop backoff, it decides whether a new
 * sandbox is needed, which containers to start or kill, which wait in backoff, and whether the pod
 * has finished for good. It only decides; runtime-manager.ts carries the decision out.
 */
import type { Container as ApiContainer, Pod } from 'kubernetes-types/core/v1';
import type { Backoff } from './backoff';
import { ANNOTATION_CONTAINER_HASH, containerSpecHash } from './labels';
import { applyInitDecision, computeInitContainerActions } from './init-containers';
import type { ContainerInstance, RuntimePodState } from './runtime-state';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface ContainerToStart {
  container: ApiContainer;
  restartCount: number;
  /** The exited instance this start replaces (its backoff is bumped), if any. */
  previous?: ContainerInstance;
  reason: 'first start' | 'restart' | 'spec changed' | 'sandbox changed';
}

export interface ContainerToKill {
  id: string;
  name: string;
  reason: string;
  /** Overrides the pod's grace period (a probe's terminationGracePeriodSeconds). */
  gracePeriodSeconds?: number;
}

export interface Waiting {
  reason: string;
  message: string;
}

export interface PodActions {
  /** Stop every container and sandbox of the pod before creating a new sandbox. */
  killPod: boolean;
  createSandbox: boolean;
  /** Attempt number of the sandbox to create. */
  attempt: number;
  /** The ready sandbox to start containers in, when no new one is needed. */
  sandboxId?: string;
  containersToStart: ContainerToStart[];
  containersToKill: ContainerToKill[];
  /** Containers that should run but must wait (CrashLoopBackOff), by name. */
  waiting: Map<string, Waiting>;
  /** When to sync again to end a backoff (ms from now). */
  retryAfterMs?: number;
  /** Nothing runs and nothing will be started again: the pod has reached a terminal phase. */
  podDone: boolean;
}

export function backoffKey(uid: string, containerName: string): string {
  return `${uid}/${containerName}`;
}

/** Whether a container whose latest instance is in this state should be (re)started. */
export function shouldRestart(policy: RestartPolicy, latest: ContainerInstance | undefined): boolean {
  if (!latest) return true;
  if (latest.state === 'running') return false;
  if (latest.state === 'created' || latest.state === 'unknown') return true;
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return latest.exitCode !== 0;
  return true;
}

function formatDelay(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m0s` : ms >= 60_000 ? `${Math.floor(ms / 60_000)}m${(ms % 60_000) / 1000}s` : `${ms / 1000}s`;
}

/** What the probes know about running containers (probes/probe-manager.ts). */
export interface ProbeVerdicts {
  /** Set when a liveness or startup probe failed: the container must be killed. */
  killReason(containerId: string): string | undefined;
  /** The failed probe's own terminationGracePeriodSeconds, if it sets one. */
  killGracePeriod?(containerId: string): number | undefined;
  /** Whether a running container passed its startup probe (undefined: not probed); sidecars gate the next init container on it. */
  health?(containerId: string): { started: boolean } | undefined;
}

export function computePodActions(pod: Pod, state: RuntimePodState, backoff: Backoff, now: number, probes?: ProbeVerdicts): PodActions {
  const policy = (pod.spec!.restartPolicy ?? 'Always') as RestartPolicy;
  const uid = pod.metadata!.uid!;
  const containers = pod.spec!.containers;
  const latestOf = (name: string) => state.containers.find((c) => c.name === name);
  const actions: PodActions = {
    killPod: false, createSandbox: false, attempt: 0, containersToStart: [], containersToKill: [], waiting: new Map(), podDone: false,
  };

  const sandbox = state.sandboxes[0];
  if (!sandbox || sandbox.state !== 'ready') {
    actions.attempt = sandbox ? sandbox.metadata.attempt + 1 : 0;
    const ranBefore = state.containers.length > 0;
    if (sandbox && policy === 'Never' && ranBefore) {
      actions.podDone = !state.containers.some((c) => c.state === 'running');
      actions.killPod = !actions.podDone;
      return actions;
    }
    const firstInit = pod.spec!.initContainers?.[0];
    if (firstInit) {
      // a new sandbox runs the init containers again, from the first (init-containers.ts does the rest)
      const latest = latestOf(firstInit.name);
      actions.containersToStart.push({ container: firstInit, restartCount: latest ? latest.restartCount + 1 : 0, reason: sandbox ? 'sandbox changed' : 'first start' });
    }
    for (const c of firstInit ? [] : containers) {
      const latest = latestOf(c.name);
      if (latest && latest.state === 'exited' && !shouldRestart(policy, latest)) continue;
      actions.containersToStart.push({ container: c, restartCount: latest ? latest.restartCount + 1 : 0, reason: sandbox ? 'sandbox changed' : 'first start' });
    }
    if (actions.containersToStart.length === 0) {
      actions.podDone = true;
      return actions;
    }
    actions.createSandbox = true;
    actions.killPod = state.sandboxes.some((s) => s.state === 'ready') || state.containers.some((c) => c.state === 'running');
    return actions;
  }

  actions.sandboxId = sandbox.id;
  if (!applyInitDecision(actions, computeInitContainerActions(pod, state, backoff, now, probes))) return actions;
  let retry = Infinity;
  let active = 0;
  for (const c of containers) {
    const latest = latestOf(c.name);
    if (latest?.state === 'running') {
      const probeFailure = probes?.killReason(latest.id);
      if (probeFailure) {
        // killed now; the next sync restarts it per the restart policy (with crash-loop backoff)
        const restarts = policy !== 'Never';
        const grace = probes?.killGracePeriod?.(latest.id);
        actions.containersToKill.push({
          id: latest.id, name: c.name, reason: restarts ? `${probeFailure}, will be restarted` : probeFailure, ...(grace === undefined ? {} : { gracePeriodSeconds: grace }),
        });
      } else if (latest.annotations[ANNOTATION_CONTAINER_HASH] !== containerSpecHash(c)) {
        actions.containersToKill.push({ id: latest.id, name: c.name, reason: 'container spec changed' });
        actions.containersToStart.push({ container: c, restartCount: latest.restartCount + 1, reason: 'spec changed' });
      }
      active++;
      continue;
    }
    if (!shouldRestart(policy, latest)) continue;
    active++;
    if (!latest) {
      actions.containersToStart.push({ container: c, restartCount: 0, reason: 'first start' });
      continue;
    }
    if (latest.state !== 'exited') {
      actions.containersToKill.push({ id: latest.id, name: c.name, reason: `container in state ${latest.state}` });
      actions.containersToStart.push({ container: c, restartCount: latest.restartCount + 1, reason: 'restart' });
      continue;
    }
    const wait = backoff.remaining(backoffKey(uid, c.name), latest.finishedAt || now);
    if (wait > 0) {
      const delay = backoff.current(backoffKey(uid, c.name));
      actions.waiting.set(c.name, {
        reason: 'CrashLoopBackOff',
        message: `back-off ${formatDelay(delay)} restarting failed container=${c.name} pod=${pod.metadata!.name}_${pod.metadata!.namespace}(${uid})`,
      });
      retry = Math.min(retry, wait);
      continue;
    }
    actions.containersToStart.push({ container: c, restartCount: latest.restartCount + 1, previous: latest, reason: 'restart' });
  }
  // instances of containers no longer in the spec (possible once specs can change in place)
  const names = new Set([...containers, ...(pod.spec!.initContainers ?? [])].map((c) => c.name));
  for (const inst of state.containers) {
    if (inst.state === 'running' && !names.has(inst.name)) actions.containersToKill.push({ id: inst.id, name: inst.name, reason: 'not in the pod spec' });
  }
  if (retry !== Infinity) actions.retryAfterMs = Math.min(actions.retryAfterMs ?? Infinity, retry);
  actions.podDone = active === 0;
  return actions;
}
