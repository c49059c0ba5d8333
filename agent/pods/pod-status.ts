/**
 * Builds a pod's API status (phase, container states, restarts, IPs, conditions) from what the
 * runtime holds and what the last sync decided. Pure: the status manager stores the result.
 */
import type { ContainerStatus as ApiContainerStatus, Pod, PodCondition, PodStatus } from 'kubernetes-types/core/v1';
import type { PodActions, RestartPolicy, Waiting } from './pod-actions';
import { shouldRestart } from './pod-actions';
import { parseQuantity } from './quantity';
import { addInitContainerStatuses } from './init-containers';
import { isHostNetwork } from './runtime-config';
import { iso, terminatedState } from './container-state';
import { capTerminationMessages } from './termination-message';
import type { ContainerInstance, RuntimePodState } from './runtime-state';

export interface StatusContext {
  runtimeName: string;
  hostIP: string;
  /** ISO time the pod was first seen by its worker. */
  startTime: string;
  /** Current time (ms), for condition transition times. */
  now: number;
  /** Start errors from the last sync (ErrImagePull, CreateContainerError…), by container name. */
  errors: Map<string, Waiting>;
  actions?: PodActions;
  /** Set once the worker has terminated the pod. */
  terminated?: boolean;
  /** Readiness and startup of running containers from their probes (absent: ready once running). */
  health?: (containerId: string) => { ready: boolean; started: boolean } | undefined;
  /** Probes that cannot run (bad spec), by container name: shown in the Ready condition's message. */
  probeProblems?: Map<string, string>;
}

/** Guaranteed: cpu and memory limits set and equal to requests everywhere; BestEffort: nothing set. */
export function qosClass(pod: Pod): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  let any = false;
  let guaranteed = true;
  for (const c of pod.spec!.containers) {
    const limits = c.resources?.limits ?? {};
    const requests = { ...limits, ...(c.resources?.requests ?? {}) };
    for (const r of ['cpu', 'memory']) {
      if (limits[r] !== undefined || requests[r] !== undefined) any = true;
      if (limits[r] === undefined || parseQuantity(requests[r]) !== parseQuantity(limits[r])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export function generatePodStatus(pod: Pod, state: RuntimePodState, ctx: StatusContext): PodStatus {
  const policy = (pod.spec!.restartPolicy ?? 'Always') as RestartPolicy;
  let pending = 0;
  let running = 0;
  let failed = 0;
  let succeeded = 0;
  let ready = 0;
  const statuses: ApiContainerStatus[] = pod.spec!.containers.map((spec) => {
    const [latest, previous] = state.containers.filter((c) => c.name === spec.name);
    const status: ApiContainerStatus = {
      name: spec.name,
      image: spec.image!,
      imageID: latest?.imageRef ?? '',
      ready: false,
      restartCount: latest?.restartCount ?? 0,
      started: false,
      state: {},
    };
    if (latest) status.containerID = `${ctx.runtimeName}://${latest.id}`;
    const waiting = ctx.actions?.waiting.get(spec.name) ?? ctx.errors.get(spec.name);
    if (latest?.state === 'running' && !ctx.terminated) {
      status.state = { running: { startedAt: iso(latest.startedAt || latest.createdAt) } };
      // a container the prober does not know yet is not ready if it has a readiness or startup probe
      const health = ctx.health?.(latest.id) ?? { ready: !ctx.health || (!spec.readinessProbe && !spec.startupProbe), started: !ctx.health || !spec.startupProbe };
      status.started = health.started;
      status.ready = health.ready && health.started;
      running++;
      if (status.ready) ready++;
      if (previous && previous.state === 'exited') status.lastState = terminatedState(previous, ctx.runtimeName);
    } else if (latest?.state === 'exited' && (ctx.terminated || !shouldRestart(policy, latest))) {
      status.state = terminatedState(latest, ctx.runtimeName);
      if (latest.exitCode === 0) succeeded++;
      else failed++;
      if (previous && previous.state === 'exited') status.lastState = terminatedState(previous, ctx.runtimeName);
    } else if (latest?.state === 'exited') {
      // will be restarted: waiting (backoff), last state the exit
      status.state = { waiting: waiting ?? { reason: 'ContainerCreating' } };
      status.lastState = terminatedState(latest, ctx.runtimeName);
      running++; // a restarting container keeps the pod Running, as kubelet reports it
    } else {
      status.state = { waiting: waiting ?? { reason: 'ContainerCreating' } };
      if (latest && latest.state !== 'created') status.lastState = terminatedState(latest, ctx.runtimeName);
      if (ctx.terminated) failed++;
      else pending++;
    }
    return status;
  });

  let phase: string;
  if (pending > 0) phase = 'Pending';
  else if (running > 0) phase = 'Running';
  else if (failed > 0) phase = 'Failed';
  else phase = 'Succeeded';

  const sandbox = state.sandboxes[0];
  const podIP = isHostNetwork(pod) ? ctx.hostIP : (sandbox?.state === 'ready' ? sandbox.ip : '');
  const now = iso(ctx.now);
  const allReady = ready === statuses.length && phase === 'Running';
  const unready = statuses.filter((c) => !c.ready).map((c) => c.name);
  const problems = [...(ctx.probeProblems ?? [])].map(([name, message]) => `${name}: ${message}`);
  const notReady = unready.length
    ? { reason: 'ContainersNotReady', message: [`containers with unready status: [${unready.join(' ')}]`, ...problems].join('; ') }
    : {};
  const cond = (type: string, ok: boolean): PodCondition => ({
    type, status: ok ? 'True' : 'False', lastTransitionTime: now, ...(!ok && (type === 'Ready' || type === 'ContainersReady') ? notReady : {}),
  });
  const status: PodStatus = {
    phase,
    conditions: [
      cond('PodReadyToStartContainers', sandbox?.state === 'ready'),
      cond('Initialized', true),
      cond('Ready', allReady),
      cond('ContainersReady', allReady),
      cond('PodScheduled', true),
    ],
    hostIP: ctx.hostIP || undefined,
    hostIPs: ctx.hostIP ? [{ ip: ctx.hostIP }] : undefined,
    podIP: podIP || undefined,
    podIPs: podIP ? [{ ip: podIP }] : undefined,
    startTime: ctx.startTime,
    containerStatuses: statuses,
    qosClass: qosClass(pod),
  };
  addInitContainerStatuses(pod, state, status, {
    runtimeName: ctx.runtimeName, terminated: ctx.terminated, waiting: (name) => ctx.actions?.waiting.get(name) ?? ctx.errors.get(name), health: ctx.health,
  });
  capTerminationMessages(pod, status);
  return status;
}
