/**
 * What ipvs mode wants in the kernel for a desired state: virtual servers (one per Service frontend
 * address, port and protocol, as kube-proxy's ipvs mode programs them), the addresses bound to
 * kube-ipvs0, and the ipset entries the few iptables rules match on.
 *
 * Endpoint choice is the shared one (desiredstate/endpoints): a frontend's real servers are exactly
 * the endpoints its traffic may reach. When that list is empty the virtual server still exists with
 * no real server; IPVS then answers new connections with ICMP port-unreachable (see the tests for
 * how this differs from the DROP of the other modes).
 */
import { isIP } from 'node:net';
import type { ProxyConfig } from '../config';
import type { DesiredState, ServicePortState } from '../desiredstate';
import type { EndpointAddress } from '../endpoints';
import { cidrContains } from '../ipnet';
import type { IPFamily, Protocol } from '../serviceport';
import { SET_CATALOGUE, ipPortEntry, ipPortIpEntry, ipPortNetEntry, portEntry, setName, type SetBase } from './ipset';
import { hostPort, vsKey, type VirtualServer } from './virtualserver';

/** The ServicePortState field ipvs mode reads for LoadBalancer source ranges, when the core provides it. */
export type IpvsPortState = ServicePortState & { loadBalancerSourceRanges?: string[] };

export interface DesiredVirtualServer extends VirtualServer {
  /** The Service (`ns/name`) this frontend belongs to. */
  service: string;
}

/** A LoadBalancer frontend whose source ranges exclude the node: the node itself may not reach it. */
export interface NoNodeAccess {
  family: IPFamily;
  ip: string;
  protocol: Protocol;
  port: number;
}

export interface IpvsDesired {
  families: IPFamily[];
  services: Map<string, DesiredVirtualServer>;
  /** Addresses to bind on kube-ipvs0. */
  bind: Set<string>;
  /** Set name → entries, for every owned set of the node's families (empty sets included). */
  sets: Map<string, Set<string>>;
  noNodeAccess: NoNodeAccess[];
  /** Frontends that lost to an earlier Service for the same address:port/protocol. */
  conflicts: { service: string; frontend: string; owner: string }[];
}

export interface DesiredContext {
  config: ProxyConfig;
  nodeIPs: string[];
}

export function familyOfIP(addr: string): IPFamily {
  return isIP(addr) === 6 ? 6 : 4;
}

/** The node addresses NodePorts listen on (nodePortAddresses filters them; empty = all). */
export function nodePortIPs(ctx: DesiredContext): string[] {
  const cidrs = ctx.config.nodePortAddresses;
  if (!cidrs.length) return ctx.nodeIPs;
  return ctx.nodeIPs.filter((a) => cidrs.some((c) => isIP(c.split('/')[0]!) === isIP(a) && cidrContains(c, a)));
}

export function nodeFamilies(nodeIPs: string[]): IPFamily[] {
  const fams = [...new Set(nodeIPs.map(familyOfIP))].sort();
  return fams.length ? fams : [4];
}

