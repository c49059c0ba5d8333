/**
 * The comparison point: kube-proxy's own nftables rule structure for the same generated Services,
 * written from our reading of upstream's design (pkg/proxy/nftables): one table `ip kube-proxy`,
 * verdict maps `service-ips` / `service-nodeports` pointing at one chain per Service port
 * (`service-<hash>-ns/name/proto/port`, masquerade check then `numgen random mod N vmap` over the
 * endpoints), one `external-...` chain per externally reachable Service port, and one chain per
 * endpoint (`endpoint-<hash>-ns/name/proto/port__ip/port`: hairpin masquerade, then DNAT).
 * Written one object per line, as kube-proxy's transactions are.
 */
import { createHash } from 'node:crypto';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';

export const KP_TABLE = 'ip kube-proxy';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function hash8(text: string): string {
  const d = createHash('sha256').update(text).digest();
  let out = '';
  for (let i = 0; i < 8; i++) out += B32[d[i]! & 31];
  return out;
}

const chainName = (prefix: string, id: string) => `${prefix}-${hash8(id)}-${id}`;

interface PortInfo {
  id: string;
  clusterIP: string;
  proto: string;
  port: number;
  nodePort?: number;
  endpoints: { ip: string; port: number }[];
}

function ports(services: Service[], slices: EndpointSlice[]): PortInfo[] {
  const bySvc = new Map<string, EndpointSlice>();
  for (const s of slices) bySvc.set(`${s.metadata!.namespace}/${s.metadata!.labels!['kubernetes.io/service-name']}`, s);
  const out: PortInfo[] = [];
  for (const svc of services) {
    const key = `${svc.metadata!.namespace}/${svc.metadata!.name}`;
    const slice = bySvc.get(key);
    for (const p of svc.spec!.ports ?? []) {
      const proto = (p.protocol ?? 'TCP').toLowerCase();
      const target = slice?.ports?.find((sp) => (sp.name ?? '') === (p.name ?? ''));
      out.push({
        id: `${key}/${proto}/${p.name ?? ''}`,
        clusterIP: svc.spec!.clusterIP!,
        proto,
        port: p.port,
        ...(p.nodePort ? { nodePort: p.nodePort } : {}),
        endpoints: (slice?.endpoints ?? []).map((e) => ({ ip: e.addresses[0]!, port: target?.port ?? p.port })),
      });
    }
  }
  return out;
}

const epChain = (p: PortInfo, ep: { ip: string; port: number }) => chainName('endpoint', `${p.id}__${ep.ip}/${ep.port}`);

function serviceChainLines(p: PortInfo, podCIDR: string, eps: { ip: string; port: number }[]): string[] {
  const svc = chainName('service', p.id);
  const vmap = eps.map((ep, i) => `${i} : goto ${epChain(p, ep)}`).join(' , ');
  return [
    `add chain ${KP_TABLE} ${svc}`,
    `flush chain ${KP_TABLE} ${svc}`,
    `add rule ${KP_TABLE} ${svc} ip daddr ${p.clusterIP} ${p.proto} dport ${p.port} ip saddr != ${podCIDR} jump mark-for-masquerade`,
    `add rule ${KP_TABLE} ${svc} numgen random mod ${eps.length} vmap { ${vmap} }`,
  ];
}

function endpointChainLines(p: PortInfo, ep: { ip: string; port: number }): string[] {
  const c = epChain(p, ep);
  return [
    `add chain ${KP_TABLE} ${c}`,
    `add rule ${KP_TABLE} ${c} ip saddr ${ep.ip} jump mark-for-masquerade`,
    `add rule ${KP_TABLE} ${c} meta l4proto ${p.proto} dnat to ${ep.ip}:${ep.port}`,
  ];
}

/** The whole ruleset for a fresh table, as kube-proxy's first sync writes it. */
export function kubeProxyRuleset(services: Service[], slices: EndpointSlice[], podCIDR: string, nodeIP: string): { text: string; chains: number; rules: number } {
  const t = KP_TABLE;
  const lines = [
    `add table ${t} { comment "rules for kube-proxy" ; }`,
    `add chain ${t} mark-for-masquerade`,
    `add rule ${t} mark-for-masquerade mark set mark or 0x4000`,
    `add chain ${t} masquerading`,
    `add rule ${t} masquerading mark and 0x4000 == 0 return`,
    `add rule ${t} masquerading mark set mark xor 0x4000`,
    `add rule ${t} masquerading masquerade fully-random`,
    `add set ${t} nodeport-ips { type ipv4_addr ; }`,
    `add element ${t} nodeport-ips { ${nodeIP} }`,
    `add set ${t} cluster-ips { type ipv4_addr ; }`,
    `add map ${t} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }`,
    `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; }`,
    `add chain ${t} services`,
    `add rule ${t} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${t} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority dstnat ; }`,
    `add rule ${t} nat-prerouting jump services`,
    `add chain ${t} nat-output { type nat hook output priority -100 ; }`,
    `add rule ${t} nat-output jump services`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority srcnat ; }`,
    `add rule ${t} nat-postrouting jump masquerading`,
  ];
  let chains = 6;
  let rules = 9;
  for (const p of ports(services, slices)) {
    for (const ep of p.endpoints) {
      lines.push(...endpointChainLines(p, ep));
      chains++;
      rules += 2;
    }
    lines.push(...serviceChainLines(p, podCIDR, p.endpoints));
    chains++;
    rules += 2;
    const svc = chainName('service', p.id);
    lines.push(`add element ${t} cluster-ips { ${p.clusterIP} }`);
    lines.push(`add element ${t} service-ips { ${p.clusterIP} . ${p.proto} . ${p.port} : goto ${svc} }`);
    if (p.nodePort !== undefined) {
      const ext = chainName('external', p.id);
      lines.push(`add chain ${t} ${ext}`, `add rule ${t} ${ext} jump mark-for-masquerade`, `add rule ${t} ${ext} goto ${svc}`);
      lines.push(`add element ${t} service-nodeports { ${p.proto} . ${p.nodePort} : goto ${ext} }`);
      chains++;
      rules += 2;
    }
  }
  return { text: lines.join('\n') + '\n', chains, rules };
}

/**
 * kube-proxy's partial sync for one EndpointSlice change of one Service (endpoint `before` replaced
 * by `after`): the new endpoint chain, the Service chain rewritten, the stale endpoint chain
 * flushed and deleted, the Service's map elements written again.
 */
export function kubeProxyEndpointChange(service: Service, before: EndpointSlice, after: EndpointSlice, podCIDR: string): string {
  const [p] = ports([service], [after]);
  const [old] = ports([service], [before]);
  const t = KP_TABLE;
  const lines: string[] = [];
  const known = new Set(old!.endpoints.map((e) => epChain(old!, e)));
  const now = new Set(p!.endpoints.map((e) => epChain(p!, e)));
  for (const ep of p!.endpoints) if (!known.has(epChain(p!, ep))) lines.push(...endpointChainLines(p!, ep));
  lines.push(...serviceChainLines(p!, podCIDR, p!.endpoints));
  lines.push(`add element ${t} service-ips { ${p!.clusterIP} . ${p!.proto} . ${p!.port} : goto ${chainName('service', p!.id)} }`);
  for (const c of known) if (!now.has(c)) lines.push(`flush chain ${t} ${c}`, `delete chain ${t} ${c}`);
  return lines.join('\n') + '\n';
}
