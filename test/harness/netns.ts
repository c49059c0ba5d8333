/**
 * Network namespaces for tests: each simulated node (and each fake peer) gets a named netns
 * (`ip netns add`, so it lives at /var/run/netns/NAME). Commands run inside with
 * `nsenter --net=/var/run/netns/NAME` — not `ip netns exec`, which remounts /sys and hides the
 * cgroup mounts runc and the kubelet need. Links are only ever made between two test namespaces;
 * nothing here touches the host's own namespace.
 *
 * Usage:
 *   const a = await createNetns();                 // 'kt-<pid>-<n>', loopback up
 *   const b = await createNetns();
 *   await addVethPair({ ns: a, name: 'kt0a', address: '10.250.0.1/24' }, { ns: b, name: 'kt0b', address: '10.250.0.2/24' });
 *   await addRoute(b, '10.88.0.0/16', '10.250.0.1');
 *   const { stdout } = await execIn(a, 'ping', ['-c1', '10.250.0.2']);
 *   const child = spawnIn(b, 'some-daemon', ['--flag']);
 *   await deleteNetns(a);                          // or cleanupNetns() in test.after.always
 * Everything created is also removed when the process exits.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const NETNS_DIR = '/var/run/netns';

const created = new Set<string>();
let counter = 0;
let exitHookInstalled = false;

export function netnsPath(ns: string): string {
  return `${NETNS_DIR}/${ns}`;
}

/** Arguments that run a command inside the namespace: `['--net=/var/run/netns/NAME', '--']`. */
export function nsenterArgs(ns: string): string[] {
  return [`--net=${netnsPath(ns)}`, '--'];
}

/** A unique name: `kt-<pid>-<n>` plus an optional short tag. Kept short (names show up in paths). */
export function uniqueName(tag = ''): string {
  counter += 1;
  return `kt-${process.pid}-${counter}${tag ? `-${tag}` : ''}`;
}

/** A unique interface name of at most 15 characters (IFNAMSIZ - 1). */
export function uniqueIfname(tag = 'v'): string {
  counter += 1;
  const name = `${tag}${(process.pid % 100000).toString(36)}${counter.toString(36)}`;
  if (name.length > 15) throw new Error(`interface name ${name} is longer than 15 characters; use a shorter tag`);
  return name;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const ns of created) {
      try {
        execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    created.clear();
  });
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` inside the namespace; rejects with stdout/stderr on a non-zero exit. */
export async function execIn(ns: string, cmd: string, args: string[] = [], options: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileAsync('nsenter', [...nsenterArgs(ns), cmd, ...args], {
      timeout: options.timeoutMs ?? 30_000,
      maxBuffer: 16 * 1024 * 1024,
      encoding: 'utf8',
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`in netns ${ns}: ${cmd} ${args.join(' ')} failed: ${e.message.trim()}${e.stderr ? `\n${e.stderr}` : ''}`, { cause: err });
  }
}

/** Spawns a long-running process inside the namespace (caller owns and kills it). */
export function spawnIn(ns: string, cmd: string, args: string[] = [], options: SpawnOptions = {}): ChildProcess {
  return spawn('nsenter', [...nsenterArgs(ns), cmd, ...args], options);
}

/** Creates a named netns with loopback up; it is removed by deleteNetns, cleanupNetns or at exit. */
export async function createNetns(name = uniqueName()): Promise<string> {
  installExitHook();
  await execFileAsync('ip', ['netns', 'add', name]);
  created.add(name);
  await execIn(name, 'ip', ['link', 'set', 'lo', 'up']);
  return name;
}

export async function deleteNetns(ns: string): Promise<void> {
  created.delete(ns);
  if (!existsSync(netnsPath(ns))) return;
  await execFileAsync('ip', ['netns', 'delete', ns]);
}

/** Deletes every namespace this process created and has not deleted yet. */
export async function cleanupNetns(): Promise<void> {
  const errors: string[] = [];
  for (const ns of [...created]) {
    try {
      await deleteNetns(ns);
    } catch (err) {
      errors.push(`${ns}: ${(err as Error).message}`);
    }
  }
  if (errors.length) throw new Error(`netns cleanup failed: ${errors.join('; ')}`);
}

/** Namespaces created by this process and still present. */
export function createdNetns(): string[] {
  return [...created];
}

export interface VethEnd {
  ns: string;
  /** Interface name, ≤ 15 characters; generated when omitted. */
  name?: string;
  /** CIDR address to assign, e.g. '10.250.0.1/24'. */
  address?: string;
}

/**
 * Creates a veth pair between two test namespaces (both ends up, addresses assigned). The pair is
 * created inside `a`'s namespace, so it never appears in the host's. Returns the interface names.
 */
export async function addVethPair(a: VethEnd, b: VethEnd): Promise<{ a: string; b: string }> {
  if (a.ns === b.ns) throw new Error('addVethPair: both ends are in the same namespace');
  const nameA = a.name ?? uniqueIfname('va');
  const nameB = b.name ?? uniqueIfname('vb');
  for (const n of [nameA, nameB]) if (n.length > 15) throw new Error(`interface name ${n} is longer than 15 characters`);
  await execIn(a.ns, 'ip', ['link', 'add', nameA, 'type', 'veth', 'peer', 'name', nameB, 'netns', b.ns]);
  for (const [end, name] of [
    [a, nameA],
    [b, nameB],
  ] as const) {
    if (end.address) await execIn(end.ns, 'ip', ['addr', 'add', end.address, 'dev', name]);
    await execIn(end.ns, 'ip', ['link', 'set', name, 'up']);
  }
  return { a: nameA, b: nameB };
}

export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  await execIn(ns, 'ip', ['addr', 'add', cidr, 'dev', dev]);
}

/** Adds a route inside the namespace: `ip route add DST via GW` (or `dev DEV`). */
export async function addRoute(ns: string, destination: string, via?: string, dev?: string): Promise<void> {
  const args = ['route', 'add', destination];
  if (via) args.push('via', via);
  if (dev) args.push('dev', dev);
  await execIn(ns, 'ip', args);
}

/** Adds a dummy interface (a stable local address in a namespace, e.g. for a node IP). */
export async function addDummy(ns: string, name: string, cidr?: string): Promise<void> {
  await execIn(ns, 'ip', ['link', 'add', name, 'type', 'dummy']);
  if (cidr) await execIn(ns, 'ip', ['addr', 'add', cidr, 'dev', name]);
  await execIn(ns, 'ip', ['link', 'set', name, 'up']);
}
