/**
 * Where a pod's referenced objects come from: ConfigMaps and Secrets (env, envFrom, volumes,
 * imagePullSecrets), service account tokens (TokenRequest) and the Services of a namespace (service
 * link env vars). The kubelet gets one PodDataLookup injected: cluster mode wires it to the informer
 * cache and the kube client; standalone mode has no apiserver and uses standalonePodData(), whose
 * reads fail with a reason that says so.
 */
import type { ConfigMap, Secret, Service } from 'kubernetes-types/core/v1';
import { ErrorCodes, KeelsonError } from '../errors';

export interface TokenRequestOptions {
  /** Empty: the apiserver's own audiences. */
  audiences: string[];
  expirationSeconds: number;
  /** The pod the token is bound to (invalidated when the pod is deleted). */
  boundPod: { name: string; uid: string };
}

export interface ServiceAccountToken {
  token: string;
  /** RFC 3339, as in TokenRequest status. */
  expirationTimestamp: string;
}

export interface PodDataLookup {
  /** undefined when the ConfigMap does not exist; throws when it cannot be known (apiserver unreachable…). */
  getConfigMap(namespace: string, name: string): Promise<ConfigMap | undefined>;
  /** undefined when the Secret does not exist; throws when it cannot be known. */
  getSecret(namespace: string, name: string): Promise<Secret | undefined>;
  /** POST serviceaccounts/<name>/token in the namespace. */
  requestToken(namespace: string, serviceAccount: string, options: TokenRequestOptions): Promise<ServiceAccountToken>;
  /** The Services of one namespace (for service link env vars). */
  listServices(namespace: string): Promise<Service[]>;
}

function unavailable(what: string): never {
  throw new KeelsonError(ErrorCodes.POD_DATA_UNAVAILABLE, `${what}: keelson runs standalone (no apiserver), so pods cannot reference it`, { object: what });
}

/** Standalone mode: no apiserver, so references fail with a clear reason; there are no Services. */
export function standalonePodData(): PodDataLookup {
  return {
    getConfigMap: async (ns, name) => unavailable(`configmap ${ns}/${name}`),
    getSecret: async (ns, name) => unavailable(`secret ${ns}/${name}`),
    requestToken: async (ns, sa) => unavailable(`serviceaccount ${ns}/${sa} token`),
    // kubelet without an apiserver gives pods no service env vars, and that is not an error
    listServices: async () => [],
  };
}

/** The upstream messages for a missing object, as `kubectl describe pod` shows them. */
export const notFoundMessage = (kind: 'configmap' | 'secret', name: string): string => `${kind} "${name}" not found`;
