/**
 * Labels and annotations keelson puts on CRI sandboxes and containers. The label keys are the ones
 * kubelet uses, so `crictl pods`/`crictl ps` show keelson's pods as they show kubelet's, and so a
 * restarted keelson can find (adopt) what it created before.
 */
import { createHash } from 'node:crypto';
import type { Container as ApiContainer, Pod } from 'kubernetes-types/core/v1';

export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
/** Marks what keelson created, so it never adopts or removes a sandbox someone else made. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'keelson';

export const ANNOTATION_CONTAINER_HASH = 'io.kubernetes.container.hash';
export const ANNOTATION_RESTART_COUNT = 'io.kubernetes.container.restartCount';
export const ANNOTATION_GRACE_PERIOD = 'io.kubernetes.pod.terminationGracePeriod';
export const ANNOTATION_CONFIG_SOURCE = 'kubernetes.io/config.source';
/** The container's terminationMessagePath and terminationMessagePolicy, read back when it exits. */
export const ANNOTATION_TERMINATION_MESSAGE_PATH = 'io.kubernetes.container.terminationMessagePath';
export const ANNOTATION_TERMINATION_MESSAGE_POLICY = 'io.kubernetes.container.terminationMessagePolicy';

export function podLabels(pod: Pod): Record<string, string> {
  return {
    ...(pod.metadata?.labels ?? {}),
    [LABEL_POD_UID]: pod.metadata!.uid!,
    [LABEL_POD_NAME]: pod.metadata!.name!,
    [LABEL_POD_NAMESPACE]: pod.metadata!.namespace!,
    [LABEL_MANAGED_BY]: MANAGED_BY,
  };
}

export function containerLabels(pod: Pod, container: ApiContainer): Record<string, string> {
  return {
    [LABEL_POD_UID]: pod.metadata!.uid!,
    [LABEL_POD_NAME]: pod.metadata!.name!,
    [LABEL_POD_NAMESPACE]: pod.metadata!.namespace!,
    [LABEL_CONTAINER_NAME]: container.name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
  };
}

/** JSON with object keys sorted, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Hash of what decides how a container is created; a running container whose annotation differs
 * from the spec's hash is replaced. Fields that may change without a restart are left out.
 */
export function containerSpecHash(container: ApiContainer): string {
  const { resizePolicy: _r, ...rest } = container;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16);
}
