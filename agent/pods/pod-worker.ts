/**
 * One worker per pod (kubelet's pod workers). Each worker applies its pod's updates strictly in
 * order, one at a time, and moves through the lifecycle phases
 *   syncing → terminating → terminated
 * Syncing reconciles the runtime with the spec (pod-actions.ts decides, runtime-manager.ts acts);
 * a pod whose containers have all finished for good under its restart policy, or whose source
 * dropped it, is terminated: containers stopped within the grace period, then the sandbox. Runtime
 * events (pleg.ts), backoff expiry and a periodic resync wake the worker for another sync.
 */
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Backoff } from './backoff';
import type { Clock, ClockTimer } from './clock';
import { podLogDir } from './log-paths';
import { computePodActions, type PodActions, type Waiting } from './pod-actions';
import { generatePodStatus } from './pod-status';
import { podRef, type RuntimeManager } from './runtime-manager';
import type { RuntimePodState, RuntimeStateReader } from './runtime-state';
import type { StatusManager } from './status-manager';
import { containerFieldPath, recordEvent } from './events';
import { createPodProbes, type PodProbes } from './probes/probe-manager';
import type { Prober } from './probes/prober';
import { isHostNetwork } from './runtime-config';
import { ErrorCodes, errorMessage } from '../errors';

export type WorkerPhase = 'syncing' | 'terminating' | 'terminated';

export interface PodWorkerDeps {
  manager: RuntimeManager;
  reader: RuntimeStateReader;
  backoff: Backoff;
  clock: Clock;
  logger: Logger;
  statusManager: StatusManager;
  runtimeName: () => string;
  hostIP: string;
  podLogsDir: string;
  /** Periodic resync, in case an event was missed (default 30 s). */
  resyncMs?: number;
  /** Runs liveness, readiness and startup probes; without it containers are ready once running. */
  prober?: Prober;
}

export interface TerminateOptions {
  /** Overrides the pod's terminationGracePeriodSeconds. */
  gracePeriodSeconds?: number;
  /** Also remove the pod's containers, sandboxes and logs (the pod is gone from its source). */
  remove: boolean;
}

export interface PodWorker {
  readonly uid: string;
  readonly ref: string;
  pod(): Pod;
  phase(): WorkerPhase;
  /** A new version of the pod (same UID). */
  update(pod: Pod): void;
  terminate(options: TerminateOptions): void;
  /** Something changed in the runtime for this pod: sync soon. */
  wake(): void;
  /** Stops the worker's loop; containers keep running (keelson shutting down). */
  stop(): void;
  /** Resolves when the pod is terminated (and removed, when asked). */
  readonly terminated: Promise<void>;
  /** Resolves when the queue is empty and the worker is idle (tests). */
  idle(): Promise<void>;
}

type Work = { kind: 'sync' } | { kind: 'update'; pod: Pod } | { kind: 'terminate'; options: TerminateOptions };

const MAX_ERROR_RETRY_MS = 30_000;

/**
 * Starts a worker for pod. With `terminateAtOnce` the worker never syncs: it only stops and
 * removes what the runtime holds for the pod (orphans found in the runtime at start-up).
 */
