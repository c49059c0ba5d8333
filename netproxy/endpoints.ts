/**
 * Endpoint selection shared by every backend: which endpoints a Service port's internal traffic
 * (ClusterIP) and external traffic (NodePort, externalIPs, LoadBalancer) may reach.
 */
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { isIP } from 'node:net';
import type { IPFamily, ServicePortSpec } from './serviceport';

export interface Endpoint {
  ip: string;
  port: number;
  nodeName?: string;
  zoneHints?: string[];
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  isLocal: boolean;
  /** `{ ip, port }`, the object every list of this endpoint shares. */
  address: EndpointAddress;
}

export interface EndpointAddress {
  ip: string;
  port: number;
}

/** How traffic to one kind of frontend is handled: forwarded to endpoints, rejected, or dropped. */
export interface TrafficTarget {
  verdict: 'forward' | 'reject' | 'drop';
  endpoints: EndpointAddress[];
}

export interface CategorizedEndpoints {
  internal: TrafficTarget;
  external: TrafficTarget;
  /** Ready local endpoints, for the externalTrafficPolicy: Local health check. */
  localReady: number;
  /** Every endpoint that can serve (for conntrack cleanup). */
  serving: EndpointAddress[];
}

/** Collects the endpoints of one port and family from a Service's slices (deduplicated by ip:port). */
export function endpointsFor(slices: Iterable<EndpointSlice>, spec: ServicePortSpec, family: IPFamily, nodeName: string): Endpoint[] {
  const byAddr = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.addressType !== (family === 4 ? 'IPv4' : 'IPv6')) continue;
    const port = (slice.ports ?? []).find((p) => (p.name ?? '') === spec.portName && (p.protocol ?? 'TCP') === spec.protocol);
    if (!port || typeof port.port !== 'number' || port.port < 1 || port.port > 65535) continue;
    for (const ep of slice.endpoints ?? []) {
      const ip = ep.addresses?.[0];
      if (!ip || isIP(ip) !== family) continue;
      const ready = ep.conditions?.ready !== false;
      const serving = ep.conditions?.serving ?? ready;
      const endpoint: Endpoint = {
        ip,
        port: port.port,
        ready,
        serving,
        terminating: ep.conditions?.terminating === true,
        isLocal: ep.nodeName !== undefined && ep.nodeName === nodeName,
        address: { ip, port: port.port },
        ...(ep.nodeName !== undefined ? { nodeName: ep.nodeName } : {}),
        ...(ep.hints?.forZones ? { zoneHints: ep.hints.forZones.map((z) => z.name) } : {}),
      };
      const key = `${ip}:${port.port}`;
      const seen = byAddr.get(key);
      if (!seen || (!seen.ready && endpoint.ready)) byAddr.set(key, endpoint);
    }
  }
  return [...byAddr.values()].sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

/** Ready endpoints, or the serving-but-terminating ones when none is ready. */
function usable(eps: Endpoint[]): Endpoint[] {
  const ready = eps.filter((e) => e.ready);
  return ready.length ? ready : eps.filter((e) => e.serving && e.terminating);
}

/** Topology hints apply only when every endpoint has some and at least one names this node's zone. */
function topologyFilter(eps: Endpoint[], spec: ServicePortSpec, nodeZone: string | undefined): Endpoint[] {
  if (!spec.topologyAware || !nodeZone || eps.length === 0) return eps;
  if (!eps.every((e) => e.zoneHints && e.zoneHints.length > 0)) return eps;
  const inZone = eps.filter((e) => e.zoneHints!.includes(nodeZone));
  return inZone.length ? inZone : eps;
}

/** One address object per endpoint, shared by the internal, external and serving lists. */
const addr = (e: Endpoint): EndpointAddress => e.address;

export function categorizeEndpoints(eps: Endpoint[], spec: ServicePortSpec, nodeZone: string | undefined): CategorizedEndpoints {
  const cluster = topologyFilter(usable(eps), spec, nodeZone);
  const local = usable(eps.filter((e) => e.isLocal));
  const hasAny = cluster.length > 0;
  const target = (policyLocal: boolean): TrafficTarget => {
    const chosen = policyLocal ? local : cluster;
    if (chosen.length) return { verdict: 'forward', endpoints: chosen.map(addr) };
    // No endpoint at all: reject (the client learns at once). Endpoints exist but none for this
    // policy: drop, as kube-proxy does.
    return { verdict: hasAny ? 'drop' : 'reject', endpoints: [] };
  };
  const internal = target(spec.internalPolicyLocal);
  return {
    internal,
    // The same policy gives the same target: one list kept, not two (10 000 Services: ~1.5 MB).
    external: spec.externalPolicyLocal === spec.internalPolicyLocal ? internal : target(spec.externalPolicyLocal),
    localReady: eps.filter((e) => e.isLocal && e.ready).length,
    serving: eps.filter((e) => e.ready || e.serving).map(addr),
  };
}
