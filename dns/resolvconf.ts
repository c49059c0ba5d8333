/** Upstream nameservers from resolv.conf, skipping systemd-resolved's stub (it may point back at us). */
import fs from 'node:fs';
import { canonicalIP } from './ip';

export const SYSTEMD_STUB = '127.0.0.53';
export const SYSTEMD_RESOLV_CONF = '/run/systemd/resolve/resolv.conf';

export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const ip = canonicalIP(m[1]!.replace(/%.*$/, ''));
    if (ip) out.push(ip);
  }
  return out;
}

/** Nameservers of `file`; when it names only the systemd stub, the real ones behind it. */
export function upstreamsFromResolvConf(file: string, read: (f: string) => string = (f) => fs.readFileSync(f, 'utf8')): string[] {
  let servers: string[] = [];
  try {
    servers = parseResolvConf(read(file));
  } catch {
    return [];
  }
  if (servers.length > 0 && servers.every((s) => s === SYSTEMD_STUB || s.startsWith('127.0.0.5'))) {
    try {
      const behind = parseResolvConf(read(SYSTEMD_RESOLV_CONF)).filter((s) => s !== SYSTEMD_STUB);
      if (behind.length) return behind;
    } catch {
      // keep the stub; loop detection will catch a loop through it
    }
  }
  return servers;
}
