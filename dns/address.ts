/**
 * The node-local listen address (default 169.254.20.10) must exist on the host. Like NodeLocal
 * DNSCache we add it as a /32 (/128) on a loopback-type interface; keelson uses `lo` because not
 * every edge kernel has dummy interfaces. Only non-loopback addresses are managed.
 */
import { execFile } from 'node:child_process';
import { DnsError, DnsErrorCodes } from './errors';
import { isIPv6 } from './ip';

export type RunCommand = (file: string, args: string[]) => Promise<string>;

export const runCommand: RunCommand = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolve(String(stdout));
    });
  });

export function needsManagedAddress(ip: string): boolean {
  return !(ip.startsWith('127.') || ip === '::1');
}

/** Adds `ip` to `iface` unless it is there already; returns true when it was added. */
export async function ensureLocalAddress(ip: string, iface: string, run: RunCommand = runCommand): Promise<boolean> {
  const family = isIPv6(ip) ? '-6' : '-4';
  const prefix = isIPv6(ip) ? 128 : 32;
  try {
    const out = await run('ip', ['-o', family, 'addr', 'show', 'dev', iface]);
    if (out.split('\n').some((line) => line.includes(` ${ip}/`))) return false;
    await run('ip', [family, 'addr', 'add', `${ip}/${prefix}`, 'dev', iface]);
    return true;
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new DnsError(DnsErrorCodes.DNS_ADDRESS_SETUP, `cannot add ${ip} to ${iface}: ${detail}`, { object: `${ip} dev ${iface}`, cause: err });
  }
}

export async function removeLocalAddress(ip: string, iface: string, run: RunCommand = runCommand): Promise<void> {
  const family = isIPv6(ip) ? '-6' : '-4';
  await run('ip', [family, 'addr', 'del', `${ip}/${isIPv6(ip) ? 128 : 32}`, 'dev', iface]).catch(() => {});
}
