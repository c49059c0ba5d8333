/**
 * ServiceRecords, EndpointRecords and PodRecords: the DNS records of the cluster, built from the feed
 * once per change (not per query) into one ZoneIndex that the kubernetes stage reads.
 *
 * Record set of one Service (DNS-Based Service Discovery 1.1.0, CoreDNS where the spec is silent):
 *   ClusterIP  <svc>.<ns>.svc.<zone>                A/AAAA cluster IPs, SRV per port (target: itself)
 *              _<port>._<proto>.<svc>.<ns>.svc...  SRV per named port, A/AAAA as CoreDNS answers them
 *              <endpoint>.<svc>.<ns>.svc...        A/AAAA of a ready endpoint, SRV per port
 *              PTR of the cluster IPs → <svc>...; PTR of ready endpoint IPs → <endpoint>.<svc>...
 *   Headless   <svc>.<ns>.svc...                   A/AAAA per ready endpoint, SRV per endpoint × port
 *              (no ready endpoint: no name at all → NXDOMAIN)
 *   ExternalName <svc>.<ns>.svc...                 CNAME <externalName>
 * where <endpoint> is the endpoint's hostname, or its IP with '.'/':' replaced by '-'.
 */
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { canonicalIP, isIPv6 } from './ip';

export interface SrvTarget { port: number; target: string }

/** The records at one owner name (lower case, no trailing dot). */
export interface NameRecords {
  a?: string[];
  aaaa?: string[];
  srv?: SrvTarget[];
  cname?: string;
}

export interface ServiceRecordSet {
  names: Map<string, NameRecords>;
  /** IP → PTR targets. */
  ptrs: Map<string, string[]>;
}

const list = <T>(v: T[] | undefined): T[] => (Array.isArray(v) ? v : []);

const LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME_RE = /^(?=.{1,253}$)[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?)*\.?$/i;

export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Why a Service cannot get records, or undefined when it can. */
export function invalidService(svc: Service): string | undefined {
  const ns = svc.metadata?.namespace;
  const name = svc.metadata?.name;
  if (!ns || !LABEL_RE.test(ns)) return 'namespace is not a DNS label';
  if (!name || !LABEL_RE.test(name)) return 'name is not a DNS label';
  return undefined;
}

function dashed(ip: string): string {
  return ip.replace(/[.:]/g, '-');
}

function addTo(map: Map<string, NameRecords>, name: string): NameRecords {
  let r = map.get(name);
  if (!r) map.set(name, (r = {}));
  return r;
}

function pushUnique<T>(list: T[] | undefined, value: T, same: (a: T, b: T) => boolean): T[] {
  const out = list ?? [];
  if (!out.some((x) => same(x, value))) out.push(value);
  return out;
}

function addAddress(r: NameRecords, ip: string): void {
  if (isIPv6(ip)) r.aaaa = pushUnique(r.aaaa, ip, (a, b) => a === b);
  else r.a = pushUnique(r.a, ip, (a, b) => a === b);
}

function addSrv(r: NameRecords, port: number, target: string): void {
  r.srv = pushUnique(r.srv, { port, target }, (a, b) => a.port === b.port && a.target === b.target);
}

function addPtr(ptrs: Map<string, string[]>, ip: string, target: string): void {
  ptrs.set(ip, pushUnique(ptrs.get(ip), target, (a, b) => a === b));
}

interface PortInfo { name: string; port: number; protocol: string }
interface ReadyEndpoint { ip: string; label: string }

/** Ready endpoints of a Service from its EndpointSlices (ready unset counts as ready). */
export function readyEndpoints(slices: Iterable<EndpointSlice>): { endpoints: ReadyEndpoint[]; ports: PortInfo[] } {
  const endpoints: ReadyEndpoint[] = [];
  const ports: PortInfo[] = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const p of list(slice.ports)) {
      if (typeof p.port !== 'number') continue;
      const info = { name: (p.name ?? '').toLowerCase(), port: p.port, protocol: (p.protocol ?? 'TCP').toLowerCase() };
      if (!ports.some((x) => x.name === info.name && x.port === info.port && x.protocol === info.protocol)) ports.push(info);
    }
    for (const ep of list(slice.endpoints)) {
      if (!ep || ep.conditions?.ready === false) continue;
      for (const address of list(ep?.addresses)) {
        const ip = typeof address === 'string' ? canonicalIP(address) : undefined;
        if (!ip) continue;
        const hostname = typeof ep.hostname === 'string' ? ep.hostname.toLowerCase() : undefined;
        const label = hostname && LABEL_RE.test(hostname) ? hostname : dashed(ip);
        const key = `${label}/${ip}`;
        if (seen.has(key)) continue;
        seen.add(key);
        endpoints.push({ ip, label });
      }
    }
  }
  return { endpoints, ports };
}

