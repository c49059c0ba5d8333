/**
 * The few iptables rules ipvs mode keeps (kube-proxy's layout): IPVS does the load balancing, and
 * iptables only marks packets for masquerading by matching the ipsets, masquerades marked and
 * hairpin packets, filters LoadBalancer source ranges, and rejects new connections to ports on
 * service addresses that no Service uses (those addresses are local, on kube-ipvs0).
 *
 * Every chain is rewritten whole in one `iptables-restore --noflush` per family; the jumps from
 * the built-in chains carry a `keelson ipvs:` comment, which is how cleanup recognises them.
 */
import type { ProxyConfig } from '../config';
import { ofFamily } from '../ipnet';
import type { IPFamily } from '../serviceport';
import { setComment, setName, type SetBase } from './ipset';
import type { IpvsDesired } from './desired';

export const NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ'] as const;
export const FILTER_CHAINS = ['KUBE-FORWARD', 'KUBE-NODE-PORT', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER'] as const;
/** Chains the iptables mode uses too: cleanup removes them only where ipvs mode left its mark. */
export const SHARED_CHAINS = new Set(['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL']);

export interface JumpRule {
  table: 'nat' | 'filter';
  from: string;
  to: string;
  comment: string;
}

export const JUMPS: readonly JumpRule[] = [
  { table: 'nat', from: 'OUTPUT', to: 'KUBE-SERVICES', comment: 'keelson ipvs: service portals' },
  { table: 'nat', from: 'PREROUTING', to: 'KUBE-SERVICES', comment: 'keelson ipvs: service portals' },
  { table: 'nat', from: 'POSTROUTING', to: 'KUBE-POSTROUTING', comment: 'keelson ipvs: postrouting rules' },
  { table: 'filter', from: 'FORWARD', to: 'KUBE-FORWARD', comment: 'keelson ipvs: forwarding rules' },
  { table: 'filter', from: 'INPUT', to: 'KUBE-NODE-PORT', comment: 'keelson ipvs: health check rules' },
  { table: 'filter', from: 'INPUT', to: 'KUBE-PROXY-FIREWALL', comment: 'keelson ipvs: firewall rules' },
  { table: 'filter', from: 'FORWARD', to: 'KUBE-PROXY-FIREWALL', comment: 'keelson ipvs: firewall rules' },
  { table: 'filter', from: 'INPUT', to: 'KUBE-IPVS-FILTER', comment: 'keelson ipvs: access filter' },
  { table: 'filter', from: 'OUTPUT', to: 'KUBE-IPVS-OUT-FILTER', comment: 'keelson ipvs: access filter' },
];

export const jumpId = (j: JumpRule) => `${j.table}/${j.from}/${j.to}`;
export const jumpArgs = (j: JumpRule) => `${j.from} -m comment --comment "${j.comment}" -j ${j.to}`;

export function markValue(config: ProxyConfig): string {
  return '0x' + (1 << config.masqueradeBit).toString(16).padStart(8, '0');
}

/**
 * The iptables-restore input for one family. `missingJumps` are inserted at the top of their
 * built-in chains (kube-proxy prepends them too).
 */
export function renderIptables(desired: IpvsDesired, family: IPFamily, config: ProxyConfig, missingJumps: JumpRule[] = []): string {
  const set = (b: SetBase) => setName(b, family);
  const nonEmpty = (b: SetBase) => (desired.sets.get(set(b))?.size ?? 0) > 0;
  const match = (b: SetBase, dirs: string) => `-m comment --comment "${setComment(b)}" -m set --match-set ${set(b)} ${dirs}`;
  const mark = markValue(config);
  const nat: string[] = ['*nat', ...NAT_CHAINS.map((c) => `:${c} - [0:0]`)];
  const filter: string[] = ['*filter', ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`)];
  for (const j of missingJumps) (j.table === 'nat' ? nat : filter).push(`-I ${jumpArgs(j)}`);

  nat.push(`-A KUBE-SERVICES -s ${family === 4 ? '127.0.0.0/8' : '::1/128'} -j RETURN`);
  if (nonEmpty('LOOP-BACK')) nat.push(`-A KUBE-POSTROUTING ${match('LOOP-BACK', 'dst,dst,src')} -j MASQUERADE`);
  if (nonEmpty('LOAD-BALANCER')) nat.push(`-A KUBE-SERVICES ${match('LOAD-BALANCER', 'dst,dst')} -j KUBE-LOAD-BALANCER`);
  if (nonEmpty('LOAD-BALANCER-LOCAL')) nat.push(`-A KUBE-LOAD-BALANCER ${match('LOAD-BALANCER-LOCAL', 'dst,dst')} -j RETURN`);
  // The ETP=Local set must come before the general one: RETURN keeps the client address.
  const nodePortPairs: [SetBase, SetBase, string, string][] = [
    ['NODE-PORT-LOCAL-TCP', 'NODE-PORT-TCP', 'tcp', 'dst'],
    ['NODE-PORT-LOCAL-UDP', 'NODE-PORT-UDP', 'udp', 'dst'],
    ['NODE-PORT-LOCAL-SCTP-HASH', 'NODE-PORT-SCTP-HASH', 'sctp', 'dst,dst'],
  ];
  for (const [local, all, p, dirs] of nodePortPairs) {
    if (nonEmpty(local)) nat.push(`-A KUBE-NODE-PORT -p ${p} ${match(local, dirs)} -j RETURN`);
    if (nonEmpty(all)) nat.push(`-A KUBE-NODE-PORT -p ${p} ${match(all, dirs)} -j KUBE-MARK-MASQ`);
  }
  if (nonEmpty('CLUSTER-IP')) {
    const cidrs = ofFamily(config.clusterCIDR, family);
    // kube-proxy's local-traffic detector takes one CIDR per family; the first one is used.
    if (config.masqueradeAll) nat.push(`-A KUBE-SERVICES ${match('CLUSTER-IP', 'dst,dst')} -j KUBE-MARK-MASQ`);
    else if (cidrs.length) nat.push(`-A KUBE-SERVICES ${match('CLUSTER-IP', 'dst,dst')} ! -s ${cidrs[0]} -j KUBE-MARK-MASQ`);
    // Without a pod CIDR, masquerade node traffic that picked a service address as its source.
    else nat.push(`-A KUBE-SERVICES ${match('CLUSTER-IP', 'src,dst')} -j KUBE-MARK-MASQ`);
  }
  const externalAccept = (b: SetBase) => {
    nat.push(`-A KUBE-SERVICES ${match(b, 'dst,dst')} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`);
    nat.push(`-A KUBE-SERVICES ${match(b, 'dst,dst')} -m addrtype --dst-type LOCAL -j ACCEPT`);
  };
  if (nonEmpty('EXTERNAL-IP')) {
    nat.push(`-A KUBE-SERVICES ${match('EXTERNAL-IP', 'dst,dst')} -j KUBE-MARK-MASQ`);
    externalAccept('EXTERNAL-IP');
  }
  if (nonEmpty('EXTERNAL-IP-LOCAL')) externalAccept('EXTERNAL-IP-LOCAL');
  nat.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT');
  nat.push('-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ');
  // Accept traffic to virtual servers so that no later rule of someone else's rewrites it.
  if (nonEmpty('CLUSTER-IP')) nat.push(`-A KUBE-SERVICES -m set --match-set ${set('CLUSTER-IP')} dst,dst -j ACCEPT`);
  if (nonEmpty('LOAD-BALANCER')) nat.push(`-A KUBE-SERVICES -m set --match-set ${set('LOAD-BALANCER')} dst,dst -j ACCEPT`);
  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push('-A KUBE-POSTROUTING -m comment --comment "keelson ipvs: service traffic requiring SNAT" -j MASQUERADE --random-fully');
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  nat.push('COMMIT');

  if (nonEmpty('LOAD-BALANCER-FW')) filter.push(`-A KUBE-PROXY-FIREWALL ${match('LOAD-BALANCER-FW', 'dst,dst')} -j KUBE-SOURCE-RANGES-FIREWALL`);
  if (nonEmpty('LOAD-BALANCER-SOURCE-CIDR')) filter.push(`-A KUBE-SOURCE-RANGES-FIREWALL ${match('LOAD-BALANCER-SOURCE-CIDR', 'dst,dst,src')} -j RETURN`);
  if (nonEmpty('LOAD-BALANCER-SOURCE-IP')) filter.push(`-A KUBE-SOURCE-RANGES-FIREWALL ${match('LOAD-BALANCER-SOURCE-IP', 'dst,dst,src')} -j RETURN`);
  filter.push('-A KUBE-SOURCE-RANGES-FIREWALL -j DROP');
  for (const n of desired.noNodeAccess.filter((x) => x.family === family)) {
    // From the node, IPVS picks the LB address itself as the source.
    filter.push(`-A KUBE-IPVS-OUT-FILTER -s ${n.ip} -m ipvs --vaddr ${n.ip} --vproto ${n.protocol.toLowerCase()} --vport ${n.port} -j DROP`);
  }
  filter.push(`-A KUBE-FORWARD -m comment --comment "keelson ipvs: forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.push('-A KUBE-FORWARD -m comment --comment "keelson ipvs: forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  filter.push(`-A KUBE-NODE-PORT ${match('HEALTH-CHECK-NODE-PORT', 'dst')} -j ACCEPT`);
  for (const b of ['LOAD-BALANCER', 'CLUSTER-IP', 'EXTERNAL-IP', 'EXTERNAL-IP-LOCAL'] as const) {
    filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${set(b)} dst,dst -j RETURN`);
  }
  filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${set('HEALTH-CHECK-NODE-PORT')} dst -j RETURN`);
  filter.push(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${set('IPVS-IPS')} dst -j REJECT`);
  filter.push('COMMIT');
  return [...nat, ...filter].join('\n') + '\n';
}

/** Which of our jumps the built-in chains hold, from `iptables-save` output. */
export function presentJumps(save: string): Set<string> {
  const present = new Set<string>();
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    if (!line.startsWith('-A ')) continue;
    for (const j of JUMPS) {
      if (j.table === table && line.startsWith(`-A ${j.from} `) && line.includes(`-j ${j.to}`) && line.includes(j.comment)) present.add(jumpId(j));
    }
  }
  return present;
}

/** Chains (table/name) that exist, from `iptables-save` output. */
export function presentChains(save: string): Set<string> {
  const out = new Set<string>();
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^:(\S+) /.exec(line);
    if (m) out.add(`${table}/${m[1]}`);
  }
  return out;
}

/**
 * iptables-restore input that removes ipvs mode's jumps and chains. Chains shared with the
 * iptables mode are removed only when ipvs mode's jumps or set matches show it wrote them.
 */
export function renderIptablesCleanup(save: string): string | undefined {
  const jumps = presentJumps(save);
  const chains = presentChains(save);
  const ours = jumps.size > 0 || /^-A KUBE-SERVICES .*--match-set KUBE-/m.test(save);
  const out: string[] = [];
  for (const table of ['nat', 'filter'] as const) {
    const names = (table === 'nat' ? NAT_CHAINS : FILTER_CHAINS).filter((c) => chains.has(`${table}/${c}`) && (ours || !SHARED_CHAINS.has(c)));
    const dels = JUMPS.filter((j) => j.table === table && jumps.has(jumpId(j)));
    if (!names.length && !dels.length) continue;
    out.push(`*${table}`);
    for (const j of dels) out.push(`-D ${jumpArgs(j)}`);
    for (const c of names) out.push(`:${c} - [0:0]`);
    for (const c of names) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  return out.length ? out.join('\n') + '\n' : undefined;
}
