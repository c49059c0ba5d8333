/** The bench cluster: N Services (every 10th headless with 3 endpoints, the others ClusterIP with 2). */
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';

export const NAMESPACES = 50;

export interface BenchService { ns: string; name: string; headless: boolean; clusterIP: string; endpoints: string[] }

export function benchServices(n: number): BenchService[] {
  const out: BenchService[] = [];
  for (let i = 0; i < n; i++) {
    const headless = i % 10 === 9;
    const endpoints = Array.from({ length: headless ? 3 : 2 }, (_, k) => `10.${100 + k}.${(i >> 8) & 255}.${i & 255}`);
    out.push({ ns: `ns-${i % NAMESPACES}`, name: `svc-${i}`, headless, clusterIP: `10.96.${(i >> 8) & 255}.${i & 255}`, endpoints });
  }
  return out;
}

export function toObjects(list: BenchService[]): { services: Service[]; slices: EndpointSlice[] } {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  for (const s of list) {
    services.push({
      apiVersion: 'v1', kind: 'Service', metadata: { namespace: s.ns, name: s.name },
      spec: s.headless
        ? { clusterIP: 'None', clusterIPs: ['None'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }
        : { type: 'ClusterIP', clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'metrics', port: 9090, protocol: 'TCP' }] },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { namespace: s.ns, name: `${s.name}-abcde`, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      endpoints: s.endpoints.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
  }
  return { services, slices };
}

/** The A records of the service names, in zone-file syntax, for Knot. */
export function zoneRecords(list: BenchService[], ttl = 5): string[] {
  const lines: string[] = [];
  for (const s of list) {
    const name = `${s.name}.${s.ns}.svc.cluster.local.`;
    if (s.headless) for (const ip of s.endpoints) lines.push(`${name} ${ttl} IN A ${ip}`);
    else lines.push(`${name} ${ttl} IN A ${s.clusterIP}`);
  }
  return lines;
}

/**
 * The same objects as an apiserver serves them (uid, resourceVersion, timestamps, defaulted spec
 * fields, endpoint conditions/targetRef/nodeName/zone, status; managedFields already stripped by
 * the informer), parsed from JSON so that every string is its own, as in an informer cache.
 */
export function asServed(
  objs: { services: Service[]; slices: EndpointSlice[] },
  transform: { service(s: Service): Service; slice(s: EndpointSlice): EndpointSlice } = { service: (s) => s, slice: (s) => s },
): { services: Service[]; slices: EndpointSlice[] } {
  let rv = 1000;
  // One object at a time, as a watch delivers them, and transformed at once as an informer does.
  const parsed = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;
  const uid = (i: number) => `6c0a${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}-1f2e-4d3c-9b8a-${String(i).padStart(12, '0')}`;
  const meta = (m: { namespace?: string; name?: string; labels?: Record<string, string> }, i: number) => ({
    ...m, uid: uid(i), resourceVersion: String(rv++), creationTimestamp: '2026-11-20T10:00:00Z',
    labels: { ...(m.labels ?? {}), app: m.name ?? '', 'app.kubernetes.io/managed-by': 'Helm' },
  });
  const services = objs.services.map((s, i) => transform.service(parsed({
    ...s, metadata: meta(s.metadata!, i),
    spec: { ...s.spec, sessionAffinity: 'None', internalTrafficPolicy: 'Cluster', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', selector: { app: s.metadata!.name! }, ports: s.spec!.ports!.map((p) => ({ ...p, targetPort: p.port })) },
    status: { loadBalancer: {} },
  } as Service)));
  const slices = objs.slices.map((s, i) => transform.slice(parsed({
    ...s, metadata: { ...meta(s.metadata!, 100000 + i), generateName: `${s.metadata!.labels!['kubernetes.io/service-name']}-`, ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: s.metadata!.labels!['kubernetes.io/service-name']!, uid: uid(i), controller: true, blockOwnerDeletion: true }] },
    endpoints: s.endpoints.map((e, k) => ({ ...e, conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${k}`, zone: 'zone-a', targetRef: { kind: 'Pod', namespace: s.metadata!.namespace, name: `${s.metadata!.name}-pod-${k}`, uid: uid(200000 + i * 4 + k) } })),
  } as EndpointSlice)));
  return { services, slices };
}
