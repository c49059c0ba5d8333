/**
 * Mirror pods (kubelet's mirror pod manager): for every static pod, a copy in the apiserver so the
 * control plane sees it (`kubectl get pods`), annotated `kubernetes.io/config.mirror=<config hash>`
 * and owned by the Node. A mirror whose hash differs from the static pod's (the file changed), or
 * that is being deleted, is replaced; mirrors of static pods that are gone are deleted. Failures
 * are retried with backoff; nothing here ever touches a pod that is not a mirror pod.
 */
import type { Node, Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { isAlreadyExists, isConflict, isNotFound } from '../kube/api-error';
import type { KubeClient } from '../kube/client';
import type { Feed } from '../kube/informer';
import { Resources } from '../kube/resources';
import { ANNOTATION_MIRROR, isMirrorPod } from './api-pod-source';
import type { Clock, ClockTimer } from './clock';
import { ANNOTATION_CONFIG_HASH, podKey } from './static-pod';

export interface MirrorPodOptions {
  client: Pick<KubeClient, 'create' | 'delete'>;
  /** The node's pods (the same informer as the apiserver pod source). */
  pods: Feed<Pod> & { get(namespace: string | undefined, name: string): Pod | undefined };
  /** This Node, for the owner reference (undefined while unknown). */
  node(): Node | undefined;
  nodeName: string;
  logger: Logger;
  clock: Clock;
  retryMaxMs?: number;
}

export interface MirrorPodManager {
  /** The static pods that should have mirrors now. */
  setStaticPods(pods: Pod[]): void;
  /** The mirror pod of a static pod, if it exists and is current. */
  mirrorOf(staticPod: Pod): Pod | undefined;
  /** The static pod UID a mirror pod stands for, if any. */
  staticUidOf(mirror: Pod): string | undefined;
  /** Reconcile now (the informer changed). */
  sync(): void;
  stop(): void;
}

/** The mirror pod object for a static pod. */
export function mirrorPodFor(staticPod: Pod, node: Node | undefined): Pod {
  const hash = staticPod.metadata!.annotations?.[ANNOTATION_CONFIG_HASH] ?? staticPod.metadata!.uid!;
  const { uid: _uid, resourceVersion: _rv, creationTimestamp: _ct, ...metadata } = structuredClone(staticPod.metadata!);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...metadata,
      annotations: { ...(metadata.annotations ?? {}), [ANNOTATION_MIRROR]: hash },
      ...(node?.metadata?.uid
        ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node.metadata.name!, uid: node.metadata.uid, controller: true }] }
        : {}),
    },
    spec: structuredClone(staticPod.spec),
  };
}

export function createMirrorPodManager(options: MirrorPodOptions): MirrorPodManager {
  const { client, pods, clock } = options;
  const logger = options.logger.child({ component: 'mirror-pods' });
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  let statics = new Map<string, Pod>();
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let retryTimer: ClockTimer | undefined;
  let retryMs = 0;
  let lastError = '';

  const hashOf = (p: Pod) => p.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ?? p.metadata?.uid;

  async function reconcile() {
    if (!pods.hasSynced()) return;
    for (const [key, sp] of statics) {
      const [ns, name] = key.split('/');
      const existing = pods.get(ns, name);
      if (existing && !isMirrorPod(existing)) {
        if (lastError !== `clash ${key}`) logger.warn({ pod: key }, 'a pod that is not a mirror pod has the static pod\'s name; no mirror pod');
        lastError = `clash ${key}`;
        continue;
      }
      const current = existing && existing.metadata?.annotations?.[ANNOTATION_MIRROR] === hashOf(sp) && !existing.metadata?.deletionTimestamp;
      if (current) continue;
      if (existing) {
        await deleteMirror(existing);
        if (!existing.metadata?.deletionTimestamp) logger.info({ pod: key }, 'mirror pod outdated; replacing it');
      }
      try {
        await client.create(Resources.pods, mirrorPodFor(sp, options.node()), { namespace: ns });
        logger.info({ pod: key }, 'mirror pod created');
      } catch (err) {
        if (!isAlreadyExists(err)) throw err; // the old one is still going away: the next sync retries
        again = true;
      }
    }
    for (const p of pods.list()) {
      if (!isMirrorPod(p) || statics.has(podKey(p))) continue;
      logger.info({ pod: podKey(p) }, 'deleting mirror pod of a static pod that is gone');
      await deleteMirror(p);
    }
  }

  async function deleteMirror(p: Pod) {
    try {
      await client.delete(Resources.pods, p.metadata!.name!, {
        namespace: p.metadata!.namespace,
        options: { gracePeriodSeconds: 0, preconditions: { uid: p.metadata!.uid } },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  function sync() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = reconcile()
      .then(
        () => {
          retryMs = 0;
          if (lastError && !lastError.startsWith('clash')) logger.info('mirror pods in sync again');
          if (!lastError.startsWith('clash')) lastError = '';
        },
        (err: unknown) => {
          const message = errorMessage(err);
          if (message !== lastError) logger.warn({ err }, 'cannot update mirror pods; retrying');
          lastError = message;
          retryMs = Math.min(Math.max(retryMs * 2, 1000), retryMaxMs);
          retryTimer?.cancel();
          retryTimer = clock.setTimer(retryMs, sync);
        },
      )
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          retryTimer?.cancel();
          retryTimer = clock.setTimer(200, sync);
        }
      });
  }

  return {
    setStaticPods(list) {
      statics = new Map(list.map((p) => [podKey(p), p]));
      sync();
    },
    mirrorOf(sp) {
      const m = pods.get(sp.metadata!.namespace, sp.metadata!.name!);
      return m && isMirrorPod(m) && m.metadata?.annotations?.[ANNOTATION_MIRROR] === hashOf(sp) ? m : undefined;
    },
    staticUidOf(mirror) {
      const sp = statics.get(podKey(mirror));
      return sp && mirror.metadata?.annotations?.[ANNOTATION_MIRROR] === hashOf(sp) ? sp.metadata!.uid : undefined;
    },
    sync,
    stop() {
      stopped = true;
      retryTimer?.cancel();
    },
  };
}
