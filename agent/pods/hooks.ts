/**
 * Container lifecycle hooks (kubelet's handlers): postStart runs right after the container
 * started — if it fails, the container is killed (FailedPostStartHook) and restarted per policy;
 * preStop runs before the stop signal and its time counts against the grace period (the stop then
 * gets what is left, at least 2 s, as kubelet does). exec goes through CRI ExecSync, httpGet from
 * the node to the pod IP; tcpSocket hooks are deprecated upstream and accepted as no-ops.
 */
import type { Container, LifecycleHandler, Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Clock } from './clock';
import { containerFieldPath, recordEvent } from './events';
import { resolveAction } from './probes/handler';
import type { Prober } from './probes/prober';
import { errorMessage } from '../errors';

/** kubelet's minimumGracePeriodInSeconds: the stop after a preStop hook gets at least this. */
export const MIN_GRACE_AFTER_PRESTOP = 2;
/** postStart has no timeout upstream; keelson bounds it by the runtime request timeout. */
const POST_START_TIMEOUT_MS = 120_000;

export interface LifecycleHooks {
  /** Runs postStart if the container has one; rejects with the failure message. */
  postStart(pod: Pod, container: Container, containerId: string, podIP: string): Promise<void>;
  /** Runs preStop if the container has one; resolves with the grace period left for the stop signal. */
  preStop(pod: Pod, container: Container, containerId: string, podIP: string, graceSeconds: number): Promise<number>;
}

export interface LifecycleHooksOptions {
  prober: Prober;
  clock: Clock;
  logger: Logger;
}

const podRef = (pod: Pod) => `${pod.metadata!.namespace}/${pod.metadata!.name}`;

function describe(handler: LifecycleHandler): string {
  if (handler.exec) return `Exec lifecycle hook (${JSON.stringify(handler.exec.command ?? [])})`;
  if (handler.httpGet) return `HTTP lifecycle hook (${handler.httpGet.path ?? '/'})`;
  if (handler.sleep) return `Sleep lifecycle hook (${handler.sleep.seconds}s)`;
  return 'lifecycle hook';
}

export function createLifecycleHooks(options: LifecycleHooksOptions): LifecycleHooks {
  const { prober, clock, logger } = options;

  async function run(pod: Pod, container: Container, containerId: string, podIP: string, which: 'postStart' | 'preStop', timeoutMs: number): Promise<string | undefined> {
    const handler = container.lifecycle?.[which];
    if (!handler) return undefined;
    if (handler.tcpSocket && !handler.exec && !handler.httpGet) return undefined;
    try {
      const action = resolveAction(handler, container, podIP, `lifecycle.${which}`);
      const outcome = await prober.run(action, containerId, timeoutMs);
      if (outcome.ok) return undefined;
      return `${describe(handler)} for Container "${container.name}" in Pod "${podRef(pod)}" failed - ${outcome.output}`;
    } catch (err) {
      return `${describe(handler)} for Container "${container.name}" in Pod "${podRef(pod)}" failed - error: ${errorMessage(err)}`;
    }
  }

  return {
    async postStart(pod, container, containerId, podIP) {
      const failure = await run(pod, container, containerId, podIP, 'postStart', POST_START_TIMEOUT_MS);
      if (failure === undefined) return;
      recordEvent(pod, 'Warning', 'FailedPostStartHook', failure, { fieldPath: containerFieldPath(container.name) });
      logger.warn({ pod: podRef(pod), container: container.name, containerId, reason: 'FailedPostStartHook' }, failure);
      throw new Error(failure);
    },
    async preStop(pod, container, containerId, podIP, graceSeconds) {
      if (!container.lifecycle?.preStop) return graceSeconds;
      const began = clock.now();
      logger.info({ pod: podRef(pod), container: container.name, containerId, gracePeriod: graceSeconds }, 'running preStop hook');
      const failure = await run(pod, container, containerId, podIP, 'preStop', Math.max(1, graceSeconds) * 1000);
      if (failure !== undefined) {
        recordEvent(pod, 'Warning', 'FailedPreStopHook', failure, { fieldPath: containerFieldPath(container.name) });
        logger.warn({ pod: podRef(pod), container: container.name, containerId, reason: 'FailedPreStopHook' }, failure);
      }
      const used = Math.ceil((clock.now() - began) / 1000);
      return Math.max(graceSeconds - used, MIN_GRACE_AFTER_PRESTOP);
    },
  };
}
