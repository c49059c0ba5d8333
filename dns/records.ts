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
 * Memory (5 000 Services cost ~25 MB when every owner name had its own record objects; 2.8 MB now):
 * nothing is pre-built per name. A Service name is one ServiceSlot, an EndpointSlice one SliceEntry
 * holding its ready endpoints as a flat [ip, hostname, ip, hostname…] array, port lists are shared
 * between objects that have the same ports, and a name is resolved the way CoreDNS's kubernetes
 * plugin does it: split the name, find the Service, build the few records asked for. Repeated
 * questions are served by the response cache in query.ts, so building on demand costs nothing on
 * the hot path.
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

const enum Kind { Absent, ClusterIP, Headless, ExternalName }

/**
 * One Service name in a namespace: what DNS keeps of the Service (kind `Absent` while there is no
 * Service, e.g. its EndpointSlices came first) and its EndpointSlices. One object per Service, in a
 * per-namespace map keyed by the object's own name string: no key strings are built.
 */
interface ServiceSlot {
  readonly namespace: string;
  readonly name: string;
  kind: Kind;
  /** Canonical cluster IPs (ClusterIP kind). */
  ips: readonly string[];
  /** Ports from the spec (shared between Services with the same ports). */
  ports: readonly PortInfo[];
  /** ExternalName target, when valid. */
  cname: string | undefined;
  slices: readonly SliceEntry[];
}

