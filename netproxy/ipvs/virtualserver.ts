/**
 * IPVS virtual servers and real servers: the model, the `ipvsadm -R` lines that change them, and
 * the parser of `ipvsadm -Ln` (the only listing that carries weights and connection counts, which
 * graceful termination needs).
 *
 * `ipvsadm -R` is used rather than the `ipvsadm-restore` wrapper: the wrapper runs `ipvsadm -C`
 * first, which would wipe every virtual server on the host, including ones keelson does not own.
 */
import { isIP } from 'node:net';
import type { Protocol } from '../serviceport';

export interface RealServer {
  ip: string;
  port: number;
  weight: number;
  activeConns: number;
  inactiveConns: number;
}

export interface VirtualServer {
  protocol: Protocol;
  ip: string;
  port: number;
  scheduler: string;
  /** Persistence timeout in seconds (ClientIP session affinity); absent = not persistent. */
  persistence?: number;
  /** Scheduler flags (`-b`), e.g. `mh-port`; sorted. */
  flags: string[];
  /** Real servers by `ip:port` (IPv6 in brackets). */
  realServers: Map<string, RealServer>;
}

export function hostPort(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Unique key of a virtual server: `TCP/10.96.0.1:80`. */
export function vsKey(vs: { protocol: Protocol; ip: string; port: number }): string {
  return `${vs.protocol}/${hostPort(vs.ip, vs.port)}`;
}

/** The virtual-service option of ipvsadm: `-t addr:port`, `-u …`, `--sctp-service …`. */
export function serviceArgs(vs: { protocol: Protocol; ip: string; port: number }): string[] {
  const flag = vs.protocol === 'TCP' ? '-t' : vs.protocol === 'UDP' ? '-u' : '--sctp-service';
  return [flag, hostPort(vs.ip, vs.port)];
}

function attributeArgs(vs: VirtualServer): string[] {
  return [
    '-s', vs.scheduler,
    ...(vs.persistence !== undefined ? ['-p', String(vs.persistence)] : []),
    ...(vs.flags.length ? ['-b', vs.flags.join(',')] : []),
  ];
}

export const addServiceLine = (vs: VirtualServer) => ['-A', ...serviceArgs(vs), ...attributeArgs(vs)].join(' ');
export const editServiceLine = (vs: VirtualServer) => ['-E', ...serviceArgs(vs), ...attributeArgs(vs)].join(' ');
export const deleteServiceLine = (vs: VirtualServer) => ['-D', ...serviceArgs(vs)].join(' ');
/** Real servers are always in masquerading (NAT) mode, as kube-proxy programs them. */
export const addRealLine = (vs: VirtualServer, rs: RealServer) => ['-a', ...serviceArgs(vs), '-r', hostPort(rs.ip, rs.port), '-m', '-w', String(rs.weight)].join(' ');
export const editRealLine = (vs: VirtualServer, rs: RealServer) => ['-e', ...serviceArgs(vs), '-r', hostPort(rs.ip, rs.port), '-m', '-w', String(rs.weight)].join(' ');
export const deleteRealLine = (vs: VirtualServer, rs: RealServer) => ['-d', ...serviceArgs(vs), '-r', hostPort(rs.ip, rs.port)].join(' ');

/** True when the attributes `-E` can change (scheduler, persistence, flags) differ. */
export function attributesDiffer(a: VirtualServer, b: VirtualServer): boolean {
  return a.scheduler !== b.scheduler || a.persistence !== b.persistence || a.flags.join(',') !== b.flags.join(',');
}

function splitHostPort(text: string): { ip: string; port: number } | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([0-9.]+):(\d+)$/.exec(text);
  if (!m || isIP(m[1]!) === 0) return undefined;
  return { ip: m[1]!.toLowerCase(), port: Number(m[2]) };
}

const PROTOCOLS: Record<string, Protocol> = { TCP: 'TCP', UDP: 'UDP', SCTP: 'SCTP' };

/**
 * Parses `ipvsadm -Ln` (optionally with `--persistent-conn`). Columns of real-server lines are
 * found from the header, so both layouts work. Firewall-mark services (FWM) are not keelson's and
 * are skipped.
 */
export function parseIpvsadmList(text: string): Map<string, VirtualServer> {
  const out = new Map<string, VirtualServer>();
  let columns: string[] = ['Forward', 'Weight', 'ActiveConn', 'InActConn'];
  let current: VirtualServer | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('IP Virtual Server') || line.startsWith('Prot ')) continue;
    if (line.startsWith('-> RemoteAddress')) {
      columns = line.split(/\s+/).slice(2);
      continue;
    }
    if (line.startsWith('->')) {
      if (!current) continue;
      const fields = line.split(/\s+/);
      const addr = splitHostPort(fields[1] ?? '');
      if (!addr) continue;
      const col = (name: string) => Number(fields[2 + columns.indexOf(name)] ?? 0) || 0;
      const rs: RealServer = { ...addr, weight: col('Weight'), activeConns: col('ActiveConn'), inactiveConns: col('InActConn') };
      current.realServers.set(hostPort(rs.ip, rs.port), rs);
      continue;
    }
    const fields = line.split(/\s+/);
    const protocol = PROTOCOLS[fields[0] ?? ''];
    const addr = splitHostPort(fields[1] ?? '');
    if (!protocol || !addr) {
      current = undefined;
      continue;
    }
    const vs: VirtualServer = { protocol, ...addr, scheduler: fields[2] ?? '', flags: [], realServers: new Map() };
    for (let i = 3; i < fields.length; i++) {
      const f = fields[i]!;
      if (f === 'persistent') vs.persistence = Number(fields[++i]);
      else if (f === 'mask' || f === 'pe') i++;
      else if (/^\(?[a-z]+-[a-z]+/.test(f)) vs.flags.push(...f.replace(/[()]/g, '').split(',').filter(Boolean));
    }
    vs.flags.sort();
    out.set(vsKey(vs), vs);
    current = vs;
  }
  return out;
}