/** ServiceRecords: the record set of one Service and its EndpointSlices. */
export function buildServiceRecords(svc: Service, slices: Iterable<EndpointSlice>, zone: string): ServiceRecordSet {
  const names = new Map<string, NameRecords>();
  const ptrs = new Map<string, string[]>();
  const ns = svc.metadata!.namespace!;
  const base = `${svc.metadata!.name!}.${ns}.svc.${zone}`;
  const spec = svc.spec ?? {};

  if (spec.type === 'ExternalName') {
    const target = (spec.externalName ?? '').toLowerCase().replace(/\.$/, '');
    // Like CoreDNS: an ExternalName that is an IP gets no record.
    if (target && NAME_RE.test(target) && !canonicalIP(target)) names.set(base, { cname: target });
    return { names, ptrs };
  }

  const { endpoints, ports: slicePorts } = readyEndpoints(slices);
  const headless = spec.clusterIP === 'None';
  // EndpointRecords: <endpoint>.<svc>... for every ready endpoint, headless or not (as CoreDNS).
  for (const ep of endpoints) {
    const epName = `${ep.label}.${base}`;
    const r = addTo(names, epName);
    addAddress(r, ep.ip);
    for (const p of slicePorts) addSrv(r, p.port, epName);
    addPtr(ptrs, ep.ip, epName);
  }

  if (headless) {
    if (endpoints.length === 0) return { names, ptrs };
    const r = addTo(names, base);
    for (const ep of endpoints) {
      addAddress(r, ep.ip);
      for (const p of slicePorts) addSrv(r, p.port, `${ep.label}.${base}`);
    }
    for (const p of slicePorts) {
      if (!p.name || !LABEL_RE.test(p.name)) continue;
      const pr = addTo(names, `_${p.name}._${p.protocol}.${base}`);
      for (const ep of endpoints) {
        addAddress(pr, ep.ip);
        addSrv(pr, p.port, `${ep.label}.${base}`);
      }
    }
    return { names, ptrs };
  }

  const ips = (list(spec.clusterIPs).length ? list(spec.clusterIPs) : [String(spec.clusterIP ?? '')])
    .map((ip) => (typeof ip === 'string' ? canonicalIP(ip) : undefined))
    .filter((ip): ip is string => ip !== undefined);
  if (ips.length === 0) return { names, ptrs };
  const ports: PortInfo[] = list(spec.ports)
    .filter((p) => typeof p?.port === 'number')
    .map((p) => ({ name: (p.name ?? '').toLowerCase(), port: p.port, protocol: (p.protocol ?? 'TCP').toLowerCase() }));
  const r = addTo(names, base);
  for (const ip of ips) {
    addAddress(r, ip);
    addPtr(ptrs, ip, base);
  }
  for (const p of ports) {
    addSrv(r, p.port, base);
    if (!p.name || !LABEL_RE.test(p.name)) continue;
    const pr = addTo(names, `_${p.name}._${p.protocol}.${base}`);
    for (const ip of ips) addAddress(pr, ip);
    addSrv(pr, p.port, base);
  }
  return { names, ptrs };
}

/** PodRecords input: the IPs of a running (not terminating) Pod. */
export function podIPs(pod: Pod): string[] {
  if (pod.metadata?.deletionTimestamp) return [];
  const all = Array.isArray(pod.status?.podIPs) && pod.status.podIPs.length ? pod.status.podIPs.map((p) => p?.ip) : [pod.status?.podIP];
  return all.map((ip) => (typeof ip === 'string' ? canonicalIP(ip) : undefined)).filter((ip): ip is string => ip !== undefined);
}

function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export interface ZoneIndexStats { services: number; names: number; ptrs: number; pods: number; namespaces: number }

