/**
 * ServiceRecords, EndpointRecords and PodRecords: the DNS records of the cluster, kept as compact
 * per-object data (only the fields DNS needs) and turned into records when a name is asked.
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
 *
 * Memory (5 000 Services cost ~25 MB when every owner name had its own record objects): nothing is
 * pre-built per name. A Service is one small ServiceEntry, an EndpointSlice one SliceEntry holding
 * its ready endpoints as a flat [ip, hostname, ip, hostname…] array, port lists are shared between
 * objects that have the same ports, and a name is resolved the way CoreDNS's kubernetes plugin does
 * it: split the name, find the Service, build the few records asked for. Repeated questions are
 * served by the response cache in query.ts, so building on demand costs nothing on the hot path.
 */
import type { Namespace, Pod, Service, ServicePort } from 'kubernetes-types/core/v1';
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

interface PortInfo { readonly name: string; readonly port: number; readonly protocol: string }

const enum Kind { ClusterIP, Headless, ExternalName }

/** What DNS keeps of a Service. */
interface ServiceEntry {
  readonly namespace: string;
  readonly name: string;
  readonly kind: Kind;
  /** Canonical cluster IPs (ClusterIP kind). */
  readonly ips: readonly string[];
  /** Ports from the spec (shared between Services with the same ports). */
  readonly ports: readonly PortInfo[];
  /** ExternalName target, when valid. */
  readonly cname: string | undefined;
  /** The IPs this Service has PTR entries for (to remove them on change). */
  ptrIPs: readonly string[];
}

/** What DNS keeps of an EndpointSlice: its Service, its ports, its ready endpoints. */
interface SliceEntry {
  readonly namespace: string;
  readonly name: string;
  /** `namespace/service` it belongs to, or undefined without the service-name label. */
  readonly service: string | undefined;
  readonly ports: readonly PortInfo[];
  /** Ready endpoints, flat: ip, hostname ('' when none or not a DNS label), ip, hostname, … */
  readonly endpoints: readonly string[];
}

interface ReadyEndpoint { ip: string; label: string }

const EMPTY: readonly never[] = Object.freeze([]);
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

/**
 * Port lists are interned: thousands of Services expose the same few port sets, and one frozen
 * array serves them all. The table only grows with distinct port sets; it is dropped (and rebuilt
 * on the go) if it ever gets large, which costs sharing, never correctness.
 */
function createPortInterner(): (ports: PortInfo[]) => readonly PortInfo[] {
  const table = new Map<string, readonly PortInfo[]>();
  return (ports) => {
    if (ports.length === 0) return EMPTY;
    let key = '';
    for (const p of ports) key += `${p.name}/${p.port}/${p.protocol};`;
    let shared = table.get(key);
    if (!shared) {
      if (table.size >= 4096) table.clear();
      shared = Object.freeze(ports.map((p) => Object.freeze({ ...p })));
      table.set(key, shared);
    }
    return shared;
  };
}

function portInfo(p: { name?: string; port?: number; protocol?: string } | undefined): PortInfo | undefined {
  if (typeof p?.port !== 'number') return undefined;
  return { name: (typeof p.name === 'string' ? p.name : '').toLowerCase(), port: p.port, protocol: (typeof p.protocol === 'string' ? p.protocol : 'TCP').toLowerCase() };
}

function pushUnique<T>(out: T[] | undefined, value: T, same: (a: T, b: T) => boolean): T[] {
  const o = out ?? [];
  if (!o.some((x) => same(x, value))) o.push(value);
  return o;
}

function addAddress(r: NameRecords, ip: string): void {
  if (isIPv6(ip)) r.aaaa = pushUnique(r.aaaa, ip, (a, b) => a === b);
  else r.a = pushUnique(r.a, ip, (a, b) => a === b);
}

