/**
 * Graceful node shutdown (kubelet's GracefulNodeShutdown): when the host goes down, the pods are
 * stopped in two groups rather than killed with the host. Regular pods go first, each with
 * min(its terminationGracePeriodSeconds, shutdownGracePeriod − shutdownGracePeriodCriticalPods);
 * critical pods (system-node-critical, system-cluster-critical, or priority ≥ 2000000000) go once
 * the regular ones are stopped or their share of the time is over, each with at most
 * shutdownGracePeriodCriticalPods. Every pod stopped this way ends Failed with reason Terminated,
 * so the control plane and `keelson status` can tell it from a crash.
 * agent/run.ts calls this (through KubeletComponent.shutdownPods) only when systemd/shutdown.ts
 * says the SIGTERM is part of a host shutdown and shutdownGracePeriod > 0.
 */
import type { Pod, PodCondition, PodStatus } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Clock, ClockTimer } from './clock';
import type { PodWorker } from './pod-worker';
import type { StatusManager } from './status-manager';

/** scheduling.k8s.io's SystemCriticalPriority: the floor of system-cluster-critical and system-node-critical. */
export const SYSTEM_CRITICAL_PRIORITY = 2_000_000_000;
const CRITICAL_CLASSES = new Set(['system-node-critical', 'system-cluster-critical']);
export const NODE_SHUTDOWN_REASON = 'Terminated';
export const NODE_SHUTDOWN_MESSAGE = 'Pod was terminated in response to imminent node shutdown.';
const DEFAULT_POD_GRACE_SECONDS = 30;
/** Beyond a group's grace period, time for the runtime to report the final kill. */
const KILL_SLACK_MS = 2000;
/** How often a pod whose stop failed (runtime error; the worker retries it) is looked at again. */
const RECHECK_MS = 500;

export interface NodeShutdownOptions {
  /** kubelet's shutdownGracePeriod, seconds: the whole time pods get. */
  gracePeriodSeconds: number;
  /** kubelet's shutdownGracePeriodCriticalPods, seconds: the part of it kept for critical pods. */
  criticalGracePeriodSeconds: number;
}

export interface ShutdownGroup {
  critical: boolean;
  /** The most any pod of the group gets. */
  gracePeriodSeconds: number;
  workers: ShutdownTarget[];
}

/** What node shutdown needs of a pod worker. */
export type ShutdownTarget = Pick<PodWorker, 'uid' | 'ref' | 'pod' | 'phase' | 'terminate' | 'idle'>;

export interface NodeShutdownDeps {
  /** The pods to stop: workers not yet terminated. */
  workers: ShutdownTarget[];
  statusManager: StatusManager;
  clock: Clock;
  logger: Logger;
}

export interface NodeShutdownResult {
  /** Every pod asked to stop, in the order it was asked. */
  order: string[];
  /** Pods not stopped when their group's time was over. */
  notStopped: string[];
}

export function isCriticalPod(pod: Pod): boolean {
  const spec = pod.spec;
  if (!spec) return false;
  if (spec.priorityClassName && CRITICAL_CLASSES.has(spec.priorityClassName)) return true;
  return typeof spec.priority === 'number' && spec.priority >= SYSTEM_CRITICAL_PRIORITY;
}

/** The grace period a pod gets in its group: its own, when shorter than the group's. */
export function shutdownGracePeriod(pod: Pod, groupGraceSeconds: number): number {
  const own = pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_POD_GRACE_SECONDS;
  return Math.max(0, Math.min(own, groupGraceSeconds));
}

/** Regular pods first, then critical ones, each group with its share of the grace period. */
export function planShutdown(workers: ShutdownTarget[], options: NodeShutdownOptions): ShutdownGroup[] {
  const critical = Math.max(0, Math.min(options.criticalGracePeriodSeconds, options.gracePeriodSeconds));
  const regular = Math.max(0, options.gracePeriodSeconds - critical);
  const isCritical = (w: ShutdownTarget) => isCriticalPod(w.pod());
  return [
    { critical: false, gracePeriodSeconds: regular, workers: workers.filter((w) => !isCritical(w)) },
    { critical: true, gracePeriodSeconds: critical, workers: workers.filter(isCritical) },
  ].filter((g) => g.workers.length > 0);
}

