/** Shared by the spec-* tests: an in-memory PodDataLookup (ConfigMaps, Secrets, Services, tokens). */
import type { ConfigMap, Secret, Service } from 'kubernetes-types/core/v1';
import type { PodDataLookup, TokenRequestOptions } from '../../agent/pods/pod-data';

export const b64 = (s: string): string => Buffer.from(s).toString('base64');

export interface MemoryPodData extends PodDataLookup {
  configMaps: ConfigMap[];
  secrets: Secret[];
  services: Service[];
  tokenRequests: { namespace: string; serviceAccount: string; options: TokenRequestOptions }[];
}

/** Tokens are `token-<n>` valid for the requested seconds from `now()`. */
export function memoryPodData(objects: { configMaps?: ConfigMap[]; secrets?: Secret[]; services?: Service[] }, now: () => number = Date.now): MemoryPodData {
  const find = <T extends { metadata?: { namespace?: string; name?: string } }>(list: T[], ns: string, name: string) =>
    list.find((o) => o.metadata?.namespace === ns && o.metadata?.name === name);
  const data: MemoryPodData = {
    configMaps: objects.configMaps ?? [],
    secrets: objects.secrets ?? [],
    services: objects.services ?? [],
    tokenRequests: [],
    getConfigMap: async (ns, name) => structuredClone(find(data.configMaps, ns, name)),
    getSecret: async (ns, name) => structuredClone(find(data.secrets, ns, name)),
    requestToken: async (namespace, serviceAccount, options) => {
      data.tokenRequests.push({ namespace, serviceAccount, options });
      return { token: `token-${data.tokenRequests.length}`, expirationTimestamp: new Date(now() + options.expirationSeconds * 1000).toISOString() };
    },
    listServices: async (ns) => data.services.filter((s) => s.metadata?.namespace === ns),
  };
  return data;
}