function addSrv(r: NameRecords, port: number, target: string): void {
  r.srv = pushUnique(r.srv, { port, target }, (a, b) => a.port === b.port && a.target === b.target);
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

export interface ZoneIndexStats { services: number; endpointSlices: number; ptrs: number; pods: number; namespaces: number }

/**
 * The records of the zone, kept up to date by applying object changes; names are resolved from
 * the compact entries when asked.
 */
export interface ZoneIndex {
  readonly zone: string;
  /** The records at a lower-case name inside `svc.<zone>`, or undefined when the name does not exist. */
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
  /** What the index holds, as slim objects with only the fields DNS reads (for the checkpoint). */
  objects(): { services: Service[]; endpointSlices: EndpointSlice[]; pods: Pod[]; namespaces: Namespace[] };
}

export function createZoneIndex(zone: string, now: () => number = Date.now): ZoneIndex {
  const svcSuffix = `.svc.${zone}`;
  const intern = createPortInterner();
  /** `namespace/name` → Service */
  const services = new Map<string, ServiceEntry>();
  /** `namespace/name` → EndpointSlice */
  const slices = new Map<string, SliceEntry>();
  /** `namespace/service` → its slices (also before the Service itself arrives) */
  const slicesByService = new Map<string, SliceEntry[]>();
  /** IP → the Service(s) with a cluster IP or ready endpoint there. */
  const ptrs = new Map<string, ServiceEntry | ServiceEntry[]>();
  /** `namespace/ip` → number of pods with that IP. */
  const podIndex = new Map<string, number>();
  /** `namespace/name` → IPs of the pod (one string when one IP). */
  const pods = new Map<string, string | readonly string[]>();
  const nsCounts = new Map<string, number>();
  const nsObjects = new Set<string>();
  let namespaceObjects = false;
  let generation = 0;
  let serial = Math.floor(now() / 1000);

  const touch = () => { serial = Math.max(serial + 1, Math.floor(now() / 1000)); generation++; };
  const countNs = (ns: string, delta: number) => {
    const n = (nsCounts.get(ns) ?? 0) + delta;
    if (n <= 0) nsCounts.delete(ns); else nsCounts.set(ns, n);
  };

  // ---- building entries from objects ----

  function serviceEntry(svc: Service): ServiceEntry {
    const namespace = svc.metadata!.namespace!;
    const name = svc.metadata!.name!;
    const spec = svc.spec ?? {};
    if (spec.type === 'ExternalName') {
      const target = (typeof spec.externalName === 'string' ? spec.externalName : '').toLowerCase().replace(/\.$/, '');
      // Like CoreDNS: an ExternalName that is an IP gets no record.
      const cname = target && NAME_RE.test(target) && !canonicalIP(target) ? target : undefined;
      return { namespace, name, kind: Kind.ExternalName, ips: EMPTY, ports: EMPTY, cname, ptrIPs: EMPTY };
    }
    if (spec.clusterIP === 'None') return { namespace, name, kind: Kind.Headless, ips: EMPTY, ports: EMPTY, cname: undefined, ptrIPs: EMPTY };
    const ips = (list(spec.clusterIPs).length ? list(spec.clusterIPs) : [String(spec.clusterIP ?? '')])
      .map((ip) => (typeof ip === 'string' ? canonicalIP(ip) : undefined))
      .filter((ip): ip is string => ip !== undefined);
    const ports = list(spec.ports as ServicePort[]).map(portInfo).filter((p): p is PortInfo => p !== undefined);
    return { namespace, name, kind: Kind.ClusterIP, ips: ips.length ? ips : EMPTY, ports: intern(ports), cname: undefined, ptrIPs: EMPTY };
  }

  function sliceEntry(slice: EndpointSlice): SliceEntry {
    const namespace = slice.metadata?.namespace ?? '';
    const name = slice.metadata?.name ?? '';
    const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
    const service = svc && namespace ? serviceKey(namespace, svc) : undefined;
    // FQDN slices carry no addresses DNS can answer with.
    if (slice.addressType === 'FQDN') return { namespace, name, service, ports: EMPTY, endpoints: EMPTY };
    const ports = list(slice.ports).map(portInfo).filter((p): p is PortInfo => p !== undefined);
    const endpoints: string[] = [];
    for (const ep of list(slice.endpoints)) {
      if (!ep || ep.conditions?.ready === false) continue;
      const hostname = typeof ep.hostname === 'string' ? ep.hostname.toLowerCase() : '';
      for (const address of list(ep.addresses)) {
        const ip = typeof address === 'string' ? canonicalIP(address) : undefined;
        if (ip) endpoints.push(ip, hostname && LABEL_RE.test(hostname) ? hostname : '');
      }
    }
    return { namespace, name, service, ports: intern(ports), endpoints: endpoints.length ? endpoints : EMPTY };
  }

  // ---- reading entries ----

  /** Ready endpoints of a Service, deduplicated (ready unset counts as ready). */
  function readyEndpoints(key: string): ReadyEndpoint[] {
    const out: ReadyEndpoint[] = [];
    for (const s of slicesByService.get(key) ?? EMPTY) {
      const eps = s.endpoints;
      for (let i = 0; i < eps.length; i += 2) {
        const ip = eps[i]!;
        const label = eps[i + 1] || dashed(ip);
        if (!out.some((e) => e.ip === ip && e.label === label)) out.push({ ip, label });
      }
    }
    return out;
  }

  function slicePorts(key: string): PortInfo[] {
    const out: PortInfo[] = [];
    for (const s of slicesByService.get(key) ?? EMPTY) {
      for (const p of s.ports) if (!out.some((x) => x.name === p.name && x.port === p.port && x.protocol === p.protocol)) out.push(p);
    }
    return out;
  }

  function endpointIPs(key: string): string[] {
    const out: string[] = [];
    for (const s of slicesByService.get(key) ?? EMPTY) {
      for (let i = 0; i < s.endpoints.length; i += 2) if (!out.includes(s.endpoints[i]!)) out.push(s.endpoints[i]!);
    }
    return out;
  }

  /** `<svc>.<ns>.svc.<zone>` */
  const baseName = (e: ServiceEntry) => `${e.name}.${e.namespace}${svcSuffix}`;

  function lookupService(e: ServiceEntry, key: string, labels: string[]): NameRecords | undefined {
    const base = baseName(e);
    if (e.kind === Kind.ExternalName) return labels.length === 0 && e.cname ? { cname: e.cname } : undefined;
    const eps = readyEndpoints(key);
    if (labels.length === 1) {
      // EndpointRecords: <endpoint>.<svc>… for every ready endpoint, headless or not (as CoreDNS).
      const label = labels[0]!;
      const owner = `${label}.${base}`;
      let r: NameRecords | undefined;
      for (const ep of eps) {
        if (ep.label !== label) continue;
        r ??= {};
        addAddress(r, ep.ip);
      }
      if (r) for (const p of slicePorts(key)) addSrv(r, p.port, owner);
      return r;
    }
    if (e.kind === Kind.Headless) {
      if (eps.length === 0) return undefined;
      const ports = slicePorts(key);
      const r: NameRecords = {};
      if (labels.length === 0) {
        for (const ep of eps) {
          addAddress(r, ep.ip);
          for (const p of ports) addSrv(r, p.port, `${ep.label}.${base}`);
        }
        return r;
      }
      const [portName, proto] = [labels[0]!.slice(1), labels[1]!.slice(1)];
      let found = false;
      for (const p of ports) {
        if (p.name !== portName || p.protocol !== proto || !p.name || !LABEL_RE.test(p.name)) continue;
        found = true;
        for (const ep of eps) {
          addAddress(r, ep.ip);
          addSrv(r, p.port, `${ep.label}.${base}`);
        }
      }
      return found ? r : undefined;
    }
    if (e.ips.length === 0) return undefined;
    const r: NameRecords = {};
    if (labels.length === 0) {
      for (const ip of e.ips) addAddress(r, ip);
      for (const p of e.ports) addSrv(r, p.port, base);
      return r;
    }
    const [portName, proto] = [labels[0]!.slice(1), labels[1]!.slice(1)];
    let found = false;
    for (const p of e.ports) {
      if (p.name !== portName || p.protocol !== proto || !p.name || !LABEL_RE.test(p.name)) continue;
      found = true;
      for (const ip of e.ips) addAddress(r, ip);
      addSrv(r, p.port, base);
    }
    return found ? r : undefined;
  }

  // ---- PTR entries ----

  function ptrAdd(ip: string, e: ServiceEntry): void {
    const cur = ptrs.get(ip);
    if (cur === undefined) ptrs.set(ip, e);
    else if (Array.isArray(cur)) { if (!cur.includes(e)) cur.push(e); }
    else if (cur !== e) ptrs.set(ip, [cur as ServiceEntry, e]);
  }

  function ptrRemove(ip: string, e: ServiceEntry): void {
    const cur = ptrs.get(ip);
    if (cur === e) ptrs.delete(ip);
    else if (Array.isArray(cur)) {
      const left = cur.filter((x) => x !== e);
      if (left.length === 0) ptrs.delete(ip);
      else ptrs.set(ip, left.length === 1 ? left[0]! : left);
    }
  }

  /** Recomputes which IPs point at the Service (cluster IPs and ready endpoint IPs). */
  function refreshPtrs(key: string, e: ServiceEntry | undefined, old: ServiceEntry | undefined): void {
    if (old) for (const ip of old.ptrIPs) ptrRemove(ip, old);
    if (!e) return;
    if (e.kind === Kind.ExternalName) { e.ptrIPs = EMPTY; return; }
    const ips = endpointIPs(key);
    if (e.kind === Kind.ClusterIP) for (const ip of e.ips) if (!ips.includes(ip)) ips.push(ip);
    e.ptrIPs = ips.length ? ips.slice() : EMPTY; // exact size: it lives as long as the Service
    for (const ip of e.ptrIPs) ptrAdd(ip, e);
  }

  function ptrTargets(e: ServiceEntry, key: string, ip: string, out: string[]): void {
    const base = baseName(e);
    for (const ep of readyEndpoints(key)) if (ep.ip === ip) out.push(`${ep.label}.${base}`);
    if (e.kind === Kind.ClusterIP && e.ips.includes(ip)) out.push(base);
  }

  function removeSliceFrom(svcKey: string | undefined, entry: SliceEntry): void {
    if (!svcKey) return;
    const own = slicesByService.get(svcKey);
    if (!own) return;
    const left = own.filter((s) => s !== entry);
    if (left.length) slicesByService.set(svcKey, left); else slicesByService.delete(svcKey);
  }

  /** The endpoints of a Service changed: its PTR entries follow, answers change. */
  function endpointsChanged(svcKey: string | undefined): void {
    if (!svcKey) return;
    const e = services.get(svcKey);
    if (!e) return;
    refreshPtrs(svcKey, e, e);
    touch();
  }

  function removePodIPs(ns: string, ips: string | readonly string[]): void {
    for (const ip of typeof ips === 'string' ? [ips] : ips) {
      const k = `${ns}/${ip}`;
      const n = (podIndex.get(k) ?? 1) - 1;
      if (n) podIndex.set(k, n); else podIndex.delete(k);
    }
  }

  return {
    zone,
    lookup(name) {
      if (!name.endsWith(svcSuffix)) return undefined;
      const labels = name.slice(0, -svcSuffix.length).split('.');
      const n = labels.length;
      if (n < 2 || n > 4) return undefined;
      // <svc>.<ns> | <endpoint>.<svc>.<ns> | _<port>._<proto>.<svc>.<ns>
      const ns = labels[n - 1]!;
      const svc = labels[n - 2]!;
      const key = serviceKey(ns, svc);
      const e = services.get(key);
      if (!e) return undefined;
      const rest = labels.slice(0, n - 2);
      if (rest.length === 2 && !(rest[0]!.startsWith('_') && rest[1]!.startsWith('_'))) return undefined;
      return lookupService(e, key, rest);
    },
    ptr(ip) {
      const cur = ptrs.get(ip);
      if (cur === undefined) return undefined;
      const out: string[] = [];
      for (const e of Array.isArray(cur) ? cur : [cur as ServiceEntry]) ptrTargets(e, serviceKey(e.namespace, e.name), ip, out);
      return out.length ? [...new Set(out)] : undefined;
    },
    generation: () => generation,
    namespaceExists: (ns) => (namespaceObjects ? nsObjects.has(ns) : nsCounts.has(ns)),
    podHasIP: (ns, ip) => podIndex.has(`${ns}/${ip}`),
    serial: () => serial >>> 0,
    upsertService(svc) {
      const problem = invalidService(svc);
      if (problem) return problem;
      const key = keyOf(svc);
      // Built before the old entry goes: if an object is too broken to build from, the old records stay.
      const entry = serviceEntry(svc);
      const old = services.get(key);
      if (!old) countNs(entry.namespace, 1);
      services.set(key, entry);
      refreshPtrs(key, entry, old);
      touch();
      return undefined;
    },
    deleteService(svc) {
      const key = keyOf(svc);
      const old = services.get(key);
      if (!old) return;
      services.delete(key);
      countNs(old.namespace, -1);
      refreshPtrs(key, undefined, old);
      touch();
    },
    upsertSlice(slice) {
      const key = keyOf(slice);
      const entry = sliceEntry(slice);
      const old = slices.get(key);
      slices.set(key, entry);
      const own = entry.service ? slicesByService.get(entry.service) : undefined;
      const at = old && own ? own.indexOf(old) : -1;
      if (at !== -1) own![at] = entry; // same Service: keep the slice's place (answer order)
      else {
        if (old) {
          removeSliceFrom(old.service, old);
          endpointsChanged(old.service);
        }
        if (!entry.service) return;
        if (own) own.push(entry); else slicesByService.set(entry.service, [entry]);
      }
      endpointsChanged(entry.service);
    },
    deleteSlice(slice) {
      const key = keyOf(slice);
      const old = slices.get(key);
      if (!old) return;
      slices.delete(key);
      removeSliceFrom(old.service, old);
      endpointsChanged(old.service);
    },
    upsertPod(pod) {
      const key = keyOf(pod);
      const ns = pod.metadata?.namespace;
      if (!ns) return;
      const ips = podIPs(pod);
      const old = pods.get(key);
      if (old !== undefined) removePodIPs(ns, old);
      else countNs(ns, 1);
      pods.set(key, ips.length === 1 ? ips[0]! : ips);
      generation++;
      for (const ip of ips) podIndex.set(`${ns}/${ip}`, (podIndex.get(`${ns}/${ip}`) ?? 0) + 1);
    },
    deletePod(pod) {
      const key = keyOf(pod);
      const old = pods.get(key);
      if (old === undefined) return;
      const ns = key.slice(0, key.indexOf('/'));
      pods.delete(key);
      generation++;
      countNs(ns, -1);
      removePodIPs(ns, old);
    },
    upsertNamespace(ns) {
      if (ns.metadata?.name) nsObjects.add(ns.metadata.name);
      generation++;
    },
    deleteNamespace(ns) {
      if (ns.metadata?.name) nsObjects.delete(ns.metadata.name);
      generation++;
    },
    useNamespaceObjects() {
      namespaceObjects = true;
    },
    stats: () => ({ services: services.size, endpointSlices: slices.size, ptrs: ptrs.size, pods: pods.size, namespaces: namespaceObjects ? nsObjects.size : nsCounts.size }),
    objects: () => ({
      services: [...services.values()].map((e): Service => ({
        metadata: { namespace: e.namespace, name: e.name },
        spec: e.kind === Kind.ExternalName
          ? { type: 'ExternalName', ...(e.cname ? { externalName: e.cname } : {}) }
          : e.kind === Kind.Headless
            ? { clusterIP: 'None' }
            : { clusterIP: e.ips[0] ?? '', clusterIPs: [...e.ips], ports: e.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol.toUpperCase() })) },
      })),
      endpointSlices: [...slices.values()].map((s): EndpointSlice => {
        const endpoints = [];
        for (let i = 0; i < s.endpoints.length; i += 2) endpoints.push({ addresses: [s.endpoints[i]!], conditions: { ready: true }, ...(s.endpoints[i + 1] ? { hostname: s.endpoints[i + 1]! } : {}) });
        return {
          metadata: { namespace: s.namespace, name: s.name, ...(s.service ? { labels: { 'kubernetes.io/service-name': s.service.slice(s.service.indexOf('/') + 1) } } : {}) },
          addressType: s.endpoints.length && isIPv6(s.endpoints[0]!) ? 'IPv6' : 'IPv4',
          endpoints,
          ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol.toUpperCase() })),
        };
      }),
      // Only what PodRecords need, so the checkpoint stays small.
      pods: [...pods].map(([key, ips]) => ({
        metadata: { namespace: key.slice(0, key.indexOf('/')), name: key.slice(key.indexOf('/') + 1) },
        status: { podIPs: (typeof ips === 'string' ? [ips] : ips).map((ip) => ({ ip })) },
      })),
      namespaces: [...nsObjects].map((name) => ({ metadata: { name } })),
    }),
  };
}