/** What DNS keeps of an EndpointSlice: its Service's name, its ports, its ready endpoints. */
interface SliceEntry {
  /** The `kubernetes.io/service-name` label, or undefined without it. */
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

/** Map of maps (namespace → name → value): no `namespace/name` strings to build or keep. */
function nested<V>() {
  const outer = new Map<string, Map<string, V>>();
  return {
    get: (ns: string, name: string) => outer.get(ns)?.get(name),
    set(ns: string, name: string, v: V) {
      let inner = outer.get(ns);
      if (!inner) outer.set(ns, (inner = new Map()));
      inner.set(name, v);
    },
    delete(ns: string, name: string) {
      const inner = outer.get(ns);
      if (inner?.delete(name) && inner.size === 0) outer.delete(ns);
    },
    *entries(): IterableIterator<[string, string, V]> {
      for (const [ns, inner] of outer) for (const [name, v] of inner) yield [ns, name, v];
    },
  };
}

export function createZoneIndex(zone: string, now: () => number = Date.now): ZoneIndex {
  const svcSuffix = `.svc.${zone}`;
  const intern = createPortInterner();
  const slots = nested<ServiceSlot>();
  const slices = nested<SliceEntry>();
  /** IP → the Service(s) with a cluster IP or ready endpoint there. */
  const ptrs = new Map<string, ServiceSlot | ServiceSlot[]>();
  /** namespace → pod name → its IPs (one string when one IP). */
  const pods = nested<string | readonly string[]>();
  /** namespace → IP → number of pods with that IP. */
  const podIPCount = nested<number>();
  const nsCounts = new Map<string, number>();
  const nsObjects = new Set<string>();
  let namespaceObjects = false;
  let serviceCount = 0;
  let sliceCount = 0;
  let podCount = 0;
  let generation = 0;
  let serial = Math.floor(now() / 1000);

  const touch = () => { serial = Math.max(serial + 1, Math.floor(now() / 1000)); generation++; };
  const countNs = (ns: string, delta: number) => {
    const n = (nsCounts.get(ns) ?? 0) + delta;
    if (n <= 0) nsCounts.delete(ns); else nsCounts.set(ns, n);
  };
  const exists = (slot: ServiceSlot | undefined): slot is ServiceSlot => slot !== undefined && slot.kind !== Kind.Absent;

  function slotFor(ns: string, name: string): ServiceSlot {
    let slot = slots.get(ns, name);
    if (!slot) {
      slot = { namespace: ns, name, kind: Kind.Absent, ips: EMPTY, ports: EMPTY, cname: undefined, slices: EMPTY };
      slots.set(ns, name, slot);
    }
    return slot;
  }

  /** Forgets a slot that holds neither a Service nor slices. */
  function dropIfEmpty(slot: ServiceSlot): void {
    if (slot.kind === Kind.Absent && slot.slices.length === 0) slots.delete(slot.namespace, slot.name);
  }

  // ---- building entries from objects ----

  /** The Service's DNS fields; assigned to its slot only once all are computed. */
  function serviceFields(svc: Service): Pick<ServiceSlot, 'kind' | 'ips' | 'ports' | 'cname'> {
    const spec = svc.spec ?? {};
    if (spec.type === 'ExternalName') {
      const target = (typeof spec.externalName === 'string' ? spec.externalName : '').toLowerCase().replace(/\.$/, '');
      // Like CoreDNS: an ExternalName that is an IP gets no record.
      const cname = target && NAME_RE.test(target) && !canonicalIP(target) ? target : undefined;
      return { kind: Kind.ExternalName, ips: EMPTY, ports: EMPTY, cname };
    }
    if (spec.clusterIP === 'None') return { kind: Kind.Headless, ips: EMPTY, ports: EMPTY, cname: undefined };
    const ips = (list(spec.clusterIPs).length ? list(spec.clusterIPs) : [String(spec.clusterIP ?? '')])
      .map((ip) => (typeof ip === 'string' ? canonicalIP(ip) : undefined))
      .filter((ip): ip is string => ip !== undefined);
    const ports = list(spec.ports as ServicePort[]).map(portInfo).filter((p): p is PortInfo => p !== undefined);
    return { kind: Kind.ClusterIP, ips: ips.length ? ips.slice() : EMPTY, ports: intern(ports), cname: undefined };
  }

  function sliceEntry(slice: EndpointSlice): SliceEntry {
    const label = slice.metadata?.labels?.['kubernetes.io/service-name'];
    const service = typeof label === 'string' && label ? label : undefined;
    // FQDN slices carry no addresses DNS can answer with.
    if (slice.addressType === 'FQDN') return { service, ports: EMPTY, endpoints: EMPTY };
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
    // slice(): an exact-size copy, not the push-grown one (it lives as long as the slice).
    return { service, ports: intern(ports), endpoints: endpoints.length ? endpoints.slice() : EMPTY };
  }

  // ---- reading entries ----

  /** Ready endpoints of a Service, deduplicated (ready unset counts as ready). */
  function readyEndpoints(slot: ServiceSlot): ReadyEndpoint[] {
    const out: ReadyEndpoint[] = [];
    for (const s of slot.slices) {
      const eps = s.endpoints;
      for (let i = 0; i < eps.length; i += 2) {
        const ip = eps[i]!;
        const label = eps[i + 1] || dashed(ip);
        if (!out.some((e) => e.ip === ip && e.label === label)) out.push({ ip, label });
      }
    }
    return out;
  }

  function slicePorts(slot: ServiceSlot): PortInfo[] {
    const out: PortInfo[] = [];
    for (const s of slot.slices) {
      for (const p of s.ports) if (!out.some((x) => x.name === p.name && x.port === p.port && x.protocol === p.protocol)) out.push(p);
    }
    return out;
  }

  /** `<svc>.<ns>.svc.<zone>` */
  const baseName = (slot: ServiceSlot) => `${slot.name}.${slot.namespace}${svcSuffix}`;

  function lookupService(e: ServiceSlot, labels: string[]): NameRecords | undefined {
    const base = baseName(e);
    if (e.kind === Kind.ExternalName) return labels.length === 0 && e.cname ? { cname: e.cname } : undefined;
    const eps = readyEndpoints(e);
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
      if (r) for (const p of slicePorts(e)) addSrv(r, p.port, owner);
      return r;
    }
    if (e.kind === Kind.Headless) {
      if (eps.length === 0) return undefined;
      const ports = slicePorts(e);
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

  function ptrAdd(ip: string, e: ServiceSlot): void {
    const cur = ptrs.get(ip);
    if (cur === undefined) ptrs.set(ip, e);
    else if (Array.isArray(cur)) { if (!cur.includes(e)) cur.push(e); }
    else if (cur !== e) ptrs.set(ip, [cur as ServiceSlot, e]);
  }

  function ptrRemove(ip: string, e: ServiceSlot): void {
    const cur = ptrs.get(ip);
    if (cur === e) ptrs.delete(ip);
    else if (Array.isArray(cur)) {
      const left = cur.filter((x) => x !== e);
      if (left.length === 0) ptrs.delete(ip);
      else ptrs.set(ip, left.length === 1 ? left[0]! : left);
    }
  }

  /**
   * PTR entries point at the Service from its cluster IPs and ready endpoint IPs. They are unlinked
   * before the Service or its slices change and linked again after, computed from the slot itself,
   * so no list of IPs is kept per Service.
   */
  function linkPtrs(e: ServiceSlot, link: (ip: string, e: ServiceSlot) => void): void {
    if (e.kind === Kind.Absent || e.kind === Kind.ExternalName) return;
    for (const s of e.slices) for (let i = 0; i < s.endpoints.length; i += 2) link(s.endpoints[i]!, e);
    if (e.kind === Kind.ClusterIP) for (const ip of e.ips) link(ip, e);
  }

  function ptrTargets(e: ServiceSlot, ip: string, out: string[]): void {
    if (!exists(e)) return;
    const base = baseName(e);
    for (const ep of readyEndpoints(e)) if (ep.ip === ip) out.push(`${ep.label}.${base}`);
    if (e.kind === Kind.ClusterIP && e.ips.includes(ip)) out.push(base);
  }

  /** Changes a slot (its Service or its slices); its PTR entries and the answers follow. */
  function change(slot: ServiceSlot, mutate: (slot: ServiceSlot) => void): void {
    linkPtrs(slot, ptrRemove);
    mutate(slot);
    linkPtrs(slot, ptrAdd);
    if (slot.kind !== Kind.Absent || slot.slices.length) touch();
    dropIfEmpty(slot);
  }

  function removePodIPs(ns: string, ips: string | readonly string[]): void {
    for (const ip of typeof ips === 'string' ? [ips] : ips) {
      const n = (podIPCount.get(ns, ip) ?? 1) - 1;
      if (n) podIPCount.set(ns, ip, n); else podIPCount.delete(ns, ip);
    }
  }

  const nameOf = (o: { metadata?: { namespace?: string; name?: string } }) => [o.metadata?.namespace ?? '', o.metadata?.name ?? ''] as const;

  return {
    zone,
    lookup(name) {
      if (!name.endsWith(svcSuffix)) return undefined;
      const labels = name.slice(0, -svcSuffix.length).split('.');
      const n = labels.length;
      // <svc>.<ns> | <endpoint>.<svc>.<ns> | _<port>._<proto>.<svc>.<ns>
      if (n < 2 || n > 4) return undefined;
      const slot = slots.get(labels[n - 1]!, labels[n - 2]!);
      if (!exists(slot)) return undefined;
      const rest = labels.slice(0, n - 2);
      if (rest.length === 2 && !(rest[0]!.startsWith('_') && rest[1]!.startsWith('_'))) return undefined;
      return lookupService(slot, rest);
    },
    ptr(ip) {
      const cur = ptrs.get(ip);
      if (cur === undefined) return undefined;
      const out: string[] = [];
      for (const e of Array.isArray(cur) ? cur : [cur as ServiceSlot]) ptrTargets(e, ip, out);
      return out.length ? [...new Set(out)] : undefined;
    },
    generation: () => generation,
    namespaceExists: (ns) => (namespaceObjects ? nsObjects.has(ns) : nsCounts.has(ns)),
    podHasIP: (ns, ip) => podIPCount.get(ns, ip) !== undefined,
    serial: () => serial >>> 0,
    upsertService(svc) {
      const problem = invalidService(svc);
      if (problem) return problem;
      // Computed before the slot changes: if an object is too broken to build from, the old records stay.
      const fields = serviceFields(svc);
      const slot = slotFor(svc.metadata!.namespace!, svc.metadata!.name!);
      if (slot.kind === Kind.Absent) { countNs(slot.namespace, 1); serviceCount++; }
      change(slot, (s) => Object.assign(s, fields));
      return undefined;
    },
    deleteService(svc) {
      const [ns, name] = nameOf(svc);
      const slot = slots.get(ns, name);
      if (!exists(slot)) return;
      countNs(ns, -1);
      serviceCount--;
      change(slot, (s) => Object.assign(s, { kind: Kind.Absent, ips: EMPTY, ports: EMPTY, cname: undefined }));
      touch();
    },
    upsertSlice(slice) {
      const [ns, name] = nameOf(slice);
      const entry = sliceEntry(slice);
      const old = slices.get(ns, name);
      if (!old) sliceCount++;
      slices.set(ns, name, entry);
      if (old && old.service === entry.service && entry.service) {
        // Same Service: the slice keeps its place (answer order).
        change(slotFor(ns, entry.service), (s) => { s.slices = s.slices.map((x) => (x === old ? entry : x)); });
        return;
      }
      const before = old?.service ? slots.get(ns, old.service) : undefined;
      if (before) change(before, (s) => { s.slices = s.slices.filter((x) => x !== old); });
      if (entry.service) change(slotFor(ns, entry.service), (s) => { s.slices = [...s.slices, entry]; });
    },
    deleteSlice(slice) {
      const [ns, name] = nameOf(slice);
      const old = slices.get(ns, name);
      if (!old) return;
      slices.delete(ns, name);
      sliceCount--;
      const slot = old.service ? slots.get(ns, old.service) : undefined;
      if (slot) change(slot, (s) => { s.slices = s.slices.filter((x) => x !== old); });
    },
    upsertPod(pod) {
      const [ns, name] = nameOf(pod);
      if (!ns) return;
      const ips = podIPs(pod);
      const old = pods.get(ns, name);
      if (old !== undefined) removePodIPs(ns, old);
      else { countNs(ns, 1); podCount++; }
      pods.set(ns, name, ips.length === 1 ? ips[0]! : ips);
      generation++;
      for (const ip of ips) podIPCount.set(ns, ip, (podIPCount.get(ns, ip) ?? 0) + 1);
    },
    deletePod(pod) {
      const [ns, name] = nameOf(pod);
      const old = pods.get(ns, name);
      if (old === undefined) return;
      pods.delete(ns, name);
      podCount--;
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
    stats: () => ({ services: serviceCount, endpointSlices: sliceCount, ptrs: ptrs.size, pods: podCount, namespaces: namespaceObjects ? nsObjects.size : nsCounts.size }),
    objects() {
      const services: Service[] = [];
      for (const [, , e] of slots.entries()) {
        if (!exists(e)) continue;
        services.push({
          metadata: { namespace: e.namespace, name: e.name },
          spec: e.kind === Kind.ExternalName
            ? { type: 'ExternalName', ...(e.cname ? { externalName: e.cname } : {}) }
            : e.kind === Kind.Headless
              ? { clusterIP: 'None' }
              : { clusterIP: e.ips[0] ?? '', clusterIPs: [...e.ips], ports: e.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol.toUpperCase() })) },
        });
      }
      const endpointSlices: EndpointSlice[] = [];
      for (const [namespace, name, s] of slices.entries()) {
        const endpoints = [];
        for (let i = 0; i < s.endpoints.length; i += 2) endpoints.push({ addresses: [s.endpoints[i]!], conditions: { ready: true }, ...(s.endpoints[i + 1] ? { hostname: s.endpoints[i + 1]! } : {}) });
        endpointSlices.push({
          metadata: { namespace, name, ...(s.service ? { labels: { 'kubernetes.io/service-name': s.service } } : {}) },
          addressType: s.endpoints.length && isIPv6(s.endpoints[0]!) ? 'IPv6' : 'IPv4',
          endpoints,
          ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol.toUpperCase() })),
        });
      }
      // Only what PodRecords need, so the checkpoint stays small.
      const podList: Pod[] = [];
      for (const [namespace, name, ips] of pods.entries()) podList.push({ metadata: { namespace, name }, status: { podIPs: (typeof ips === 'string' ? [ips] : ips).map((ip) => ({ ip })) } });
      return { services, endpointSlices, pods: podList, namespaces: [...nsObjects].map((name) => ({ metadata: { name } })) };
    },
  };
}
