/**
 * Listening sockets from /proc/net/{tcp,tcp6,udp,udp6} (of the reader's network namespace, or of
 * /proc/<pid>/net for another one), and the processes that hold them (socket inodes in /proc/<pid>/fd).
 */
import { join } from 'node:path';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ListeningSocket {
  protocol: 'tcp' | 'udp';
  address: string;
  port: number;
  inode: number;
}

/** `0100007F` → 127.0.0.1; 32 hex digits → an IPv6 address (four host-order 32-bit words). */
export function decodeProcAddress(hex: string): string {
  if (hex.length === 8) return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** Parses one /proc/net table: TCP sockets in LISTEN (0A), UDP sockets that are bound and unconnected (07). */
export function parseProcNet(text: string, protocol: 'tcp' | 'udp'): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [localHex, portHex] = f[1]!.split(':');
    const state = f[3];
    if (protocol === 'tcp' ? state !== '0A' : state !== '07') continue;
    out.push({ protocol, address: decodeProcAddress(localHex!), port: parseInt(portHex!, 16), inode: Number(f[9]) });
  }
  return out;
}

export function listeningSockets(procNet: string, read: (p: string) => string): ListeningSocket[] {
  const all: ListeningSocket[] = [];
  for (const [file, protocol] of [['tcp', 'tcp'], ['tcp6', 'tcp'], ['udp', 'udp'], ['udp6', 'udp']] as const) {
    try {
      all.push(...parseProcNet(read(join(procNet, 'net', file)), protocol));
    } catch {
      // no IPv6 in this kernel, or not readable
    }
  }
  return all;
}

export interface SocketOwner {
  pid: number;
  command: string;
}

/** Which processes hold the given socket inodes (needs root to see other users' fds). */
export function socketOwners(inodes: number[], proc = '/proc'): Map<number, SocketOwner[]> {
  const wanted = new Set(inodes.filter((i) => i > 0).map((i) => `socket:[${i}]`));
  const owners = new Map<number, SocketOwner[]>();
  if (wanted.size === 0) return owners;
  let pids: string[] = [];
  try {
    pids = readdirSync(proc).filter((d) => /^\d+$/.test(d));
  } catch {
    return owners;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(proc, pid, 'fd'));
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(join(proc, pid, 'fd', fd));
      } catch {
        continue;
      }
      if (!wanted.has(link)) continue;
      const inode = Number(link.slice(8, -1));
      const list = owners.get(inode) ?? [];
      if (!list.some((o) => o.pid === Number(pid))) list.push({ pid: Number(pid), command: commandOf(proc, pid) });
      owners.set(inode, list);
    }
  }
  return owners;
}

/** The program name (basename of argv[0]; comm can be a thread name such as MainThread). */
function commandOf(proc: string, pid: string): string {
  try {
    const argv0 = readFileSync(join(proc, pid, 'cmdline'), 'utf8').split('\0')[0];
    if (argv0) return argv0.slice(argv0.lastIndexOf('/') + 1);
    return readFileSync(join(proc, pid, 'comm'), 'utf8').trim();
  } catch {
    return '?';
  }
}
