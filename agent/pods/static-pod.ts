/**
 * What kubelet does to a pod read from a file before running it: the name gets the node name as a
 * suffix, the pod is bound to this node, and its UID is a hash of the manifest content, the source
 * and the node, so an unchanged file keeps its UID across restarts while any edit makes a new pod.
 */
import { createHash } from 'node:crypto';
import type { Pod } from 'kubernetes-types/core/v1';
import { ANNOTATION_CONFIG_SOURCE, canonicalJson } from './labels';

export const ANNOTATION_CONFIG_HASH = 'kubernetes.io/config.hash';
/** Keelson's own: the manifest file a static pod came from. */
export const ANNOTATION_MANIFEST_FILE = 'keelson.io/manifest-file';

/** UUID-shaped hash of the manifest document, its source file and the node name. */
export function staticPodUid(raw: unknown, source: string, nodeName: string): string {
  const hex = createHash('sha256').update(canonicalJson(raw)).update('\0').update(source).update('\0').update(nodeName).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function staticPodName(name: string, nodeName: string): string {
  return `${name}-${nodeName.toLowerCase()}`;
}

/** The pod kubelet would run for a valid, defaulted manifest document. */
export function toStaticPod(pod: Pod, raw: unknown, file: string, nodeName: string): Pod {
  const uid = staticPodUid(raw, `file:${file}`, nodeName);
  const out = structuredClone(pod);
  const metadata = out.metadata!;
  out.spec!.nodeName = nodeName;
  return {
    ...out,
    metadata: {
      ...metadata,
      name: staticPodName(metadata.name!, nodeName),
      uid,
      annotations: {
        ...(metadata.annotations ?? {}),
        [ANNOTATION_CONFIG_HASH]: uid,
        [ANNOTATION_CONFIG_SOURCE]: 'file',
        [ANNOTATION_MANIFEST_FILE]: file,
      },
    },
  };
}

export function podKey(pod: Pod): string {
  return `${pod.metadata!.namespace}/${pod.metadata!.name}`;
}
