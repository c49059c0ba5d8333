/**
 * Renders the desired state as nftables objects. One table per family (`ip keelson-proxy`,
 * `ip6 keelson-proxy`), built around verdict maps and concatenated maps: a Service port's
 * frontends and endpoints are map elements, and a few shared chains (one per kind of frontend and
 * endpoint count) pick an endpoint with `numgen random`. Only Services with ClientIP affinity get
 * chains of their own (one per endpoint, recording the client in a dynamic map; two for IPv6).
 */
import { createHash } from 'node:crypto';
import type { ProxyConfig } from '../config';
import type { ServicePortState } from '../desiredstate';
import type { EndpointAddress } from '../endpoints';
import { ofFamily } from '../ipnet';

export const TABLE = 'keelson-proxy';
export type NftFamily = 'ip' | 'ip6';
export const FAMILIES: readonly NftFamily[] = ['ip', 'ip6'];

export interface NftElement {
  /** `family map-name`. */
  map: string;
  key: string;
  /** '' for set elements. */
  value: string;
}

export interface NftChain {
  /** `family chain-name`. */
  name: string;
  rules: string[];
}

/** Everything one Service (all its ports and families) contributes to the ruleset. */
export interface NftFragment {
  elements: NftElement[];
  /** Chains only this Service uses (affinity). */
  chains: NftChain[];
  /** Chains shared by every Service of the same kind and endpoint count (reference-counted). */
  sharedChains: NftChain[];
  /** Dynamic maps this Service owns (`family name` → declaration body). */
  dynamicMaps: { name: string; decl: string }[];
}

export interface RenderContext {
  config: ProxyConfig;
  nodeIPs: string[];
}

const lower = (p: string) => p.toLowerCase();
const addrType = (f: NftFamily) => (f === 'ip' ? 'ipv4_addr' : 'ipv6_addr');
const hostAddr = (f: NftFamily, ip: string, port: number) => (f === 'ip' ? `${ip}:${port}` : `[${ip}]:${port}`);

export const PROTOS = ['tcp', 'udp', 'sctp'] as const;
export type NftProto = (typeof PROTOS)[number];

/** The map holding the endpoints of one protocol's ClusterIP/external IPs, or of its NodePorts. */
export function endpointMap(nodePort: boolean, proto: NftProto): string {
  return `${nodePort ? 'nodeport-' : ''}endpoints-${proto}`;
}

export function markBits(config: ProxyConfig): string {
  return '0x' + (1 << config.masqueradeBit).toString(16).padStart(8, '0');
}

function markMasq(config: ProxyConfig): string {
  return `meta mark set meta mark | ${markBits(config)}`;
}

/**
 * The packet match for "addressed to a NodePort address of this node". Never 127.0.0.0/8 or ::1:
 * like upstream's nftables mode, keelson's nftables mode offers no NodePorts on localhost
 * (iptables.localhostNodePorts is an iptables-mode option). They need route_localnet, which lets
 * packets addressed to 127.0.0.0/8 in from the network (CVE-2020-8558), and a masquerade of the
 * loopback source; pods and the node can use the node's own address instead.
 */
export function nodePortMatch(f: NftFamily): string {
  return f === 'ip' ? 'fib daddr type local ip daddr != 127.0.0.0/8' : 'fib daddr type local ip6 daddr != ::1';
}

