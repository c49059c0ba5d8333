/** Cluster objects shared by the DNS tests (the conformance table refers to these). */
import type { Namespace, Pod, Service, ServicePort } from 'kubernetes-types/core/v1';
import type { Endpoint, EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed, type MemoryFeed } from '../harness/feed';

export function service(ns: string, name: string, spec: Service['spec']): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name }, spec };
}

export function clusterIP(ns: string, name: string, ips: string[], ports: ServicePort[], type: 'ClusterIP' | 'NodePort' = 'ClusterIP'): Service {
  return service(ns, name, { type, clusterIP: ips[0], clusterIPs: ips, ports });
}

export function headless(ns: string, name: string, ports: ServicePort[] = []): Service {
  return service(ns, name, { type: 'ClusterIP', clusterIP: 'None', clusterIPs: ['None'], ports });
}

export function slice(ns: string, svc: string, suffix: string, endpoints: Endpoint[], ports: { name?: string; port: number; protocol?: string }[], addressType = 'IPv4'): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: ns, name: `${svc}-${suffix}`, labels: { 'kubernetes.io/service-name': svc } },
    addressType, endpoints, ports,
  };
}

export function ep(ip: string, ready = true, hostname?: string): Endpoint {
  return { addresses: [ip], conditions: { ready }, ...(hostname ? { hostname } : {}) };
}

export function pod(ns: string, name: string, ips: string[], terminating = false): Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { namespace: ns, name, ...(terminating ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}) },
    status: { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

export function namespace(name: string): Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export const SERVICES: Service[] = [
  clusterIP('default', 'web', ['10.96.0.10'], [
    { name: 'http', port: 80, protocol: 'TCP' }, { name: 'metrics', port: 9090, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' },
  ]),
  clusterIP('default', 'dual', ['10.96.0.20', 'fd00::20'], [{ name: 'https', port: 443 }]),
  clusterIP('default', 'v6only', ['fd00::30'], [{ name: 'http', port: 80 }]),
  headless('default', 'headless', [{ name: 'mysql', port: 3306 }]),
  headless('default', 'headless-empty', [{ name: 'http', port: 80 }]),
  headless('default', 'headless-v6', [{ name: 'http', port: 80 }]),
  service('default', 'ext', { type: 'ExternalName', externalName: 'example.org' }),
  service('default', 'ext-internal', { type: 'ExternalName', externalName: 'web.default.svc.cluster.local' }),
  service('default', 'ext-ip', { type: 'ExternalName', externalName: '1.2.3.4' }),
  clusterIP('other', 'api', ['10.96.1.1'], [{ name: 'grpc', port: 8443, protocol: 'TCP' }]),
  clusterIP('default', 'nodeport', ['10.96.0.40'], [{ name: 'http', port: 80 }], 'NodePort'),
  clusterIP('default', 'no-slices', ['10.96.0.50'], [{ port: 80 }]),
];

export const SLICES: EndpointSlice[] = [
  slice('default', 'web', 'a', [ep('10.244.1.5'), ep('10.244.1.6', false)], [{ name: 'http', port: 8080, protocol: 'TCP' }]),
  slice('default', 'headless', 'a', [ep('10.244.2.1', true, 'db-0'), ep('10.244.2.2', true, 'db-1'), ep('10.244.2.3'), ep('10.244.2.4', false, 'db-3')], [{ name: 'mysql', port: 3306, protocol: 'TCP' }]),
  slice('default', 'headless-empty', 'a', [ep('10.244.3.1', false)], [{ name: 'http', port: 80 }]),
  slice('default', 'headless-v6', 'a', [ep('fd00:244::5', true, 'v6-0')], [{ name: 'http', port: 80 }], 'IPv6'),
];

export const PODS: Pod[] = [
  pod('default', 'pod-a', ['10.244.1.5']),
  pod('default', 'pod-v6', ['fd00:244::7']),
  pod('default', 'pod-gone', ['10.244.1.9'], true),
  pod('other', 'pod-b', ['10.244.4.4']),
];

export const NAMESPACES: Namespace[] = ['default', 'other', 'emptyns', 'kube-system'].map(namespace);

export interface Feeds {
  services: MemoryFeed<Service>;
  endpointSlices: MemoryFeed<EndpointSlice>;
  pods: MemoryFeed<Pod>;
  namespaces: MemoryFeed<Namespace>;
}

export function fixtureFeeds(synced = true): Feeds {
  return {
    services: createMemoryFeed(SERVICES, synced),
    endpointSlices: createMemoryFeed(SLICES, synced),
    pods: createMemoryFeed(PODS, synced),
    namespaces: createMemoryFeed(NAMESPACES, synced),
  };
}
