/**
 * The downward API: values of a pod's own fields (fieldRef) and of a container's resources
 * (resourceFieldRef), as env vars and downwardAPI volume files expose them. Limits that are not set
 * fall back to the node's allocatable, requests fall back to limits (the API default), as in kubelet.
 */
import type { Container, ObjectFieldSelector, Pod, ResourceFieldSelector } from 'kubernetes-types/core/v1';
import { parseQuantity } from './quantity';

export interface DownwardContext {
  podIPs: string[];
  hostIPs: string[];
  /** What the node offers, for limits a container does not set. */
  nodeAllocatable: { cpuMilli: number; memoryBytes: number; ephemeralStorageBytes: number };
}

export class DownwardApiError extends Error {}

const SUBSCRIPT = /^metadata\.(labels|annotations)\['(.+)'\]$/;

/** `key="value"` lines sorted by key, as kubelet writes metadata.labels/annotations files. */
export function formatMap(map: Record<string, string>): string {
  return Object.keys(map).sort().map((k) => `${k}=${JSON.stringify(map[k])}`).join('\n');
}

/**
 * The value of a fieldRef. `wholeMaps` allows metadata.labels / metadata.annotations (volumes
 * only; env vars must pick one key with a subscript).
 */
export function podFieldValue(pod: Pod, ref: ObjectFieldSelector, ctx: DownwardContext, wholeMaps = false): string {
  const path = ref.fieldPath;
  const meta = pod.metadata ?? {};
  const sub = SUBSCRIPT.exec(path);
  if (sub) return (sub[1] === 'labels' ? meta.labels : meta.annotations)?.[sub[2]] ?? '';
  switch (path) {
    case 'metadata.name': return meta.name ?? '';
    case 'metadata.namespace': return meta.namespace ?? '';
    case 'metadata.uid': return meta.uid ?? '';
    case 'spec.nodeName': return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName': return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP': return ctx.hostIPs[0] ?? '';
    case 'status.hostIPs': return ctx.hostIPs.join(',');
    case 'status.podIP': return ctx.podIPs[0] ?? '';
    case 'status.podIPs': return ctx.podIPs.join(',');
  }
  if (wholeMaps && (path === 'metadata.labels' || path === 'metadata.annotations')) {
    return formatMap((path === 'metadata.labels' ? meta.labels : meta.annotations) ?? {});
  }
  throw new DownwardApiError(`unsupported fieldPath: ${path}`);
}

const RESOURCES = ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage'];

/** The value of a resourceFieldRef for `container` (the env var's own container unless containerName says otherwise). */
export function resourceFieldValue(pod: Pod, container: Container | undefined, ref: ResourceFieldSelector, ctx: DownwardContext): string {
  const target = ref.containerName
    ? [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c) => c.name === ref.containerName)
    : container;
  if (!target) throw new DownwardApiError(`resourceFieldRef: container "${ref.containerName ?? ''}" not found in the pod`);
  if (!RESOURCES.includes(ref.resource)) throw new DownwardApiError(`unsupported resource: ${ref.resource}`);
  const [kind, name] = ref.resource.split('.') as ['limits' | 'requests', string];
  const limits = target.resources?.limits ?? {};
  const requests = target.resources?.requests ?? {};
  const allocatable = name === 'cpu' ? ctx.nodeAllocatable.cpuMilli / 1000 : name === 'memory' ? ctx.nodeAllocatable.memoryBytes : ctx.nodeAllocatable.ephemeralStorageBytes;
  let value: number;
  if (kind === 'limits') value = limits[name] === undefined ? allocatable : (parseQuantity(limits[name]) ?? 0);
  else value = parseQuantity(requests[name] ?? limits[name] ?? 0) ?? 0;
  const divisor = ref.divisor === undefined ? 1 : (parseQuantity(ref.divisor) ?? 0);
  if (!(divisor > 0)) throw new DownwardApiError(`resourceFieldRef ${ref.resource}: invalid divisor ${JSON.stringify(ref.divisor)}`);
  // kubelet rounds up: 250m of cpu with the default divisor is "1"; limits.cpu with divisor 1m is millicores
  // (toPrecision drops float noise such as 1999.9999999 for 2 / 0.001)
  return String(Math.ceil(Number((value / divisor).toPrecision(12))));
}