/** The static part of a family's table: maps, base chains, dispatch. */
export function renderBase(f: NftFamily, ctx: RenderContext): string {
  const a = addrType(f);
  const nodePortAddrs = ctx.config.nodePortAddresses.length ? ofFamily(nodePortIPs(ctx), f === 'ip' ? 4 : 6) : undefined;
  const np = nodePortAddrs ? `${f} daddr @nodeport-ips` : nodePortMatch(f);
  const mark = markBits(ctx.config);
  return [
    `table ${f} ${TABLE} {`,
    `  comment "keelson netproxy; managed, do not edit"`,
    `  map service-ips {\n    type ${a} . inet_proto . inet_service : verdict\n  }`,
    `  map service-nodeports {\n    type inet_proto . inet_service : verdict\n  }`,
    `  map no-endpoint-services {\n    type ${a} . inet_proto . inet_service : verdict\n  }`,
    `  map no-endpoint-nodeports {\n    type inet_proto . inet_service : verdict\n  }`,
    // One endpoint map per protocol, its value typed with that protocol's port (`tcp dport`, ...).
    // nft 1.0.x cannot re-evaluate a `th dport` in a typeof map value once the map comes back from
    // the kernel: every transaction after the first that added a rule using the map (periodic full
    // syncs, a new endpoint count) failed with "conflicting protocols specified: tcp vs. th".
    ...PROTOS.map((p) => `  map ${endpointMap(false, p)} {\n    typeof ${f} daddr . meta l4proto . th dport . numgen random mod 1 : ${f} daddr . ${p} dport\n  }`),
    ...PROTOS.map((p) => `  map ${endpointMap(true, p)} {\n    typeof meta l4proto . th dport . numgen random mod 1 : ${f} daddr . ${p} dport\n  }`),
    `  map firewall-ips {\n    type ${a} . inet_proto . inet_service : verdict\n  }`,
    `  set hairpin {\n    type ${a} . ${a}\n  }`,
    `  set nodeport-ips {\n    type ${a}\n  }`,
    // One element: the number of the last full sync this process wrote. The periodic consistency
    // check reads only this set (cheap at any size: listing a chain or the table costs seconds and
    // hundreds of MB at 10 000 Services); a missing table or another number means someone else
    // removed or rewrote the table.
    `  set generation {\n    type mark\n  }`,
    `  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n  }`,
    `  chain nat-output {\n    type nat hook output priority -100; policy accept;\n  }`,
    `  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n  }`,
    `  chain filter-prerouting {\n    type filter hook prerouting priority -110; policy accept;\n  }`,
    `  chain filter-input {\n    type filter hook input priority -110; policy accept;\n  }`,
    `  chain filter-forward {\n    type filter hook forward priority -110; policy accept;\n  }`,
    `  chain filter-output {\n    type filter hook output priority -110; policy accept;\n  }`,
    `  chain services {\n  }`,
    `  chain endpoints-check {\n  }`,
    `  chain reject-chain {\n  }`,
    `  chain firewall-check {\n  }`,
    `}`,
  ].join('\n') + '\n' + baseRules(f, np, mark, nodePortAddrs);
}

function baseRules(f: NftFamily, np: string, mark: string, nodePortAddrs: string[] | undefined): string {
  const t = `${f} ${TABLE}`;
  const rules: [string, string][] = [
    ['nat-prerouting', 'jump services'],
    ['nat-output', 'jump services'],
    ['nat-postrouting', `ct status dnat ${f} saddr . ${f} daddr @hairpin ${`meta mark set meta mark | ${mark}`}`],
    ['nat-postrouting', `meta mark & ${mark} == 0x00000000 return`],
    ['nat-postrouting', `meta mark set meta mark & 0x${(~parseInt(mark, 16) >>> 0).toString(16).padStart(8, '0')} masquerade fully-random`],
    ['filter-input', 'ct state new jump endpoints-check'],
    ['filter-forward', 'ct state new jump endpoints-check'],
    ['filter-output', 'ct state new jump endpoints-check'],
    // loadBalancerSourceRanges, checked before DNAT rewrites the LoadBalancer IP.
    ['filter-prerouting', 'ct state new jump firewall-check'],
    ['filter-output', 'ct state new jump firewall-check'],
    ['firewall-check', `${f} daddr . meta l4proto . th dport vmap @firewall-ips`],
    ['services', `${f} daddr . meta l4proto . th dport vmap @service-ips`],
    ['services', `${np} meta l4proto . th dport vmap @service-nodeports`],
    ['endpoints-check', `${f} daddr . meta l4proto . th dport vmap @no-endpoint-services`],
    ['endpoints-check', `${np} meta l4proto . th dport vmap @no-endpoint-nodeports`],
    // TCP gets a reset: the ICMP port-unreachable of a plain `reject` is rate-limited per client
    // host (net.ipv4.icmp_ratelimit), so forwarded clients that retry saw timeouts, not refusals.
    ['reject-chain', 'meta l4proto tcp reject with tcp reset'],
    ['reject-chain', 'reject'],
  ];
  const lines = rules.map(([c, r]) => `add rule ${t} ${c} ${r}`);
  if (nodePortAddrs && nodePortAddrs.length) lines.push(`add element ${t} nodeport-ips { ${nodePortAddrs.join(', ')} }`);
  return lines.join('\n') + '\n';
}