/** A terminated pod's status as the node shutdown leaves it: Failed, reason Terminated, a DisruptionTarget condition. */
export function nodeShutdownStatus(status: PodStatus, now: number): PodStatus {
  const time = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const disruption: PodCondition = { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: NODE_SHUTDOWN_MESSAGE, lastTransitionTime: time };
  const previous = status.conditions?.find((c) => c.type === 'DisruptionTarget');
  const conditions = [
    ...(status.conditions ?? []).filter((c) => c.type !== 'DisruptionTarget'),
    previous?.status === 'True' ? { ...disruption, lastTransitionTime: previous.lastTransitionTime } : disruption,
  ];
  return { ...status, phase: 'Failed', reason: NODE_SHUTDOWN_REASON, message: NODE_SHUTDOWN_MESSAGE, conditions };
}

function delay(clock: Clock, ms: number): { done: Promise<void>; cancel(): void } {
  let timer: ClockTimer | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  timer = clock.setTimer(ms, resolveDone);
  return {
    done,
    cancel() {
      timer?.cancel();
      timer = undefined;
      resolveDone();
    },
  };
}

/**
 * Stops every pod for a node shutdown, group after group. Resolves once the last group is stopped
 * or its time is over; a pod still stopping then goes on in the background (and in the runtime).
 */
export async function shutdownPods(deps: NodeShutdownDeps, options: NodeShutdownOptions): Promise<NodeShutdownResult> {
  const { clock, statusManager } = deps;
  const logger = deps.logger;
  const result: NodeShutdownResult = { order: [], notStopped: [] };
  const groups = planShutdown(deps.workers, options);
  logger.info(
    { pods: deps.workers.length, gracePeriod: options.gracePeriodSeconds, criticalGracePeriod: options.criticalGracePeriodSeconds },
    'node shutting down: stopping pods, critical pods last',
  );

  const markShutDown = (w: ShutdownTarget) => {
    const pod = w.pod();
    statusManager.setPodStatus(pod, nodeShutdownStatus(statusManager.getPodStatus(w.uid) ?? pod.status ?? {}, clock.now()));
  };

  for (const group of groups) {
    const deadline = clock.now() + group.gracePeriodSeconds * 1000 + KILL_SLACK_MS;
    const stopped = new Set<string>();
    logger.info(
      { group: group.critical ? 'critical' : 'regular', pods: group.workers.map((w) => w.ref).join(','), gracePeriod: group.gracePeriodSeconds },
      group.critical ? 'stopping critical pods for node shutdown' : 'stopping pods for node shutdown',
    );
    const stopOne = async (w: ShutdownTarget) => {
      const grace = shutdownGracePeriod(w.pod(), group.gracePeriodSeconds);
      result.order.push(w.ref);
      // reported before the kill too, so the control plane hears of it while the link is still up
      markShutDown(w);
      w.terminate({ remove: false, gracePeriodSeconds: grace });
      for (;;) {
        await w.idle();
        if (w.phase() === 'terminated') break;
        // the stop failed (the worker logged it and retries): look again shortly, until the group's time is over
        if (clock.now() >= deadline) return;
        const wait = delay(clock, RECHECK_MS);
        await wait.done;
      }
      stopped.add(w.uid);
      // the worker wrote the terminated containers' status: keep it, with the node shutdown's phase and reason
      markShutDown(w);
    };
    const timeout = delay(clock, Math.max(0, deadline - clock.now()));
    await Promise.race([Promise.all(group.workers.map(stopOne)), timeout.done]);
    timeout.cancel();
    const late = group.workers.filter((w) => !stopped.has(w.uid)).map((w) => w.ref);
    if (late.length) {
      result.notStopped.push(...late);
      logger.warn({ pods: late.join(','), gracePeriod: group.gracePeriodSeconds }, 'pods not stopped within their node shutdown grace period; going on');
    }
  }
  logger.info({ stopped: result.order.length - result.notStopped.length, notStopped: result.notStopped.length }, 'pods stopped for node shutdown');
  return result;
}
