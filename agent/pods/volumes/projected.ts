/** projected volume → one payload from configMap, secret, downwardAPI and serviceAccountToken sources. */
import type { Pod, ProjectedVolumeSource } from 'kubernetes-types/core/v1';
import type { Payload } from './atomic-writer';
import { configMapValues, keyedPayload } from './configmap';
import { downwardApiPayload } from './downward-api';
import { DEFAULT_MODE, VolumeError } from './errors';
import { secretValues } from './secret';
import type { TokenManager } from './service-account-token';
import type { DownwardContext } from '../downward-api';
import type { PodDataLookup } from '../pod-data';

export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;

export async function projectedPayload(
  pod: Pod, source: ProjectedVolumeSource, deps: { data: PodDataLookup; tokens: TokenManager; downward: DownwardContext; fsGroup?: number },
): Promise<Payload> {
  const ns = pod.metadata!.namespace!;
  const mode = source.defaultMode ?? DEFAULT_MODE;
  const payload: Payload = new Map();
  for (const s of source.sources ?? []) {
    if (s.configMap) {
      keyedPayload(configMapValues(await deps.data.getConfigMap(ns, s.configMap.name ?? '')), s.configMap, mode, 'configmap', payload);
    } else if (s.secret) {
      keyedPayload(secretValues(await deps.data.getSecret(ns, s.secret.name ?? '')), s.secret, mode, 'secret', payload);
    } else if (s.downwardAPI) {
      downwardApiPayload(pod, s.downwardAPI.items ?? [], mode, deps.downward, payload);
    } else if (s.serviceAccountToken) {
      const t = s.serviceAccountToken;
      const token = await deps.tokens.get({
        namespace: ns,
        serviceAccount: pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default',
        podName: pod.metadata!.name!,
        podUid: pod.metadata!.uid!,
        audience: t.audience ?? '',
        expirationSeconds: t.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS,
      });
      // with fsGroup the token is 0600 here and becomes 0640 through the group change, as kubelet does
      payload.set(t.path, { data: Buffer.from(token, 'utf8'), mode: deps.fsGroup === undefined ? mode : 0o600 });
    } else {
      throw new VolumeError(`projected source ${Object.keys(s).join(',') || '{}'} is not supported`);
    }
  }
  return payload;
}
