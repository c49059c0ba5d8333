/** Small address helpers (no dependency): parse, CIDR membership, family filtering. */
import { isIP } from 'node:net';

export function ipToBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  let [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const expand = (parts: string[]) => parts.flatMap((p) => (p.includes('.') ? v4Groups(p) : [p]));
  const hh = expand(h);
  const tt = expand(t);
  const groups = tail === undefined ? hh : [...hh, ...Array(8 - hh.length - tt.length).fill('0'), ...tt];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

function v4Groups(v4: string): string[] {
  const n = ipToBigInt(v4);
  return [(n >> 16n).toString(16), (n & 0xffffn).toString(16)];
}

export function cidrContains(cidr: string, ip: string): boolean {
  const [base, lenStr] = cidr.split('/');
  if (!base || isIP(base) !== isIP(ip)) return false;
  const bits = isIP(base) === 4 ? 32 : 128;
  const len = BigInt(lenStr ?? bits);
  const shift = BigInt(bits) - len;
  return ipToBigInt(base) >> shift === ipToBigInt(ip) >> shift;
}

export function ofFamily(list: string[], family: 4 | 6): string[] {
  return list.filter((a) => isIP(a.split('/')[0]!) === family);
}
