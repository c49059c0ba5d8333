/** secret volume (and projected secret source) → file payload; Secret data is base64 in the API. */
import type { Secret } from 'kubernetes-types/core/v1';

export function secretValues(secret: Secret | undefined): Map<string, Buffer> | undefined {
  if (!secret) return undefined;
  const values = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(secret.data ?? {})) values.set(k, Buffer.from(v, 'base64'));
  return values;
}
