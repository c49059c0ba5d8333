/**
 * The two namespace controllers of kube-controller-manager whose results clients see in every
 * namespace: the ServiceAccount controller (a `default` ServiceAccount) and the root CA publisher
 * (`kube-root-ca.crt` ConfigMap with the cluster CA). They run right after the namespace write,
 * as a follow-up write, like the real controllers (only faster).
 */
import type { Registry } from './registry';
import { resourceForKind } from './resources';
import { ApiError } from './status';

export interface NamespaceControllers {
  stop(): void;
}

export function createNamespaceControllers(registry: Registry, caPem: string): NamespaceControllers {
  const serviceAccounts = resourceForKind('ServiceAccount', 'v1')!;
  const configMaps = resourceForKind('ConfigMap', 'v1')!;
  let stopped = false;

  function ensure(namespace: string): void {
    if (stopped || !registry.store.get('namespaces', `/${namespace}`)) return;
    const createIfMissing = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        if (!(err instanceof ApiError && (err.code === 409 || err.code === 404))) throw err;
      }
    };
    if (!registry.store.get('serviceaccounts', `${namespace}/default`)) {
      createIfMissing(() => registry.create(serviceAccounts, namespace, { metadata: { name: 'default' } }));
    }
    if (!registry.store.get('configmaps', `${namespace}/kube-root-ca.crt`)) {
      createIfMissing(() =>
        registry.create(configMaps, namespace, {
          metadata: { name: 'kube-root-ca.crt', annotations: { 'kubernetes.io/description': 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.' } },
          data: { 'ca.crt': caPem },
        }),
      );
    }
  }

  const owned = (resource: string, key: string) =>
    (resource === 'serviceaccounts' && key.endsWith('/default')) || (resource === 'configmaps' && key.endsWith('/kube-root-ca.crt'));

  const unsubscribe = registry.store.subscribe((ev) => {
    if (ev.resource === 'namespaces' && ev.type !== 'DELETED') {
      const name: string = ev.object.metadata.name;
      queueMicrotask(() => ensure(name));
    } else if (ev.type === 'DELETED' && owned(ev.resource, ev.key)) {
      // Deleted by a client: the controllers put them back.
      const namespace = ev.key.slice(0, ev.key.indexOf('/'));
      queueMicrotask(() => ensure(namespace));
    }
  });

  return {
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}