/**
 * The records of the zone, kept up to date by applying object changes. Each change recomputes the
 * record set of the one Service it concerns and swaps it in.
 */
export interface ZoneIndex {
  readonly zone: string;
  lookup(name: string): NameRecords | undefined;
  ptr(ip: string): string[] | undefined;
  namespaceExists(namespace: string): boolean;
  podHasIP(namespace: string, ip: string): boolean;
  /** Seconds since the epoch of the last change, the SOA serial. */
  serial(): number;
  /** Changes on every change of anything answers depend on (for the response cache). */
  generation(): number;
  upsertService(svc: Service): string | undefined;
  deleteService(svc: Service): void;
  upsertSlice(slice: EndpointSlice): void;
  deleteSlice(slice: EndpointSlice): void;
  upsertPod(pod: Pod): void;
  deletePod(pod: Pod): void;
  upsertNamespace(ns: Namespace): void;
  deleteNamespace(ns: Namespace): void;
  /** Namespace objects are known (a namespaces feed exists): existence follows them only. */
  useNamespaceObjects(): void;
  stats(): ZoneIndexStats;
  /** Every object held, for the checkpoint. */
  objects(): { services: Service[]; endpointSlices: EndpointSlice[]; pods: Pod[]; namespaces: Namespace[] };
}

