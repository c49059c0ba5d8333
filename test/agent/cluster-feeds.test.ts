import test from 'ava';
import type { Pod, Service } from 'kubernetes-types/core/v1';
import { clusterFeeds } from '../../agent/cluster-feeds';
import type { Informer } from '../../agent/kube/informer';
import type { InformerFactory } from '../../agent/kube/informer-factory';
import type { KubeObject, ResourceDescriptor } from '../../agent/kube/resources';

/** Records what each informer was asked for: resource and transform. */
function recordingFactory() {
  const made = new Map<string, ((obj: KubeObject) => KubeObject) | undefined>();
  const factory = {
    forResource<T extends KubeObject>(resource: ResourceDescriptor<T>, _selector?: unknown, options: { transform?: (obj: T) => T } = {}) {
      made.set(resource.resource, options.transform as ((obj: KubeObject) => KubeObject) | undefined);
      return { resource: resource.resource } as unknown as Informer<T>;
    },
  } as unknown as InformerFactory;
  return { factory, made };
}

const service: Service = {
  metadata: { namespace: 'shop', name: 'web', resourceVersion: '7', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big": "blob"}' } },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
};

test('dns alone: every cache it reads keeps slim copies', (t) => {
  const { factory, made } = recordingFactory();
  const feeds = clusterFeeds(factory, ['dns']);
  t.truthy(feeds.pods);
  t.truthy(feeds.namespaces);
  t.deepEqual([...made.keys()].sort(), ['endpointslices', 'namespaces', 'pods', 'services']);
  for (const [resource, transform] of made) t.is(typeof transform, 'function', `${resource} is slimmed`);
  const slim = made.get('services')!(structuredClone(service)) as Service;
  t.is(slim.spec?.clusterIP, '10.96.0.10');
  t.deepEqual(slim.spec?.ports, [{ name: 'http', port: 80, protocol: 'TCP' }]);
  t.is(slim.metadata?.annotations, undefined, 'annotations the DNS does not read are dropped');
  t.is(slim.metadata?.resourceVersion, '7', 'the informer still resumes from the resourceVersion');
});

test('proxy beside dns: Services and EndpointSlices are cached whole, pods and namespaces slim', (t) => {
  const { factory, made } = recordingFactory();
  clusterFeeds(factory, ['kubelet', 'proxy', 'dns']);
  t.is(made.get('services'), undefined);
  t.is(made.get('endpointslices'), undefined);
  t.is(typeof made.get('pods'), 'function');
  const pod = made.get('pods')!({ metadata: { namespace: 'shop', name: 'web-0' }, spec: { containers: [{ name: 'app', image: 'x' }] }, status: { podIP: '10.244.1.7' } } as Pod) as Pod;
  t.deepEqual(pod.status, { podIP: '10.244.1.7', podIPs: undefined });
  t.is(pod.spec, undefined);
});

test('proxy alone: no pod or namespace watch at all', (t) => {
  const { factory, made } = recordingFactory();
  const feeds = clusterFeeds(factory, ['proxy']);
  t.deepEqual([...made.keys()].sort(), ['endpointslices', 'services']);
  t.is(feeds.pods, undefined);
});

test('dns with pods insecure or disabled: every pod of the cluster is not watched (CoreDNS looks none up)', (t) => {
  for (const mode of ['insecure', 'disabled'] as const) {
    const { factory, made } = recordingFactory();
    const feeds = clusterFeeds(factory, ['dns'], { dnsPodRecords: mode });
    t.false(made.has('pods'), mode);
    t.is(feeds.pods, undefined);
    t.truthy(feeds.namespaces);
  }
});
