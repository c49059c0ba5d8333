/** configMap volume (and projected configMap source) → file payload: all keys, or the listed items. */
import type { ConfigMap, KeyToPath } from 'kubernetes-types/core/v1';
import type { Payload } from './atomic-writer';
import { DEFAULT_MODE, VolumeError } from './errors';
import { notFoundMessage } from '../pod-data';

export interface KeyedSource {
  name?: string;
  items?: KeyToPath[];
  optional?: boolean;
}

/** Shared by configMap and secret: every key as a file, or only `items` (a missing key fails unless optional). */
export function keyedPayload(
  values: Map<string, Buffer> | undefined, source: KeyedSource, defaultMode: number | undefined, kind: 'configmap' | 'secret', into: Payload = new Map(),
): Payload {
  const mode = defaultMode ?? DEFAULT_MODE;
  if (!values) {
    if (source.optional) return into;
    throw new VolumeError(notFoundMessage(kind, source.name ?? ''));
  }
  if (!source.items?.length) {
    for (const [k, v] of values) into.set(k, { data: v, mode });
    return into;
  }
  for (const item of source.items) {
    const value = values.get(item.key);
    if (!value) {
      if (source.optional) continue;
      throw new VolumeError(kind === 'configmap' ? `configmap references non-existent config key: ${item.key}` : `references non-existent secret key: ${item.key}`);
    }
    into.set(item.path, { data: value, mode: item.mode ?? mode });
  }
  return into;
}

export function configMapValues(cm: ConfigMap | undefined): Map<string, Buffer> | undefined {
  if (!cm) return undefined;
  const values = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm.data ?? {})) values.set(k, Buffer.from(v, 'utf8'));
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) values.set(k, Buffer.from(v, 'base64'));
  return values;
}
