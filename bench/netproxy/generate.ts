/**
 * Generated Services and EndpointSlices for the netproxy benchmark and the large-ruleset tests.
 * Deterministic: service i always gets the same kind, protocol, addresses and endpoints.
 *
 *   mix 'mixed'     every kind and policy in rotation: ClusterIP, NodePort, LoadBalancer (some with
 *                   loadBalancerSourceRanges), externalIP; TCP/UDP/SCTP; ClientIP affinity on
 *                   every 20th; externalTrafficPolicy Local on every 5th externally reachable one.
 *   mix 'nodeport'  every Service a TCP NodePort (port 80 → 8080), the shape of the bench.
 */
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';

export const GEN_NODE = 'bench-node';
export const GEN_NODE_IP = '192.168.1.10';
/** Endpoints live in 10.128.0.0/9 (up to 8 M addresses); half of them on this node. */
export const GEN_POD_CIDR = '10.128.0.0/9';

export type Mix = 'mixed' | 'nodeport';

export interface Generated {
  services: Service[];
  slices: EndpointSlice[];
}

function ipv4(base: [number, number, number, number], offset: number): string {
  const n = ((base[0] << 24) | (base[1] << 16) | (base[2] << 8) | base[3]) + offset;
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export const clusterIPOf = (i: number) => ipv4([10, 96, 0, 0], i + 1);
export const endpointIPOf = (i: number, j: number, perService: number) => ipv4([10, 128, 0, 0], i * perService + j + 1);
export const externalIPOf = (i: number) => ipv4([203, 0, 0, 0], i + 1);
export const lbIPOf = (i: number) => ipv4([198, 18, 0, 0], i + 1);
export const nodePortOf = (i: number) => 30000 + (i % 35000);

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

/** The i-th endpoint slice (port 8080 for port 80 of service i), with `perService` endpoints. */
export function sliceFor(i: number, perService: number, protocol = 'TCP', generation = 0): EndpointSlice {
  const name = `svc-${i}`;
  return {
    metadata: {
      namespace: 'bench',
      name: `${name}-a`,
      labels: { 'kubernetes.io/service-name': name },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': new Date().toISOString() },
    },
    addressType: 'IPv4',
    endpoints: Array.from({ length: perService }, (_, j) => ({
      addresses: [endpointIPOf(i, j + generation, perService)],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: j % 2 === 0 ? GEN_NODE : 'other-node',
    })),
    ports: [{ name: 'p', port: 8080, protocol: protocol as 'TCP' }],
  };
}

export function generate(count: number, perService: number, mix: Mix): Generated {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    const protocol = mix === 'nodeport' ? 'TCP' : PROTOCOLS[i % 3]!;
    const kind = mix === 'nodeport' ? 'NodePort' : (['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalIP'] as const)[i % 4]!;
    const external = kind !== 'ClusterIP';
    const spec: NonNullable<Service['spec']> = {
      type: kind === 'ExternalIP' ? 'ClusterIP' : kind,
      clusterIP: clusterIPOf(i),
      clusterIPs: [clusterIPOf(i)],
      ports: [{ name: 'p', port: 80, protocol, ...(kind === 'NodePort' || kind === 'LoadBalancer' ? { nodePort: nodePortOf(i) } : {}) }],
    };
    if (kind === 'ExternalIP') spec.externalIPs = [externalIPOf(i)];
    if (mix === 'mixed') {
      if (external && i % 5 === 2) spec.externalTrafficPolicy = 'Local';
      if (i % 20 === 7) {
        spec.sessionAffinity = 'ClientIP';
        spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 300 } };
      }
      if (kind === 'LoadBalancer' && i % 3 === 0) spec.loadBalancerSourceRanges = ['192.168.1.0/28', '172.16.0.0/12'];
    }
    services.push({
      metadata: { namespace: 'bench', name },
      spec,
      ...(kind === 'LoadBalancer' ? { status: { loadBalancer: { ingress: [{ ip: lbIPOf(i) }] } } } : {}),
    });
    slices.push(sliceFor(i, perService, protocol));
  }
  return { services, slices };
}
