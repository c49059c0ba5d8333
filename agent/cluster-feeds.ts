/**
 * The informers behind the proxy's and the DNS's feeds, and what their caches keep.
 *
 * The DNS reads a few fields of each object (dns/transform.ts). A resource that only the DNS reads
 * is cached as slim copies: every Pod of the cluster and every Namespace always, Services and
 * EndpointSlices when the proxy is not running beside it (at 5 000 Services ~6 MB less). Every Pod
 * of the cluster is watched only for `pods: verified` (as CoreDNS): the other modes never look a
 * pod up, and a watch on all pods from every node is the heaviest one the apiserver would serve.
 */
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import type { PodMode } from '../dns/config';
import { slimEndpointSlice, slimNamespace, slimPod, slimService } from '../dns/transform';
import type { Informer } from './kube/informer';
import type { InformerFactory } from './kube/informer-factory';
import { Resources } from './kube/resources';

export interface ClusterFeeds {
  services: Informer<Service>;
  endpointSlices: Informer<EndpointSlice>;
  /** Only when the DNS runs (pods: only for verified pod records). */
  pods?: Informer<Pod>;
  namespaces?: Informer<Namespace>;
}

export function clusterFeeds(informers: InformerFactory, components: readonly string[], options: { dnsPodRecords?: PodMode } = {}): ClusterFeeds {
  const dns = components.includes('dns');
  const dnsAlone = dns && !components.includes('proxy');
  const services = informers.forResource(Resources.services, {}, dnsAlone ? { transform: slimService } : {});
  const endpointSlices = informers.forResource(Resources.endpointslices, {}, dnsAlone ? { transform: slimEndpointSlice } : {});
  if (!dns) return { services, endpointSlices };
  return {
    services,
    endpointSlices,
    ...((options.dnsPodRecords ?? 'verified') === 'verified' ? { pods: informers.forResource(Resources.pods, {}, { transform: slimPod }) } : {}),
    namespaces: informers.forResource(Resources.namespaces, {}, { transform: slimNamespace }),
  };
}