export function buildIpvsDesired(state: DesiredState, ctx: DesiredContext): IpvsDesired {
  const families = nodeFamilies(ctx.nodeIPs);
  const sets = new Map<string, Set<string>>();
  for (const f of families) for (const s of SET_CATALOGUE) sets.set(setName(s.base, f), new Set());
  const out: IpvsDesired = { families, services: new Map(), bind: new Set(), sets, noNodeAccess: [], conflicts: [] };
  const nodeAddrs = new Set(ctx.nodeIPs.map((a) => a.toLowerCase()));
  const npIPs = nodePortIPs(ctx);
  const scheduler = ctx.config.ipvs.scheduler || 'rr';
  const flags = scheduler === 'mh' ? ['mh-port'] : [];

  const add = (base: SetBase, family: IPFamily, entry: string) => sets.get(setName(base, family))!.add(entry);
  const frontend = (sp: ServicePortState, addr: string, port: number, eps: EndpointAddress[]) => {
    const vs: DesiredVirtualServer = {
      service: sp.service,
      protocol: sp.protocol,
      ip: addr.toLowerCase(),
      port,
      scheduler,
      ...(sp.affinityTimeoutSeconds !== undefined ? { persistence: sp.affinityTimeoutSeconds } : {}),
      flags,
      realServers: new Map(eps.map((e) => [hostPort(e.ip, e.port), { ip: e.ip.toLowerCase(), port: e.port, weight: 1, activeConns: 0, inactiveConns: 0 }])),
    };
    const key = vsKey(vs);
    const owner = out.services.get(key);
    if (owner && owner.service !== sp.service) {
      out.conflicts.push({ service: sp.service, frontend: key, owner: owner.service });
      return false;
    }
    if (!owner) out.services.set(key, vs);
    return true;
  };

  // Sorted so that a conflict always resolves the same way.
  const keys = [...state.services.keys()].sort();
  for (const key of keys) {
    for (const sp of state.services.get(key)! as IpvsPortState[]) {
      const f = sp.family;
      if (!families.includes(f)) continue;
      const p = sp.protocol;
      const externalEps = sp.external.endpoints;

      // kube-proxy lists only local endpoints here; the state does not say which are local, and an
      // entry matches only a packet from an endpoint to itself, so listing all of them is equivalent.
      for (const ep of uniqueEndpoints([...sp.internal.endpoints, ...externalEps])) add('LOOP-BACK', f, ipPortIpEntry(ep.ip, p, ep.port, ep.ip));

      if (frontend(sp, sp.clusterIP, sp.port, sp.internal.endpoints)) {
        add('CLUSTER-IP', f, ipPortEntry(sp.clusterIP, p, sp.port));
        out.bind.add(sp.clusterIP.toLowerCase());
      }

      for (const ext of sp.externalIPs) {
        if (!frontend(sp, ext, sp.port, externalEps)) continue;
        add(sp.externalPolicyLocal ? 'EXTERNAL-IP-LOCAL' : 'EXTERNAL-IP', f, ipPortEntry(ext, p, sp.port));
        // An external IP that is already a node address must not be bound a second time.
        if (!nodeAddrs.has(ext.toLowerCase())) out.bind.add(ext.toLowerCase());
      }

      for (const lb of sp.loadBalancerIPs) {
        if (!frontend(sp, lb, sp.port, externalEps)) continue;
        const entry = ipPortEntry(lb, p, sp.port);
        add('LOAD-BALANCER', f, entry);
        if (sp.externalPolicyLocal) add('LOAD-BALANCER-LOCAL', f, entry);
        const ranges = (sp.loadBalancerSourceRanges ?? []).filter((c) => familyOfIP(c.split('/')[0]!) === f);
        if (ranges.length) {
          add('LOAD-BALANCER-FW', f, entry);
          for (const c of ranges) add('LOAD-BALANCER-SOURCE-CIDR', f, ipPortNetEntry(lb, p, sp.port, c));
          const nodeAllowed = ctx.nodeIPs.some((n) => familyOfIP(n) === f && ranges.some((c) => cidrContains(c.trim(), n)));
          if (nodeAllowed) add('LOAD-BALANCER-SOURCE-IP', f, ipPortIpEntry(lb, p, sp.port, lb));
          else out.noNodeAccess.push({ family: f, ip: lb.toLowerCase(), protocol: p, port: sp.port });
        }
        if (!nodeAddrs.has(lb.toLowerCase())) out.bind.add(lb.toLowerCase());
      }

      if (sp.nodePort !== undefined) {
        const ips = npIPs.filter((a) => familyOfIP(a) === f);
        const placed = ips.filter((a) => frontend(sp, a, sp.nodePort!, externalEps));
        if (p === 'SCTP') {
          for (const a of placed) {
            add('NODE-PORT-SCTP-HASH', f, ipPortEntry(a, p, sp.nodePort));
            if (sp.externalPolicyLocal) add('NODE-PORT-LOCAL-SCTP-HASH', f, ipPortEntry(a, p, sp.nodePort));
          }
        } else if (placed.length) {
          add(p === 'TCP' ? 'NODE-PORT-TCP' : 'NODE-PORT-UDP', f, portEntry(sp.nodePort));
          if (sp.externalPolicyLocal) add(p === 'TCP' ? 'NODE-PORT-LOCAL-TCP' : 'NODE-PORT-LOCAL-UDP', f, portEntry(sp.nodePort));
        }
      }

      if (sp.healthCheckNodePort !== undefined) add('HEALTH-CHECK-NODE-PORT', f, portEntry(sp.healthCheckNodePort));
    }
  }
  for (const a of out.bind) add('IPVS-IPS', familyOfIP(a), a);
  return out;
}

function uniqueEndpoints(eps: EndpointAddress[]): EndpointAddress[] {
  const seen = new Map<string, EndpointAddress>();
  for (const e of eps) seen.set(hostPort(e.ip, e.port), e);
  return [...seen.values()];
}
