/**
 * The ipsets ipvs mode keeps, named and typed as kube-proxy names them so that operators' habits
 * (`ipset list KUBE-CLUSTER-IP`) carry over. IPv6 sets take the `KUBE-6-` prefix (cut to ipset's
 * 31-character limit). Entries are written in the form `ipset save` prints them back, so the diff
 * against the kernel is a plain set difference.
 */
import type { IPFamily, Protocol } from '../serviceport';
import { ipToBigInt } from '../ipnet';

export type SetType = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'bitmap:port';

/** Every set ipvs mode uses: base name (after `KUBE-`), type, and what it holds. */
export const SET_CATALOGUE = [
  { base: 'LOOP-BACK', type: 'hash:ip,port,ip', comment: 'endpoint ip:port and the same ip as source, to masquerade hairpin traffic' },
  { base: 'CLUSTER-IP', type: 'hash:ip,port', comment: 'service cluster ip + port for masquerade purpose' },
  { base: 'EXTERNAL-IP', type: 'hash:ip,port', comment: 'service external ip + port for masquerade and filter purpose' },
  { base: 'EXTERNAL-IP-LOCAL', type: 'hash:ip,port', comment: 'service external ip + port with externalTrafficPolicy=local' },
  { base: 'LOAD-BALANCER', type: 'hash:ip,port', comment: 'service load balancer ingress ip + port' },
  { base: 'LOAD-BALANCER-FW', type: 'hash:ip,port', comment: 'load balancer ip + port with loadBalancerSourceRanges' },
  { base: 'LOAD-BALANCER-LOCAL', type: 'hash:ip,port', comment: 'load balancer ip + port with externalTrafficPolicy=local' },
  { base: 'LOAD-BALANCER-SOURCE-IP', type: 'hash:ip,port,ip', comment: 'load balancer ip + port + source ip allowed through the source-range filter' },
  { base: 'LOAD-BALANCER-SOURCE-CIDR', type: 'hash:ip,port,net', comment: 'load balancer ip + port + source cidr allowed through the source-range filter' },
  { base: 'NODE-PORT-TCP', type: 'bitmap:port', comment: 'TCP node ports for masquerade purpose' },
  { base: 'NODE-PORT-LOCAL-TCP', type: 'bitmap:port', comment: 'TCP node ports with externalTrafficPolicy=local' },
  { base: 'NODE-PORT-UDP', type: 'bitmap:port', comment: 'UDP node ports for masquerade purpose' },
  { base: 'NODE-PORT-LOCAL-UDP', type: 'bitmap:port', comment: 'UDP node ports with externalTrafficPolicy=local' },
  { base: 'NODE-PORT-SCTP-HASH', type: 'hash:ip,port', comment: 'SCTP node ip + node port for masquerade purpose' },
  { base: 'NODE-PORT-LOCAL-SCTP-HASH', type: 'hash:ip,port', comment: 'SCTP node ip + node port with externalTrafficPolicy=local' },
  { base: 'HEALTH-CHECK-NODE-PORT', type: 'bitmap:port', comment: 'health check node ports' },
  { base: 'IPVS-IPS', type: 'hash:ip', comment: 'addresses bound to kube-ipvs0' },
] as const satisfies readonly { base: string; type: SetType; comment: string }[];

export type SetBase = (typeof SET_CATALOGUE)[number]['base'];

export function setName(base: SetBase, family: IPFamily): string {
  return family === 4 ? `KUBE-${base}` : `KUBE-6-${base}`.slice(0, 31);
}

export function setType(base: SetBase): SetType {
  return SET_CATALOGUE.find((s) => s.base === base)!.type;
}

export function setComment(base: SetBase): string {
  return SET_CATALOGUE.find((s) => s.base === base)!.comment;
}

/** Every set name keelson's ipvs mode owns, with its base and family. */
export function ownedSets(): { name: string; base: SetBase; family: IPFamily }[] {
  return SET_CATALOGUE.flatMap((s) => ([4, 6] as const).map((family) => ({ name: setName(s.base, family), base: s.base, family })));
}

export function createLine(base: SetBase, family: IPFamily): string {
  const type = setType(base);
  const name = setName(base, family);
  if (type === 'bitmap:port') return `create ${name} bitmap:port range 0-65535`;
  return `create ${name} ${type} family ${family === 4 ? 'inet' : 'inet6'} hashsize 1024 maxelem 65536`;
}

const proto = (p: Protocol) => p.toLowerCase();
const ip = (a: string) => a.toLowerCase();

export const ipPortEntry = (addr: string, p: Protocol, port: number) => `${ip(addr)},${proto(p)}:${port}`;
export const ipPortIpEntry = (addr: string, p: Protocol, port: number, addr2: string) => `${ipPortEntry(addr, p, port)},${ip(addr2)}`;
export const portEntry = (port: number) => String(port);

/** `ip,proto:port,net` with the network in canonical form (host bits cleared; /32 and /128 omitted, as ipset prints it). */
export function ipPortNetEntry(addr: string, p: Protocol, port: number, cidr: string): string {
  return `${ipPortEntry(addr, p, port)},${canonicalNet(cidr)}`;
}

export function canonicalNet(cidr: string): string {
  const [base, lenText] = cidr.trim().split('/');
  const v6 = base!.includes(':');
  const bits = v6 ? 128 : 32;
  const len = lenText === undefined ? bits : Number(lenText);
  if (len === bits) return ip(base!);
  if (v6) return `${ip(base!)}/${len}`;
  const n = ipToBigInt(base!) & (((1n << BigInt(len)) - 1n) << BigInt(bits - len));
  const octets = [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n));
  return `${octets.join('.')}/${len}`;
}

/** Parses `ipset save` (or `ipset list -o save`) into set name → entries, for the sets we own. */
export function parseIpsetSave(text: string): Map<string, Set<string>> {
  const owned = new Set(ownedSets().map((s) => s.name));
  const sets = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] === 'create' && owned.has(fields[1]!)) sets.set(fields[1]!, new Set());
    else if (fields[0] === 'add' && sets.has(fields[1]!)) sets.get(fields[1]!)!.add(fields[2]!.toLowerCase());
  }
  return sets;
}

/**
 * `ipset restore` input (run with `-exist`) that turns `current` into `desired`: missing sets are
 * created, entries added and deleted. Sets are never destroyed here (iptables rules reference
 * them); cleanup does that.
 */
export function ipsetRestoreInput(desired: Map<string, Set<string>>, current: Map<string, Set<string>>): { text: string; adds: number; dels: number } {
  const lines: string[] = [];
  let adds = 0;
  let dels = 0;
  for (const { name, base, family } of ownedSets()) {
    const want = desired.get(name);
    if (!want) continue;
    const have = current.get(name);
    if (!have) lines.push(createLine(base, family));
    for (const e of want) {
      if (have?.has(e)) continue;
      lines.push(`add ${name} ${e}`);
      adds++;
    }
    for (const e of have ?? []) {
      if (want.has(e)) continue;
      lines.push(`del ${name} ${e}`);
      dels++;
    }
  }
  return { text: lines.length ? lines.join('\n') + '\n' : '', adds, dels };
}