/** The node addresses inside `nodePortAddresses` (all node addresses when it is empty). */
export function nodePortIPs(ctx: RenderContext): string[] {
  const cidrs = ctx.config.nodePortAddresses;
  if (!cidrs.length) return ctx.nodeIPs;
  return ctx.nodeIPs.filter((ip) => cidrs.some((c) => cidrContainsSafe(c, ip)));
}

import { cidrContains } from '../ipnet';
function cidrContainsSafe(c: string, ip: string): boolean {
  try {
    return cidrContains(c, ip);
  } catch {
    return false;
  }
}

/** Kinds of frontend, each with its own masquerade rule. */
type Kind = 'cluster' | 'external' | 'local';

function masqRules(f: NftFamily, kind: Kind, ctx: RenderContext): string[] {
  const { config } = ctx;
  if (kind === 'external') return [markMasq(config)];
  if (kind === 'local') return [`fib saddr type local ${markMasq(config)}`];
  if (config.masqueradeAll) return [markMasq(config)];
  const cidrs = ofFamily(config.clusterCIDR, f === 'ip' ? 4 : 6);
  if (!cidrs.length) return [];
  return [`${f} saddr != { ${cidrs.join(', ')} } ${markMasq(config)}`];
}

/** Where the cluster endpoints of an externalTrafficPolicy: Local frontend sit in its endpoint map. */
export const SHORT_CIRCUIT_OFFSET = 65536;

/**
 * The shared chain that picks one of `count` endpoints. For externalTrafficPolicy: Local frontends
 * (`local`), `cluster` > 0 adds kube-proxy's short-circuit: traffic from pods (clusterCIDR) and
 * from the node itself is cluster traffic and may reach any of the Service's `cluster` endpoints,
 * stored at SHORT_CIRCUIT_OFFSET in the same map; `count` 0 drops what is left.
 */
function pickChain(f: NftFamily, kind: Kind, nodePort: boolean, proto: NftProto, count: number, ctx: RenderContext, cluster = 0): NftChain {
  const name = `${nodePort ? 'nodeport-' : ''}${kind}-${proto}-${count}${cluster ? `-${cluster}` : ''}`;
  const key = nodePort ? 'meta l4proto . th dport' : `${f} daddr . meta l4proto . th dport`;
  const map = endpointMap(nodePort, proto);
  const pick = (n: number, offset = 0) => `meta l4proto ${proto} dnat ${f} to ${key} . numgen random mod ${n}${offset ? ` offset ${offset}` : ''} map @${map}`;
  const rules: string[] = [];
  if (cluster > 0) {
    const cidrs = ofFamily(ctx.config.clusterCIDR, f === 'ip' ? 4 : 6);
    const podMasq = ctx.config.masqueradeAll ? ` ${markMasq(ctx.config)}` : '';
    if (cidrs.length) rules.push(`${f} saddr { ${cidrs.join(', ')} }${podMasq} ${pick(cluster, SHORT_CIRCUIT_OFFSET)}`);
    rules.push(`fib saddr type local ${markMasq(ctx.config)}`, `fib saddr type local ${pick(cluster, SHORT_CIRCUIT_OFFSET)}`);
  } else rules.push(...masqRules(f, kind, ctx));
  rules.push(count > 0 ? pick(count) : 'drop');
  return { name: `${f} ${name}`, rules };
}

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function renderFragment(ports: ServicePortState[], ctx: RenderContext): NftFragment {
  const frag: NftFragment = { elements: [], chains: [], sharedChains: [], dynamicMaps: [] };
  for (const sp of ports) renderPort(sp, ctx, frag);
  return frag;
}

