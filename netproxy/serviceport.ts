/**
 * ServicePort: one port of one Service, validated once when the Service changes. A Service with a
 * bad cluster IP is skipped whole; a bad port or external IP skips only that port or address.
 */
import type { Service } from 'kubernetes-types/core/v1';
import { isIP } from 'node:net';
import { isCIDR } from './config';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 4 | 6;

export interface ServicePortSpec {
  /** `ns/name` of the Service. */
  service: string;
  portName: string;
  protocol: Protocol;
  port: number;
  nodePort?: number;
  /** Cluster IPs by family (dual stack: up to one per family). */
  clusterIPs: string[];
  externalIPs: string[];
  loadBalancerIPs: string[];
  loadBalancerSourceRanges: string[];
  affinityTimeoutSeconds?: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort?: number;
  /** The Service carries `service.kubernetes.io/topology-mode` (or the older topology-aware-hints). */
  topologyAware: boolean;
}

export interface ParsedService {
  key: string;
  ports: ServicePortSpec[];
  problems: string[];
}

export function serviceKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

const PROTOCOLS = new Set<Protocol>(['TCP', 'UDP', 'SCTP']);

/** One shared, frozen empty list: most Services have no externalIPs, LB IPs or problems (10 000 Services: ~2 MB). */
export const NONE: string[] = Object.freeze([]) as unknown as string[];
export const orNone = (list: string[]): string[] => (list.length ? list : NONE);
const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;

export function familyOf(ip: string): IPFamily {
  return isIP(ip) === 6 ? 6 : 4;
}

/** Returns the Service's proxied ports (none for headless or ExternalName Services) and the problems found. */
export function parseService(svc: Service): ParsedService {
  const key = serviceKey(svc);
  const problems: string[] = [];
  const spec = svc.spec;
  if (!spec || spec.type === 'ExternalName') return { key, ports: [], problems };
  const rawIPs = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  if (rawIPs.length === 0 || rawIPs[0] === 'None') return { key, ports: [], problems };
  const clusterIPs: string[] = [];
  for (const ip of rawIPs) {
    if (isIP(ip) === 0) {
      problems.push(`invalid clusterIP ${JSON.stringify(ip)}`);
      return { key, ports: [], problems };
    }
    if (clusterIPs.some((c) => familyOf(c) === familyOf(ip))) problems.push(`second clusterIP of one family ignored: ${ip}`);
    else clusterIPs.push(ip);
  }
  const ipList = (field: string, list: (string | undefined)[]): string[] =>
    list.filter((ip): ip is string => {
      if (ip === undefined || ip === '') return false;
      if (isIP(ip) !== 0) return true;
      problems.push(`invalid ${field} ${JSON.stringify(ip)} ignored`);
      return false;
    });
  const externalIPs = orNone(ipList('externalIP', spec.externalIPs ?? []));
  const isLB = spec.type === 'LoadBalancer';
  const loadBalancerIPs = isLB ? orNone(ipList('loadBalancer ingress IP', (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip))) : NONE;
  const loadBalancerSourceRanges = isLB
    ? orNone((spec.loadBalancerSourceRanges ?? []).filter((c) => isCIDR(c.trim()) || void problems.push(`invalid loadBalancerSourceRange ${c}`)))
    : NONE;
  const hasNodePorts = spec.type === 'NodePort' || (isLB && spec.allocateLoadBalancerNodePorts !== false);
  const hasExternal = hasNodePorts || isLB || externalIPs.length > 0;
  const externalPolicyLocal = hasExternal && spec.externalTrafficPolicy === 'Local';
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  const affinityTimeoutSeconds =
    spec.sessionAffinity === 'ClientIP' ? (typeof timeout === 'number' && timeout > 0 && timeout <= 86400 ? timeout : 10800) : undefined;
  const annotations = svc.metadata?.annotations ?? {};
  const topologyMode = annotations['service.kubernetes.io/topology-mode'] ?? annotations['service.kubernetes.io/topology-aware-hints'];
  const topologyAware = (topologyMode !== undefined && topologyMode !== '' && topologyMode.toLowerCase() !== 'disabled') ||
    (spec as { trafficDistribution?: string }).trafficDistribution !== undefined;
  let healthCheckNodePort: number | undefined;
  if (externalPolicyLocal && isLB && spec.healthCheckNodePort !== undefined) {
    if (isPort(spec.healthCheckNodePort)) healthCheckNodePort = spec.healthCheckNodePort;
    else problems.push(`invalid healthCheckNodePort ${String(spec.healthCheckNodePort)}`);
  }

  const ports: ServicePortSpec[] = [];
  for (const p of spec.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP') as Protocol;
    const portName = p.name ?? '';
    if (!PROTOCOLS.has(protocol)) {
      problems.push(`port ${portName || p.port}: unsupported protocol ${protocol}`);
      continue;
    }
    if (!isPort(p.port)) {
      problems.push(`port ${portName || '?'}: invalid port ${JSON.stringify(p.port)}`);
      continue;
    }
    let nodePort: number | undefined;
    if (hasNodePorts && p.nodePort !== undefined && p.nodePort !== 0) {
      if (isPort(p.nodePort)) nodePort = p.nodePort;
      else problems.push(`port ${portName || p.port}: invalid nodePort ${JSON.stringify(p.nodePort)} ignored`);
    }
    ports.push({
      service: key,
      portName,
      protocol,
      port: p.port,
      ...(nodePort !== undefined ? { nodePort } : {}),
      clusterIPs,
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      ...(affinityTimeoutSeconds !== undefined ? { affinityTimeoutSeconds } : {}),
      externalPolicyLocal,
      internalPolicyLocal: spec.internalTrafficPolicy === 'Local',
      ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
      topologyAware,
    });
  }
  return { key, ports, problems: orNone(problems) };
}
