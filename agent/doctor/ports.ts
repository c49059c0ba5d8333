/**
 * Port conflicts: another process already listening where keelson must (DNS :53 on its node-local
 * address, kubelet API :10250, kubelet healthz :10248, proxy healthz :10256, proxy metrics :10249).
 * Read from /proc/net, so nothing is bound and a running keelson's own sockets are recognised.
 */
import { isIP } from 'node:net';
import { fail, ok, type CheckResult, type DoctorCheck, type DoctorContext } from './check';
import { listeningSockets, socketOwners, type ListeningSocket } from './sockets';

interface PortTarget {
  what: string;
  address: string;
  port: number;
  protocol: 'tcp' | 'udp';
  setting: string;
}

function splitHostPort(text: string, fallbackPort: number): { address: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(text);
  return m ? { address: m[1] || '0.0.0.0', port: Number(m[2]) } : { address: text || '0.0.0.0', port: fallbackPort };
}

export function portTargets(ctx: DoctorContext): PortTarget[] {
  const { config, proxy, dns } = ctx;
  const targets: PortTarget[] = [];
  if (config.components.includes('kubelet')) {
    targets.push({ what: 'kubelet API', address: config.kubelet.address, port: config.kubelet.port, protocol: 'tcp', setting: 'address/port' });
    if (config.kubelet.healthzPort > 0) targets.push({ what: 'kubelet healthz', address: config.kubelet.healthzBindAddress, port: config.kubelet.healthzPort, protocol: 'tcp', setting: 'healthzBindAddress/healthzPort' });
  }
  if (config.components.includes('proxy')) {
    const h = splitHostPort(proxy.healthzBindAddress, 10256);
    targets.push({ what: 'proxy healthz', ...h, protocol: 'tcp', setting: 'proxy.healthzBindAddress' });
    const m = splitHostPort(proxy.metricsBindAddress, 10249);
    targets.push({ what: 'proxy metrics', ...m, protocol: 'tcp', setting: 'proxy.metricsBindAddress' });
  }
  if (config.components.includes('dns')) {
    for (const address of dns.listen) {
      for (const protocol of ['udp', 'tcp'] as const) targets.push({ what: 'cluster DNS', address, port: dns.port, protocol, setting: 'dns.listen/dns.port' });
    }
  }
  return targets;
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Whether a socket bound to `listener` stops keelson from binding `target` on the same port. */
export function addressesOverlap(listener: string, target: string): boolean {
  const l = unmapped(listener);
  const t = unmapped(target);
  if (l === t) return true;
  if (l === '::') return true; // dual-stack wildcard takes IPv4 too
  if (t === '::') return true;
  if (l === '0.0.0.0') return isIP(t) === 4;
  if (t === '0.0.0.0') return isIP(l) === 4;
  return false;
}

function label(t: { address: string; port: number; protocol: string }): string {
  return `${t.address.includes(':') ? `[${t.address}]` : t.address}:${t.port}/${t.protocol}`;
}

export const portsCheck: DoctorCheck = {
  name: 'ports',
  async run(ctx) {
    const sockets = listeningSockets(ctx.paths.procNet, ctx.readFile);
    const targets = portTargets(ctx);
    const clashes = new Map<PortTarget, ListeningSocket[]>();
    for (const t of targets) {
      const hits = sockets.filter((s) => s.protocol === t.protocol && s.port === t.port && addressesOverlap(s.address, t.address));
      if (hits.length) clashes.set(t, hits);
    }
    const owners = socketOwners([...clashes.values()].flat().map((s) => s.inode), ctx.paths.proc);
    const results: CheckResult[] = [];
    for (const t of targets) {
      const name = `port ${t.port}/${t.protocol}`;
      const hits = clashes.get(t);
      if (!hits) {
        results.push(ok(name, `${label(t)} free for the ${t.what}`));
        continue;
      }
      const holders = hits.flatMap((s) => owners.get(s.inode) ?? []);
      if (ctx.daemonPid !== undefined && holders.some((h) => h.pid === ctx.daemonPid)) {
        results.push(ok(name, `${label(t)} held by the running keelson (pid ${ctx.daemonPid})`));
        continue;
      }
      const who = holders.length ? holders.map((h) => `pid ${h.pid} (${h.command})`).join(', ') : 'a process this user cannot see';
      const where = hits.map((s) => label(s)).join(', ');
      const dnsHint = t.port === 53 && holders.some((h) => /systemd-resolve|dnsmasq/.test(h.command))
        ? ` (${holders.map((h) => h.command).join(', ')} listening on a wildcard address: set DNSStubListener=no or bind-interfaces so it leaves ${t.address} free)`
        : '';
      results.push(fail(name, `${label(t)} for the ${t.what} is taken: ${where} held by ${who}`, `stop or reconfigure ${holders[0]?.command ?? 'that process'}${dnsHint}, or move keelson's ${t.what} elsewhere (${t.setting} in /etc/keelson/config.yaml)`));
    }
    return results;
  },
};