function renderPort(sp: ServicePortState, ctx: RenderContext, frag: NftFragment): void {
  const f: NftFamily = sp.family === 4 ? 'ip' : 'ip6';
  const proto = lower(sp.protocol) as NftProto;
  const el = (map: string, key: string, value = '') => frag.elements.push({ map: `${f} ${map}`, key, value });
  const h = shortHash(sp.id);
  const affinity = sp.affinityTimeoutSeconds;
  const affinityMap = `affinity-${h}`;
  // IPv6 records the endpoint in two maps (client → address, client → port): nft 1.0.6 (Debian 12)
  // aborts with an assertion (netlink_linearize.c, `dreg < ctx->reg_low`) on an `update` whose
  // value is the concatenation `ip6 address . port`, which failed the whole sync transaction.
  const affinityPortMap = `affinity-${h}-port`;
  if (affinity !== undefined) {
    const dyn = (name: string, value: string) =>
      frag.dynamicMaps.push({ name: `${f} ${name}`, decl: `type ${addrType(f)} : ${value}; flags dynamic,timeout; timeout ${affinity}s;` });
    if (f === 'ip') dyn(affinityMap, `${addrType(f)} . inet_service`);
    else {
      dyn(affinityMap, addrType(f));
      dyn(affinityPortMap, 'inet_service');
    }
  }
  const record = (ep: EndpointAddress): string[] =>
    f === 'ip'
      ? [`update @${affinityMap} { ${f} saddr timeout ${affinity}s : ${ep.ip} . ${ep.port} }`]
      : [`update @${affinityMap} { ${f} saddr timeout ${affinity}s : ${ep.ip} }`, `update @${affinityPortMap} { ${f} saddr timeout ${affinity}s : ${ep.port} }`];
  const recalled = f === 'ip' ? `${f} saddr map @${affinityMap}` : `${f} saddr map @${affinityMap} : ${f} saddr map @${affinityPortMap}`;
  const allEndpoints = uniqueEndpoints([...sp.internal.endpoints, ...sp.external.endpoints]);
  const epChain = (ep: EndpointAddress) => `${f} affinity-${h}-ep-${allEndpoints.indexOf(allEndpoints.find((e) => e.ip === ep.ip && e.port === ep.port)!)}`;
  if (affinity !== undefined) {
    for (const ep of allEndpoints) {
      frag.chains.push({
        name: epChain(ep),
        // The dnat rule stays last: the backend compares it to see whether an endpoint went away.
        rules: [...record(ep), `meta l4proto { tcp, udp, sctp } dnat ${f} to ${hostAddr(f, ep.ip, ep.port)}`],
      });
    }
  }

  // An externalTrafficPolicy: Local frontend still serves pods and the node from every cluster
  // endpoint (kube-proxy's short-circuit), unless internalTrafficPolicy is Local too.
  const shortCircuit = sp.externalPolicyLocal && !sp.internalPolicyLocal && sp.internal.verdict === 'forward' ? sp.internal.endpoints : [];

  /** Returns the verdict for a frontend, adding the chains it needs. */
  const target = (kind: Kind, nodePort: boolean, eps: EndpointAddress[]): string => {
    if (affinity !== undefined) {
      const name = `${f} affinity-${h}-${kind}`;
      if (!frag.chains.some((c) => c.name === name)) {
        const vmap = eps.map((ep, i) => `${i} : goto ${epChain(ep).slice(f.length + 1)}`).join(', ');
        const cidrs = ofFamily(ctx.config.clusterCIDR, f === 'ip' ? 4 : 6);
        const toCluster = `goto affinity-${h}-cluster`;
        const short =
          kind === 'local' && shortCircuit.length
            ? [...(cidrs.length ? [`${f} saddr { ${cidrs.join(', ')} } ${toCluster}`] : []), `fib saddr type local ${markMasq(ctx.config)}`, `fib saddr type local ${toCluster}`]
            : masqRules(f, kind, ctx);
        frag.chains.push({
          name,
          rules: [
            ...short,
            ...(eps.length
              ? [`meta l4proto { tcp, udp, sctp } dnat ${f} to ${recalled}`, `numgen random mod ${eps.length} vmap { ${vmap} }`]
              : ['drop']),
          ],
        });
      }
      return `goto ${name.slice(f.length + 1)}`;
    }
    const chain = pickChain(f, kind, nodePort, proto, eps.length, ctx, kind === 'local' ? shortCircuit.length : 0);
    if (!frag.sharedChains.some((c) => c.name === chain.name)) frag.sharedChains.push(chain);
    return `goto ${chain.name.slice(f.length + 1)}`;
  };
  const noEndpoints = (verdict: 'reject' | 'drop') => (verdict === 'reject' ? 'goto reject-chain' : 'drop');

  // ClusterIP.
  const cipKey = `${sp.clusterIP} . ${proto} . ${sp.port}`;
  if (sp.internal.verdict === 'forward') {
    el('service-ips', cipKey, target('cluster', false, sp.internal.endpoints));
    if (affinity === undefined) sp.internal.endpoints.forEach((ep, i) => el(endpointMap(false, proto), `${cipKey} . ${i}`, `${ep.ip} . ${ep.port}`));
  } else el('no-endpoint-services', cipKey, noEndpoints(sp.internal.verdict));

  // externalIPs, LoadBalancer ingress IPs and the NodePort share one way of handling traffic.
  const extKind: Kind = sp.externalPolicyLocal ? 'local' : 'external';
  const external = (map: string, epMap: string, noEpMap: string, key: string, nodePort: boolean) => {
    const eps = sp.external.verdict === 'forward' ? sp.external.endpoints : [];
    if (eps.length === 0 && shortCircuit.length === 0) {
      el(noEpMap, key, noEndpoints(sp.external.verdict as 'reject' | 'drop'));
      return;
    }
    el(map, key, target(extKind, nodePort, eps));
    if (affinity !== undefined) return;
    eps.forEach((ep, i) => el(epMap, `${key} . ${i}`, `${ep.ip} . ${ep.port}`));
    shortCircuit.forEach((ep, i) => el(epMap, `${key} . ${SHORT_CIRCUIT_OFFSET + i}`, `${ep.ip} . ${ep.port}`));
  };
  for (const ip of uniq([...sp.externalIPs, ...sp.loadBalancerIPs])) {
    external('service-ips', endpointMap(false, proto), 'no-endpoint-services', `${ip} . ${proto} . ${sp.port}`, false);
  }
  if (sp.nodePort !== undefined) external('service-nodeports', endpointMap(true, proto), 'no-endpoint-nodeports', `${proto} . ${sp.nodePort}`, true);

  // loadBalancerSourceRanges: a firewall chain of the Service's own, entered for its LoadBalancer IPs.
  const ranges = sp.loadBalancerSourceRanges ?? [];
  if (ranges.length && sp.loadBalancerIPs.length) {
    const name = `firewall-${h}`;
    // Traffic a cloud load balancer hairpins back with its own IP as source stays allowed when the
    // node itself is inside the ranges (as kube-proxy does).
    const nodeInside = ctx.nodeIPs.some((ip) => ranges.some((c) => cidrContainsSafe(c, ip)));
    const allowed = uniq([...ranges, ...(nodeInside ? sp.loadBalancerIPs : [])]);
    frag.chains.push({ name: `${f} ${name}`, rules: [`${f} saddr != { ${allowed.join(', ')} } drop`] });
    for (const ip of uniq(sp.loadBalancerIPs)) el('firewall-ips', `${ip} . ${proto} . ${sp.port}`, `goto ${name}`);
  }

  for (const ep of allEndpoints) el('hairpin', `${ep.ip} . ${ep.ip}`);
}

function uniq<T>(list: T[]): T[] {
  return [...new Set(list)];
}

function uniqueEndpoints(eps: EndpointAddress[]): EndpointAddress[] {
  const seen = new Map<string, EndpointAddress>();
  for (const ep of eps) seen.set(`${ep.ip}:${ep.port}`, ep);
  return [...seen.values()];
}

/** Splits `family name` into its parts. */
export function splitName(qualified: string): [NftFamily, string] {
  const i = qualified.indexOf(' ');
  return [qualified.slice(0, i) as NftFamily, qualified.slice(i + 1)];
}