export function createPodWorker(initial: Pod, deps: PodWorkerDeps, terminateAtOnce?: TerminateOptions): PodWorker {
  const { manager, reader, backoff, clock, statusManager } = deps;
  let pod = initial;
  const uid = pod.metadata!.uid!;
  const ref = podRef(pod);
  const logger = deps.logger.child({ pod: ref });
  const resyncMs = deps.resyncMs ?? 30_000;
  const startTime = new Date(clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  let phase: WorkerPhase = 'syncing';
  let stopped = false;
  let removed = false;
  const queue: Work[] = [];
  let running: Promise<void> | undefined;
  let timer: ClockTimer | undefined;
  let errorRetryMs = 0;
  let startRetryMs = 0;
  let lastError = '';
  const reportedWaits = new Set<string>();
  const reportedStartErrors = new Map<string, string>();
  let seenExits = new Set<string>();
  const probes: PodProbes | undefined = deps.prober
    ? createPodProbes({
      prober: deps.prober,
      clock,
      logger,
      onChange: () => enqueue({ kind: 'sync' }),
      recordEvent: (type, reason, message, container) => recordEvent(pod, type, reason, message, { fieldPath: containerFieldPath(container) }),
    })
    : undefined;
  let resolveTerminated!: () => void;
  const terminated = new Promise<void>((resolve) => (resolveTerminated = resolve));

  function schedule(ms: number) {
    if (stopped) return;
    timer?.cancel();
    timer = clock.setTimer(ms, () => {
      timer = undefined;
      enqueue({ kind: 'sync' });
    });
  }

  function enqueue(work: Work) {
    if (stopped) return;
    if (work.kind === 'sync' && queue.some((w) => w.kind === 'sync')) return;
    queue.push(work);
    kick();
  }

  function kick() {
    if (running || stopped) return;
    running = drain().finally(() => {
      running = undefined;
      if (queue.length) kick();
    });
  }

  async function drain() {
    await null; // always asynchronous, so `running` is set before the loop can end
    while (queue.length && !stopped) {
      const work = queue.shift()!;
      try {
        if (work.kind === 'update') {
          pod = work.pod;
          if (phase === 'syncing') await sync();
        } else if (work.kind === 'sync') {
          if (phase === 'syncing') await sync();
        } else {
          await terminate(work.options);
        }
        errorRetryMs = 0;
        if (lastError) logger.info({ phase }, 'pod sync succeeds again');
        lastError = '';
      } catch (err) {
        // one error line per failing spell (messages often differ per attempt: ids, timings), retries at debug
        if (!lastError) logger.error({ err, code: ErrorCodes.POD_SYNC_FAILED, phase }, 'pod sync failed; will retry');
        else logger.debug({ err, phase }, 'pod sync failed again');
        lastError = errorMessage(err) || 'error';
        errorRetryMs = Math.min(Math.max(errorRetryMs * 2, 1000), MAX_ERROR_RETRY_MS);
        if (work.kind === 'terminate') queue.unshift(work);
        schedule(errorRetryMs);
        break;
      }
    }
  }

  function podIPOf(state: RuntimePodState): string {
    if (isHostNetwork(pod)) return deps.hostIP;
    const sandbox = state.sandboxes[0];
    return sandbox?.state === 'ready' ? sandbox.ip : '';
  }

  function reportStatus(state: RuntimePodState, actions: PodActions | undefined, errors: Map<string, Waiting>, isTerminated = false) {
    if (removed) return;
    const status = generatePodStatus(pod, state, {
      runtimeName: deps.runtimeName(), hostIP: deps.hostIP, startTime, now: clock.now(), errors, actions, terminated: isTerminated,
      ...(probes ? { health: (id: string) => probes.health(id), probeProblems: probes.problems() } : {}),
    });
    statusManager.setPodStatus(pod, status);
  }

  function logTransitions(state: RuntimePodState, actions: PodActions) {
    const exits = new Set<string>();
    for (const c of state.containers) {
      if (c.state !== 'exited') continue;
      exits.add(c.id);
      if (!seenExits.has(c.id) && c.finishedAt >= Date.parse(startTime) - 1000) {
        logger.info({ container: c.name, containerId: c.id, exitCode: c.exitCode, restartCount: c.restartCount }, 'container exited');
      }
    }
    seenExits = exits;
    for (const [name, w] of actions.waiting) {
      const latest = state.containers.find((c) => c.name === name);
      const key = `${latest?.id}/${w.reason}`;
      if (!reportedWaits.has(key)) {
        reportedWaits.add(key);
        logger.warn({ container: name, reason: w.reason }, w.message);
        if (w.reason === 'CrashLoopBackOff') {
          recordEvent(pod, 'Warning', 'BackOff', `Back-off restarting failed container ${name} in pod ${pod.metadata!.name}_${pod.metadata!.namespace}(${uid})`, { fieldPath: containerFieldPath(name) });
        }
      }
    }
  }

  async function sync() {
    let state: RuntimePodState = { uid, sandboxes: [], containers: [] };
    try {
      state = await reader.read(uid);
      await syncWith(state);
    } catch (err) {
      // keep the pod visible (Pending, with the reason) while the sync is retried
      const reason = { reason: 'ContainerCreating', message: errorMessage(err) };
      reportStatus(state, undefined, new Map(pod.spec!.containers.map((c) => [c.name, reason])));
      throw err;
    }
  }

  async function syncWith(state: RuntimePodState) {
    const decidedAt = clock.now();
    probes?.sync(pod, state, podIPOf(state));
    const actions = computePodActions(pod, state, backoff, decidedAt, probes);
    // timers count from the decision, not from the end of the (slow) runtime calls
    const retryIn = (ms: number) => Math.max(0, decidedAt + ms - clock.now());
    logTransitions(state, actions);
    if (actions.podDone) {
      logger.info({ restartPolicy: pod.spec!.restartPolicy }, 'all containers finished; pod is done');
      await terminate({ remove: false });
      return;
    }
    const errors = await manager.syncPod(pod, state, actions);
    for (const [name, e] of errors) {
      if (reportedStartErrors.get(name) !== e.message) {
        logger.error({ container: name, reason: e.reason, code: ErrorCodes.POD_SYNC_FAILED }, `cannot start container: ${e.message}`);
        reportedStartErrors.set(name, e.message);
      }
    }
    for (const name of reportedStartErrors.keys()) if (!errors.has(name)) reportedStartErrors.delete(name);
    const after = actions.containersToStart.length || actions.containersToKill.length || actions.createSandbox ? await reader.read(uid, { fresh: true }) : state;
    const gc = await manager.garbageCollect(after);
    reader.forget(gc);
    probes?.sync(pod, after, podIPOf(after));
    reportStatus(after, actions, errors);
    if (errors.size > 0) {
      // containers that cannot start are retried at a slowing pace (image pulls also back off on their own)
      startRetryMs = Math.min(Math.max(startRetryMs * 2, 1000), MAX_ERROR_RETRY_MS);
      schedule(retryIn(Math.min(startRetryMs, actions.retryAfterMs ?? Infinity)));
    } else {
      startRetryMs = 0;
      schedule(retryIn(Math.min(actions.retryAfterMs ?? resyncMs, resyncMs)));
    }
  }

  async function terminate(options: TerminateOptions) {
    if (phase === 'syncing') {
      phase = 'terminating';
      logger.info({ remove: options.remove }, 'terminating pod');
    }
    const grace = options.gracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds;
    timer?.cancel();
    probes?.stop();
    const state = await reader.read(uid, { fresh: true });
    await manager.killPod(ref, state, grace, pod);
    const after = await reader.read(uid, { fresh: true });
    if (options.remove) {
      const logDir = podLogDir(deps.podLogsDir, pod.metadata!.namespace!, pod.metadata!.name!, uid);
      await manager.removePod(ref, after, logDir);
      reader.forget(after.containers.map((c) => c.id));
      backoff.forget(`${uid}/`);
      backoff.forget(`pull/${uid}/`);
      statusManager.removePod(uid);
      removed = true;
    } else {
      reportStatus(after, undefined, new Map(), true);
    }
    if (phase !== 'terminated') logger.info('pod terminated');
    phase = 'terminated';
    if (options.remove) resolveTerminated();
  }

  enqueue(terminateAtOnce ? { kind: 'terminate', options: terminateAtOnce } : { kind: 'sync' });

  return {
    uid,
    ref,
    pod: () => pod,
    phase: () => phase,
    update: (next) => enqueue({ kind: 'update', pod: next }),
    terminate: (options) => enqueue({ kind: 'terminate', options }),
    wake: () => enqueue({ kind: 'sync' }),
    stop() {
      stopped = true;
      timer?.cancel();
      probes?.stop();
      queue.length = 0;
    },
    terminated,
    async idle() {
      while (running) await running;
    },
  };
}
