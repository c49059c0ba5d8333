/**
 * What the kubelet API needs from the kubelet component (agent/pods): the pods it runs, with their
 * status, and the status changes as they happen. The CRI client is passed beside it.
 *
 * Wiring from a KubeletComponent:
 *   { pods: () => kubelet.statusManager.pods(), onPodStatus: (h) => kubelet.statusManager.onChange(h) }
 */
import type { Pod, PodStatus } from 'kubernetes-types/core/v1';

export interface KubeletApiSource {
  /** Every pod the kubelet runs, with its current status. */
  pods(): Pod[];
  /** Subscribes to pod status changes; returns an unsubscribe. */
  onPodStatus?(handler: (pod: Pod, status: PodStatus) => void): () => void;
}

export function findPod(source: KubeletApiSource, namespace: string, name: string, uid?: string): Pod | undefined {
  const matches = source.pods().filter((p) => p.metadata?.namespace === namespace && p.metadata?.name === name && (!uid || p.metadata?.uid === uid));
  // a pod being replaced under the same name: prefer the one not being deleted
  return matches.find((p) => !p.metadata?.deletionTimestamp) ?? matches[0];
}

export function podContainerNames(pod: Pod): string[] {
  const spec = pod.spec;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? []), ...(spec?.ephemeralContainers ?? [])].map((c) => c.name);
}
