/**
 * Renders the desired state in kube-proxy's iptables chain structure. Per Service port:
 * dispatch rules in the shared chains (nat KUBE-SERVICES / KUBE-NODEPORTS; filter KUBE-SERVICES,
 * KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL, KUBE-NODEPORTS for REJECT/DROP and health checks)
 * and nat chains of its own: KUBE-SVC (Cluster policy endpoints), KUBE-SVL (Local policy
 * endpoints), KUBE-EXT (external traffic), KUBE-FW (loadBalancerSourceRanges), KUBE-SEP (one per
 * endpoint, doing the DNAT). Rules are plain restore-format specs, without the leading `-A CHAIN`.
 */
import type { ProxyConfig } from '../config';
import type { ServicePortState } from '../desiredstate';
import type { EndpointAddress } from '../endpoints';
import { cidrContains, ofFamily } from '../ipnet';
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  endpointChain,
  endpointString,
  servicePortChains,
  servicePortName,
} from './chains';

export type Family = 4 | 6;
export type IptTable = 'filter' | 'nat';

export interface RenderContext {
  config: ProxyConfig;
  nodeIPs: string[];
}

/** One rule in a chain shared by every Service. */
export interface DispatchRule {
  table: IptTable;
  chain: string;
  rule: string;
}

/** Everything one Service (all its ports, one family) contributes. */
export interface ServiceRules {
  /** nat chains only this Service uses, name → rules, in the order they must be written. */
  chains: Map<string, string[]>;
  /** Rules in shared chains; their order among each other does not matter. */
  dispatch: DispatchRule[];
}

/** A jump from a built-in chain into one of ours, inserted once when missing. */
export interface JumpRule {
  table: IptTable;
  from: string;
  to: string;
  rule: string;
}

/** Comments carry object names; anything a quoted restore argument cannot hold is replaced, and the length capped as iptables requires. */
const comment = (text: string) => `-m comment --comment "${text.replace(/[^\w./:;, -]/g, '_').slice(0, 255)}"`;

export function markValue(config: ProxyConfig): string {
  return '0x' + (1 << config.masqueradeBit >>> 0).toString(16);
}

