/** downwardAPI volume (and projected downwardAPI source) → file payload of pod fields and container resources. */
import type { DownwardAPIVolumeFile, Pod } from 'kubernetes-types/core/v1';
import type { Payload } from './atomic-writer';
import { DEFAULT_MODE, VolumeError } from './errors';
import { DownwardApiError, podFieldValue, resourceFieldValue, type DownwardContext } from '../downward-api';

export function downwardApiPayload(pod: Pod, items: DownwardAPIVolumeFile[], defaultMode: number | undefined, ctx: DownwardContext, into: Payload = new Map()): Payload {
  for (const item of items) {
    let value: string;
    try {
      if (item.fieldRef) value = podFieldValue(pod, item.fieldRef, ctx, true);
      else if (item.resourceFieldRef) value = resourceFieldValue(pod, undefined, item.resourceFieldRef, ctx);
      else throw new DownwardApiError('needs fieldRef or resourceFieldRef');
    } catch (err) {
      throw new VolumeError(`downwardAPI item ${JSON.stringify(item.path)}: ${(err as Error).message}`);
    }
    into.set(item.path, { data: Buffer.from(value, 'utf8'), mode: item.mode ?? defaultMode ?? DEFAULT_MODE });
  }
  return into;
}
