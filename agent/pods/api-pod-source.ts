/**
 * The apiserver pod source: the pods bound to this node, from the shared informer
 * (`pods` with fieldSelector `spec.nodeName=<node>`), delivered as complete sets like every
 * PodSource. Mirror pods (the apiserver's copies of static pods) are not pods to run and are left
 * out. Until the informer has synced (apiserver unreachable at start-up), the last checkpointed
 * set stands in for it, so pods keep running across a keelson restart while offline.
 */
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Feed } from '../kube/informer';
import type { Clock, ClockTimer } from './clock';
import type { PodCheckpoint } from './checkpoint';
import type { PodSource } from './pod-source';

export const ANNOTATION_MIRROR = 'kubernetes.io/config.mirror';

export function isMirrorPod(pod: Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_MIRROR] !== undefined;
}

export interface ApiPodSourceOptions {
  pods: Feed<Pod>;
  logger: Logger;
  clock: Clock;
  checkpoint?: PodCheckpoint;
  /** How long start() waits for the informer's first list before using the checkpoint (default 3 s). */
  syncTimeoutMs?: number;
}

export interface ApiPodSource extends PodSource {
  /** Whether the set delivered last came from the apiserver (false: from the checkpoint, or nothing yet). */
  live(): boolean;
}

export function createApiPodSource(options: ApiPodSourceOptions): ApiPodSource {
  const { pods, clock } = options;
  const logger = options.logger.child({ source: 'api' });
  const syncTimeoutMs = options.syncTimeoutMs ?? 3000;
  let onPods: ((pods: Pod[]) => void) | undefined;
  let unsubscribe: (() => void) | undefined;
  let timer: ClockTimer | undefined;
  let fromApi = false;

  function deliver() {
    timer = undefined;
    if (!onPods || !pods.hasSynced()) return;
    if (!fromApi) logger.info({ pods: pods.list().length }, 'pods from the apiserver');
    fromApi = true;
    onPods(pods.list().filter((p) => !isMirrorPod(p) && p.metadata?.uid));
  }

  /** Bursts of watch events become one delivery. */
  function schedule() {
    if (timer || !onPods) return;
    timer = clock.setTimer(0, deliver);
  }

  return {
    name: 'api',
    async start(handler) {
      onPods = handler;
      let syncedResolve!: () => void;
      const synced = new Promise<void>((resolve) => (syncedResolve = resolve));
      unsubscribe = pods.subscribe({
        onAdd: schedule,
        onUpdate: schedule,
        onDelete: schedule,
        onSynced: () => {
          schedule();
          syncedResolve();
        },
      });
      let waitTimer: ClockTimer | undefined;
      await Promise.race([synced, new Promise<void>((resolve) => (waitTimer = clock.setTimer(syncTimeoutMs, resolve)))]);
      waitTimer?.cancel();
      if (pods.hasSynced()) {
        timer?.cancel();
        deliver();
        return;
      }
      const saved = options.checkpoint?.loadPods();
      if (saved) {
        logger.warn({ pods: saved.length }, 'apiserver not reachable yet: running the checkpointed pods');
        handler(saved);
      } else {
        logger.warn('apiserver not reachable yet and no checkpoint: apiserver pods start once it answers');
      }
    },
    stop() {
      unsubscribe?.();
      unsubscribe = undefined;
      timer?.cancel();
      timer = undefined;
      onPods = undefined;
    },
    problems: () => [],
    live: () => fromApi,
  };
}