/** The jump rules kube-proxy keeps in the built-in chains, in the order they should end up. */
export function jumpRules(): JumpRule[] {
  const neu = '-m conntrack --ctstate NEW ';
  const j = (table: IptTable, from: string, to: string, text: string, extra = ''): JumpRule => ({
    table,
    from,
    to,
    rule: `${extra}${comment(text)} -j ${to}`,
  });
  return [
    j('filter', 'INPUT', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', neu),
    j('filter', 'FORWARD', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', neu),
    j('filter', 'INPUT', KUBE_NODEPORTS, 'kubernetes health check service ports'),
    j('filter', 'FORWARD', KUBE_SERVICES, 'kubernetes service portals', neu),
    j('filter', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals', neu),
    j('filter', 'FORWARD', KUBE_FORWARD, 'kubernetes forwarding rules'),
    j('filter', 'INPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', neu),
    j('filter', 'OUTPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', neu),
    j('filter', 'FORWARD', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', neu),
    j('nat', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals'),
    j('nat', 'PREROUTING', KUBE_SERVICES, 'kubernetes service portals'),
    j('nat', 'POSTROUTING', KUBE_POSTROUTING, 'kubernetes postrouting rules'),
  ];
}

/** Node addresses that accept NodePort traffic when `nodePortAddresses` is set. */
function nodePortIPs(ctx: RenderContext, family: Family): string[] {
  const cidrs = ofFamily(ctx.config.nodePortAddresses, family);
  return ofFamily(ctx.nodeIPs, family).filter((ip) => cidrs.some((c) => cidrContains(c, ip)));
}

/** Static rules of the chains every sync owns: filter and nat, chain → rules. */
export function renderBase(family: Family, ctx: RenderContext): { filter: Map<string, string[]>; nat: Map<string, string[]> } {
  const mark = markValue(ctx.config);
  const filter = new Map<string, string[]>([
    [KUBE_SERVICES, []],
    [KUBE_EXTERNAL_SERVICES, localhostNodePorts(family, ctx)
      // route_localnet lets packets to 127.0.0.0/8 arrive from outside: only the node may use it
      // (keelson is the kubelet too, so this is the rule upstream's kubelet adds to KUBE-FIREWALL).
      ? [`${comment('block incoming localnet connections')} ! -s 127.0.0.0/8 -d 127.0.0.0/8 -j DROP`]
      : []],
    [KUBE_FORWARD, [
      '-m conntrack --ctstate INVALID -j DROP',
      `${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`,
      `${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    ]],
    [KUBE_NODEPORTS, []],
    [KUBE_PROXY_FIREWALL, []],
  ]);
  const nat = new Map<string, string[]>([
    [KUBE_SERVICES, []],
    [KUBE_NODEPORTS, []],
    [KUBE_POSTROUTING, [
      `-m mark ! --mark ${mark}/${mark} -j RETURN`,
      `-j MARK --xor-mark ${mark}`,
      `${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully`,
    ]],
    [KUBE_MARK_MASQ, [`-j MARK --or-mark ${mark}`]],
  ]);
  return { filter, nat };
}

/**
 * `iptables.localhostNodePorts` (kube-proxy's default true): NodePorts also answer on 127.0.0.1,
 * for the node's own processes, IPv4 only (there is no route_localnet for IPv6), when every local
 * address takes NodePorts or `nodePortAddresses` includes 127.0.0.1. The backend then sets
 * net.ipv4.conf.all.route_localnet=1 so that the DNATed packets may leave with a loopback source
 * (they are masqueraded on the way out, as every external NodePort connection from the node is).
 */
export function localhostNodePorts(family: Family, ctx: RenderContext): boolean {
  if (family !== 4 || !ctx.config.iptables.localhostNodePorts) return false;
  const cidrs = ofFamily(ctx.config.nodePortAddresses, 4);
  return ctx.config.nodePortAddresses.length === 0 || cidrs.some((c) => cidrContains(c, '127.0.0.1'));
}

/** The last rules of nat KUBE-SERVICES: hand NodePort traffic to KUBE-NODEPORTS. */
export function nodePortsTail(family: Family, ctx: RenderContext): string[] {
  const text = comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
  const rules: string[] = [];
  if (ctx.config.nodePortAddresses.length === 0) {
    const notLoopback = family === 4 ? '! -d 127.0.0.0/8' : '! -d ::1/128';
    rules.push(`${text} -m addrtype --dst-type LOCAL ${notLoopback} -j ${KUBE_NODEPORTS}`);
  } else rules.push(...nodePortIPs(ctx, family).map((ip) => `${text} -d ${ip} -j ${KUBE_NODEPORTS}`));
  // Only connections the node itself makes: in PREROUTING a loopback destination is a martian.
  if (localhostNodePorts(family, ctx)) rules.push(`${text} -d 127.0.0.0/8 -m addrtype --src-type LOCAL -j ${KUBE_NODEPORTS}`);
  return rules;
}

/** Probability for the i-th of n remaining endpoints, formatted as kube-proxy does (1/n, 10 decimals). */
export function probability(n: number): string {
  return (1 / n).toFixed(10);
}

/** Renders every port of one Service in one family. */
export function renderService(ports: ServicePortState[], family: Family, ctx: RenderContext): ServiceRules {
  const out: ServiceRules = { chains: new Map(), dispatch: [] };
  for (const sp of ports) if (sp.family === family) renderPort(sp, family, ctx, out);
  // The same health check port is shared by a Service's ports: one rule.
  const seen = new Set<string>();
  out.dispatch = out.dispatch.filter((d) => {
    const k = `${d.table} ${d.chain} ${d.rule}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return out;
}

function renderPort(sp: ServicePortState, family: Family, ctx: RenderContext, out: ServiceRules): void {
  const { config } = ctx;
  const proto = sp.protocol.toLowerCase();
  const spn = servicePortName(sp);
  const names = servicePortChains(spn, proto);
  const match = `-m ${proto} -p ${proto}`;
  const localCIDR = ofFamily(config.clusterCIDR, family)[0];
  const sourceRanges = ofFamily(sp.loadBalancerSourceRanges ?? [], family);
  const externallyAccessible = sp.nodePort !== undefined || sp.externalIPs.length > 0 || sp.loadBalancerIPs.length > 0;
  const hasEndpoints = sp.internal.verdict !== 'reject';
  const hasInternal = sp.internal.verdict === 'forward';
  const hasExternal = sp.external.verdict === 'forward';

  // Endpoints per traffic policy. The shared desired state gives the endpoints per kind of
  // traffic; when both policies are Local the Cluster set (only used to short-circuit pod and
  // node traffic to external addresses) is approximated by the local one.
  const localEps = sp.externalPolicyLocal ? sp.external.endpoints : sp.internalPolicyLocal ? sp.internal.endpoints : [];
  const clusterEps = !sp.internalPolicyLocal ? sp.internal.endpoints : !sp.externalPolicyLocal ? sp.external.endpoints : sp.internal.endpoints;
  const usesCluster = clusterEps.length > 0 && (!sp.internalPolicyLocal || externallyAccessible);
  const usesLocal = localEps.length > 0 && (sp.internalPolicyLocal || sp.externalPolicyLocal);
  const internalChain = sp.internalPolicyLocal ? names.svl : names.svc;
  const externalPolicyChain = sp.externalPolicyLocal ? names.svl : names.svc;
  const usesExt = hasEndpoints && externallyAccessible;
  const usesFW = hasEndpoints && sp.loadBalancerIPs.length > 0 && sourceRanges.length > 0;
  const lbTarget = usesFW ? names.fw : names.ext;

  const chain = (name: string) => {
    let rules = out.chains.get(name);
    if (!rules) out.chains.set(name, (rules = []));
    return rules;
  };
  const dispatch = (table: 'filter' | 'nat', c: string, rule: string) => out.dispatch.push({ table, chain: c, rule });
  const noEndpoints = (verdict: 'reject' | 'drop') =>
    verdict === 'reject' ? { target: 'REJECT', text: `${spn} has no endpoints` } : { target: 'DROP', text: `${spn} has no local endpoints` };

  // ClusterIP.
  const cip = `${match} -d ${sp.clusterIP} --dport ${sp.port}`;
  if (hasInternal) dispatch('nat', KUBE_SERVICES, `${comment(`${spn} cluster IP`)} ${cip} -j ${internalChain}`);
  else {
    const v = noEndpoints(sp.internal.verdict as 'reject' | 'drop');
    dispatch('filter', KUBE_SERVICES, `${comment(v.text)} ${cip} -j ${v.target}`);
  }
  const extVerdict = hasExternal ? undefined : noEndpoints(sp.external.verdict as 'reject' | 'drop');

  for (const ip of sp.externalIPs) {
    const dst = `${match} -d ${ip} --dport ${sp.port}`;
    if (hasEndpoints) dispatch('nat', KUBE_SERVICES, `${comment(`${spn} external IP`)} ${dst} -j ${names.ext}`);
    if (extVerdict) dispatch('filter', KUBE_EXTERNAL_SERVICES, `${comment(extVerdict.text)} ${dst} -j ${extVerdict.target}`);
  }
  for (const ip of sp.loadBalancerIPs) {
    const dst = `${match} -d ${ip} --dport ${sp.port}`;
    if (hasEndpoints) dispatch('nat', KUBE_SERVICES, `${comment(`${spn} loadbalancer IP`)} ${dst} -j ${lbTarget}`);
    if (usesFW) dispatch('filter', KUBE_PROXY_FIREWALL, `${comment(`${spn} traffic not accepted by ${names.fw}`)} ${dst} -j DROP`);
    if (extVerdict) dispatch('filter', KUBE_EXTERNAL_SERVICES, `${comment(extVerdict.text)} ${dst} -j ${extVerdict.target}`);
  }
  if (sp.nodePort !== undefined) {
    if (hasEndpoints) dispatch('nat', KUBE_NODEPORTS, `${comment(spn)} ${match} --dport ${sp.nodePort} -j ${names.ext}`);
    if (extVerdict) {
      dispatch('filter', KUBE_EXTERNAL_SERVICES, `${comment(extVerdict.text)} -m addrtype --dst-type LOCAL ${match} --dport ${sp.nodePort} -j ${extVerdict.target}`);
    }
  }
  if (sp.healthCheckNodePort !== undefined) {
    dispatch('filter', KUBE_NODEPORTS, `${comment(`${spn} health check node port`)} -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
  }

  // Internal traffic: masquerade what does not come from a pod (or everything with masqueradeAll).
  if (hasInternal) {
    if (config.masqueradeAll) chain(internalChain).push(`${comment(`${spn} cluster IP`)} ${cip} -j ${KUBE_MARK_MASQ}`);
    else if (localCIDR) chain(internalChain).push(`${comment(`${spn} cluster IP`)} ${cip} ! -s ${localCIDR} -j ${KUBE_MARK_MASQ}`);
  }

  // External traffic.
  if (usesExt) {
    const ext = chain(names.ext);
    if (!sp.externalPolicyLocal) {
      ext.push(`${comment(`masquerade traffic for ${spn} external destinations`)} -j ${KUBE_MARK_MASQ}`);
    } else {
      // Pods and the node itself reach external addresses as if through an outside load balancer:
      // neither is subject to the Local policy.
      if (localCIDR && usesCluster) ext.push(`${comment(`pod traffic for ${spn} external destinations`)} -s ${localCIDR} -j ${names.svc}`);
      ext.push(`${comment(`masquerade LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`);
      if (usesCluster) ext.push(`${comment(`route LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j ${names.svc}`);
    }
    if (hasExternal) ext.push(`-j ${externalPolicyChain}`);
  }

  if (usesFW) {
    const fw = chain(names.fw);
    const text = comment(`${spn} loadbalancer IP`);
    let allowFromNode = false;
    for (const cidr of sourceRanges) {
      fw.push(`${text} -s ${cidr} -j ${names.ext}`);
      if (ofFamily(ctx.nodeIPs, family).some((ip) => cidrContains(cidr, ip))) allowFromNode = true;
    }
    // A VIP that is also a local address loops back with itself as source: allow it when the node may connect.
    if (allowFromNode) for (const ip of sp.loadBalancerIPs) fw.push(`${text} -s ${ip} -j ${names.ext}`);
    fw.push(comment(`other traffic to ${spn} will be dropped by ${KUBE_PROXY_FIREWALL}`));
  }

  if (usesCluster) endpointRules(chain(names.svc), spn, proto, sp.affinityTimeoutSeconds, clusterEps);
  if (usesLocal) endpointRules(chain(names.svl), spn, proto, sp.affinityTimeoutSeconds, localEps);

  const reachable = new Map<string, EndpointAddress>();
  for (const ep of [...(usesCluster ? clusterEps : []), ...(usesLocal ? localEps : [])]) reachable.set(endpointString(ep), ep);
  for (const ep of reachable.values()) {
    const sep = endpointChain(spn, proto, ep);
    const rules = chain(sep);
    rules.push(`-s ${ep.ip} -j ${KUBE_MARK_MASQ}`);
    const recent = sp.affinityTimeoutSeconds !== undefined ? `-m recent --name ${sep} --set ` : '';
    rules.push(`${recent}${match} -j DNAT --to-destination ${endpointString(ep)}`);
  }
}

/** Affinity checks first, then the random spread: 1/n, 1/(n-1), …, and a last unconditional rule. */
function endpointRules(rules: string[], spn: string, proto: string, affinity: number | undefined, eps: EndpointAddress[]): void {
  const chains = eps.map((ep) => endpointChain(spn, proto, ep));
  if (affinity !== undefined) {
    for (const sep of chains) rules.push(`-m recent --name ${sep} --rcheck --seconds ${affinity} --reap -j ${sep}`);
  }
  chains.forEach((sep, i) => {
    const left = chains.length - i;
    rules.push(left > 1 ? `-m statistic --mode random --probability ${probability(left)} -j ${sep}` : `-j ${sep}`);
  });
}
