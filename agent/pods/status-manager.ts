/**
 * The source of truth for pod status: workers write the status they computed, everyone else reads
 * it from here. In standalone mode it feeds `keelson status` through snapshot(); with an apiserver
 * (issue 4) the same manager will patch pods/status when a status changes (see onChange).
 */
import type { Pod, PodStatus } from 'kubernetes-types/core/v1';
import { canonicalJson } from './labels';
import { ANNOTATION_MANIFEST_FILE } from './static-pod';

export interface ContainerStatusSnapshot {
  name: string;
  image: string;
  state: 'running' | 'waiting' | 'terminated';
  reason?: string;
  message?: string;
  exitCode?: number;
  restartCount: number;
  containerID?: string;
  startedAt?: string;
  /** The container's readiness (status.containerStatuses[].ready), when reported. */
  ready?: boolean;
}

export interface PodStatusSnapshot {
  namespace: string;
  name: string;
  uid: string;
  /** `file` for static pods (then `file` names the manifest), `api` for apiserver pods. */
  source: string;
  file?: string;
  phase: string;
  podIP?: string;
  hostIP?: string;
  startTime?: string;
  containers: ContainerStatusSnapshot[];
}

export interface StatusManager {
  setPodStatus(pod: Pod, status: PodStatus): void;
  getPodStatus(uid: string): PodStatus | undefined;
  /** Forget a pod once it is gone from its source and terminated. */
  removePod(uid: string): void;
  snapshot(): PodStatusSnapshot[];
  /** Every pod with its current status (the kubelet API's /pods). */
  pods(): Pod[];
  /** Called when a pod's status differs from the last one stored. Returns an unsubscribe. */
  onChange(handler: (pod: Pod, status: PodStatus) => void): () => void;
}

/** Keeps lastTransitionTime of conditions whose status did not change. */
function keepTransitionTimes(old: PodStatus | undefined, next: PodStatus): PodStatus {
  if (!old?.conditions || !next.conditions) return next;
  const before = new Map(old.conditions.map((c) => [c.type, c]));
  return {
    ...next,
    conditions: next.conditions.map((c) => {
      const prev = before.get(c.type);
      return prev && prev.status === c.status ? { ...c, lastTransitionTime: prev.lastTransitionTime } : c;
    }),
  };
}

function toSnapshot(pod: Pod, status: PodStatus): PodStatusSnapshot {
  const annotations = pod.metadata?.annotations ?? {};
  const file = annotations[ANNOTATION_MANIFEST_FILE];
  return {
    namespace: pod.metadata!.namespace!,
    name: pod.metadata!.name!,
    uid: pod.metadata!.uid!,
    source: annotations['kubernetes.io/config.source'] ?? 'api',
    ...(file ? { file } : {}),
    phase: status.phase ?? 'Pending',
    ...(status.podIP ? { podIP: status.podIP } : {}),
    ...(status.hostIP ? { hostIP: status.hostIP } : {}),
    ...(status.startTime ? { startTime: status.startTime } : {}),
    containers: (status.containerStatuses ?? []).map((c) => {
      const s = c.state ?? {};
      const base = {
        name: c.name,
        image: c.image,
        restartCount: c.restartCount,
        ...(c.containerID ? { containerID: c.containerID } : {}),
        ...(typeof c.ready === 'boolean' ? { ready: c.ready } : {}),
      };
      if (s.running) return { ...base, state: 'running' as const, startedAt: s.running.startedAt };
      if (s.terminated) {
        return { ...base, state: 'terminated' as const, exitCode: s.terminated.exitCode, ...(s.terminated.reason ? { reason: s.terminated.reason } : {}) };
      }
      return {
        ...base,
        state: 'waiting' as const,
        ...(s.waiting?.reason ? { reason: s.waiting.reason } : {}),
        ...(s.waiting?.message ? { message: s.waiting.message } : {}),
      };
    }),
  };
}

export function createStatusManager(): StatusManager {
  const pods = new Map<string, { pod: Pod; status: PodStatus; text: string }>();
  const handlers = new Set<(pod: Pod, status: PodStatus) => void>();
  return {
    setPodStatus(pod, status) {
      const uid = pod.metadata!.uid!;
      const old = pods.get(uid);
      // after a keelson restart the apiserver's copy (or the checkpoint) knows when the pod started
      // and since when its conditions hold: keep those rather than report a change
      const known = old?.status ?? pod.status;
      let merged = keepTransitionTimes(known, status);
      const since = old?.status.startTime ?? pod.status?.startTime;
      if (since && merged.startTime && since !== merged.startTime) merged = { ...merged, startTime: since };
      const text = canonicalJson(merged);
      pods.set(uid, { pod, status: merged, text });
      if (old?.text !== text) for (const h of handlers) h(pod, merged);
    },
    getPodStatus: (uid) => pods.get(uid)?.status,
    removePod: (uid) => void pods.delete(uid),
    snapshot: () =>
      [...pods.values()]
        .map((e) => toSnapshot(e.pod, e.status))
        .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`) || a.uid.localeCompare(b.uid)),
    pods: () => [...pods.values()].map((e) => ({ ...e.pod, status: e.status })),
    onChange(handler) {
      handlers.add(handler);
      return () => void handlers.delete(handler);
    },
  };
}
