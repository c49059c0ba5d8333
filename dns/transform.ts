/**
 * Slim copies of the objects DNS reads, with only the fields records.ts uses. The DNS component
 * itself keeps no objects (records.ts holds compact entries); these are for a feed whose cache
 * serves DNS alone (a `--components=dns` daemon): passed as the informer's `transform`, the cache
 * keeps a few hundred bytes per object instead of the whole object. An informer shared with the
 * proxy must not use them (the proxy reads other fields).
 */
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import type { ObjectMeta } from 'kubernetes-types/meta/v1';

function meta(m: ObjectMeta | undefined, withServiceName = false): ObjectMeta {
  const svc = m?.labels?.['kubernetes.io/service-name'];
  return {
    ...(m?.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m?.name !== undefined ? { name: m.name } : {}),
    // resourceVersion: the informer orders events by it and resumes its watch from it.
    ...(m?.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    ...(m?.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
    ...(withServiceName && svc !== undefined ? { labels: { 'kubernetes.io/service-name': svc } } : {}),
  };
}

export function slimService(svc: Service): Service {
  const s = svc.spec ?? {};
  return {
    apiVersion: svc.apiVersion, kind: svc.kind, metadata: meta(svc.metadata),
    spec: { type: s.type, clusterIP: s.clusterIP, clusterIPs: s.clusterIPs, externalName: s.externalName, ports: s.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })) },
  };
}

export function slimEndpointSlice(slice: EndpointSlice): EndpointSlice {
  return {
    apiVersion: slice.apiVersion, kind: slice.kind, metadata: meta(slice.metadata, true), addressType: slice.addressType,
    endpoints: Array.isArray(slice.endpoints)
      ? slice.endpoints.map((e) => ({ addresses: e?.addresses, ...(e?.hostname !== undefined ? { hostname: e.hostname } : {}), ...(e?.conditions?.ready !== undefined ? { conditions: { ready: e.conditions.ready } } : {}) }))
      : slice.endpoints,
    ports: slice.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
  };
}

export function slimPod(pod: Pod): Pod {
  return { apiVersion: pod.apiVersion, kind: pod.kind, metadata: meta(pod.metadata), status: { podIP: pod.status?.podIP, podIPs: pod.status?.podIPs?.map((p) => ({ ip: p.ip })) } };
}

export function slimNamespace(ns: Namespace): Namespace {
  return { apiVersion: ns.apiVersion, kind: ns.kind, metadata: meta(ns.metadata) };
}