export function createZoneIndex(zone: string, now: () => number = Date.now): ZoneIndex {
  const services = new Map<string, Service>();
  const slices = new Map<string, EndpointSlice>();
  /** service key → slice keys */
  const slicesByService = new Map<string, Set<string>>();
  /** service key → the owner names and PTR IPs it contributed (plain arrays: memory matters). */
  const recordSets = new Map<string, { names: string[]; ptrIPs: string[] }>();
  const names = new Map<string, NameRecords>();
  /** IP → `owner\0target` entries (one string when alone), to avoid a Map per IP. */
  const ptrs = new Map<string, string | string[]>();
  let generation = 0;
  const pods = new Map<string, { ns: string; ips: string[] }>();
  const podIndex = new Map<string, number>();
  const nsCounts = new Map<string, number>();
  const nsObjects = new Map<string, Namespace>();
  let namespaceObjects = false;
  let serial = Math.floor(now() / 1000);

  const touch = () => { serial = Math.max(serial + 1, Math.floor(now() / 1000)); generation++; };
  const countNs = (ns: string, delta: number) => {
    const n = (nsCounts.get(ns) ?? 0) + delta;
    if (n <= 0) nsCounts.delete(ns); else nsCounts.set(ns, n);
  };

  function removeRecordSet(key: string): void {
    const set = recordSets.get(key);
    if (!set) return;
    recordSets.delete(key);
    for (const name of set.names) names.delete(name);
    const prefix = key + '\u0000';
    for (const ip of set.ptrIPs) {
      const cur = ptrs.get(ip);
      const left = (typeof cur === 'string' ? [cur] : cur ?? []).filter((e) => !e.startsWith(prefix));
      if (left.length === 0) ptrs.delete(ip);
      else ptrs.set(ip, left.length === 1 ? left[0]! : left);
    }
  }

  function rebuild(key: string): void {
    const svc = services.get(key);
    if (!svc) {
      removeRecordSet(key);
      return;
    }
    const own = [...(slicesByService.get(key) ?? [])].map((k) => slices.get(k)!).filter(Boolean);
    // Built before the old set goes: if an object is too broken to build from, the old records stay.
    const set = buildServiceRecords(svc, own, zone);
    removeRecordSet(key);
    recordSets.set(key, { names: [...set.names.keys()], ptrIPs: [...set.ptrs.keys()] });
    for (const [name, r] of set.names) names.set(name, r);
    for (const [ip, targets] of set.ptrs) {
      const cur = ptrs.get(ip);
      const add = targets.map((t) => `${key}\u0000${t}`);
      const all = cur === undefined ? add : [...(typeof cur === 'string' ? [cur] : cur), ...add];
      ptrs.set(ip, all.length === 1 ? all[0]! : all);
    }
    touch();
  }

  function sliceService(slice: EndpointSlice): string | undefined {
    const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
    const ns = slice.metadata?.namespace;
    return svc && ns ? serviceKey(ns, svc) : undefined;
  }

  return {
    zone,
    lookup: (name) => names.get(name),
    ptr(ip) {
      const cur = ptrs.get(ip);
      if (cur === undefined) return undefined;
      const entries = typeof cur === 'string' ? [cur] : cur;
      return [...new Set(entries.map((e) => e.slice(e.indexOf('\u0000') + 1)))];
    },
    generation: () => generation,
    namespaceExists: (ns) => (namespaceObjects ? nsObjects.has(ns) : nsCounts.has(ns)),
    podHasIP: (ns, ip) => podIndex.has(`${ns}/${ip}`),
    serial: () => serial >>> 0,
    upsertService(svc) {
      const problem = invalidService(svc);
      if (problem) return problem;
      const key = keyOf(svc);
      if (!services.has(key)) countNs(svc.metadata!.namespace!, 1);
      services.set(key, svc);
      rebuild(key);
      return undefined;
    },
    deleteService(svc) {
      const key = keyOf(svc);
      if (!services.has(key)) return;
      services.delete(key);
      countNs(svc.metadata!.namespace!, -1);
      removeRecordSet(key);
      touch();
    },
    upsertSlice(slice) {
      const key = keyOf(slice);
      const old = slices.get(key);
      const oldSvc = old ? sliceService(old) : undefined;
      const svcKey = sliceService(slice);
      slices.set(key, slice);
      if (oldSvc && oldSvc !== svcKey) {
        slicesByService.get(oldSvc)?.delete(key);
        if (services.has(oldSvc)) rebuild(oldSvc);
      }
      if (!svcKey) return;
      let set = slicesByService.get(svcKey);
      if (!set) slicesByService.set(svcKey, (set = new Set()));
      set.add(key);
      if (services.has(svcKey)) rebuild(svcKey);
    },
    deleteSlice(slice) {
      const key = keyOf(slice);
      const old = slices.get(key);
      if (!old) return;
      slices.delete(key);
      const svcKey = sliceService(old);
      if (!svcKey) return;
      const set = slicesByService.get(svcKey);
      set?.delete(key);
      if (set?.size === 0) slicesByService.delete(svcKey);
      if (services.has(svcKey)) rebuild(svcKey);
    },
    upsertPod(pod) {
      const key = keyOf(pod);
      const ns = pod.metadata?.namespace;
      if (!ns) return;
      const ips = podIPs(pod);
      const old = pods.get(key);
      if (old) for (const ip of old.ips) { const k = `${old.ns}/${ip}`; const n = (podIndex.get(k) ?? 1) - 1; if (n) podIndex.set(k, n); else podIndex.delete(k); }
      else countNs(ns, 1);
      pods.set(key, { ns, ips });
      generation++;
      for (const ip of ips) podIndex.set(`${ns}/${ip}`, (podIndex.get(`${ns}/${ip}`) ?? 0) + 1);
    },
    deletePod(pod) {
      const key = keyOf(pod);
      const old = pods.get(key);
      if (!old) return;
      pods.delete(key);
      generation++;
      countNs(old.ns, -1);
      for (const ip of old.ips) { const k = `${old.ns}/${ip}`; const n = (podIndex.get(k) ?? 1) - 1; if (n) podIndex.set(k, n); else podIndex.delete(k); }
    },
    upsertNamespace(ns) {
      if (ns.metadata?.name) nsObjects.set(ns.metadata.name, ns);
      generation++;
    },
    deleteNamespace(ns) {
      if (ns.metadata?.name) nsObjects.delete(ns.metadata.name);
      generation++;
    },
    useNamespaceObjects() {
      namespaceObjects = true;
    },
    stats: () => ({ services: services.size, names: names.size, ptrs: ptrs.size, pods: pods.size, namespaces: namespaceObjects ? nsObjects.size : nsCounts.size }),
    objects: () => ({
      services: [...services.values()],
      endpointSlices: [...slices.values()],
      // Only what PodRecords need, so the checkpoint stays small.
      pods: [...pods].map(([key, p]) => ({
        metadata: { namespace: p.ns, name: key.slice(p.ns.length + 1) },
        status: { podIPs: p.ips.map((ip) => ({ ip })) },
      })),
      namespaces: [...nsObjects.values()],
    }),
  };
}
