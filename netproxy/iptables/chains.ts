/**
 * Chain names as kube-proxy's iptables mode spells them, so operators recognise them:
 * `KUBE-SVC-` + the first 16 characters of base32(sha256(servicePortName + protocol)), and
 * `KUBE-SEP-` the same with the endpoint (`ip:port`) appended to the hashed text.
 */
import { createHash } from 'node:crypto';
import type { ServicePortState } from '../desiredstate';
import type { EndpointAddress } from '../endpoints';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';

/** Per-service chain prefixes (all in the nat table). */
export const SERVICE_CHAIN_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'] as const;

/** Static chains netproxy owns, per table. */
export const STATIC_CHAINS = {
  filter: [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL],
  nat: [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ],
} as const;

export function isServiceChain(name: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => name.startsWith(p));
}

/** Whether a chain of `table` is one netproxy owns (static, canary or per-service). */
export function isOwnedChain(table: string, name: string): boolean {
  if (name === KUBE_PROXY_CANARY) return true;
  if (table === 'nat') return (STATIC_CHAINS.nat as readonly string[]).includes(name) || isServiceChain(name);
  if (table === 'filter') return (STATIC_CHAINS.filter as readonly string[]).includes(name);
  return false;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (no padding needed for the first 16 characters). */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function hash16(text: string): string {
  return base32(createHash('sha256').update(text).digest()).slice(0, 16);
}

/** `ns/name:port` (or `ns/name` for an unnamed port), as kube-proxy's ServicePortName prints. */
export function servicePortName(sp: Pick<ServicePortState, 'service' | 'portName'>): string {
  return sp.portName ? `${sp.service}:${sp.portName}` : sp.service;
}

/** `ip:port`, `[ip6]:port`. */
export function endpointString(ep: EndpointAddress): string {
  return ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

export interface ServicePortChains {
  svc: string;
  svl: string;
  ext: string;
  fw: string;
}

export function servicePortChains(spn: string, protocol: string): ServicePortChains {
  const h = hash16(spn + protocol.toLowerCase());
  return { svc: `KUBE-SVC-${h}`, svl: `KUBE-SVL-${h}`, ext: `KUBE-EXT-${h}`, fw: `KUBE-FW-${h}` };
}

export function endpointChain(spn: string, protocol: string, ep: EndpointAddress): string {
  return `KUBE-SEP-${hash16(spn + protocol.toLowerCase() + endpointString(ep))}`;
}
