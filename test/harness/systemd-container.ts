/**
 * A container whose PID 1 is a real systemd, for end-to-end tests of the unit file, sd_notify, the
 * watchdog, journald output and the installer. `systemd-nspawn` does not work on these machines (no
 * system bus), so: a Debian 12 rootfs made once with `debootstrap --variant=minbase` (cached across
 * runs under /var/cache/keelson-test, or $KEELSON_TEST_CACHE, keyed by the package list), a writable
 * overlay on top of it per container (the cache stays pristine), started by a private containerd
 * (test/harness/containerd.ts) with `ctr run --privileged --rootfs DIR ID /lib/systemd/systemd`.
 * The container gets its own empty network namespace (loopback only): never the host's network.
 *
 * Usage:
 *   import { startSystemdContainer, type SystemdContainer } from '../harness/systemd-container';
 *   let box: SystemdContainer;
 *   test.before(async () => {
 *     box = await startSystemdContainer({ packages: ['curl'] });   // extra packages: part of the cache key
 *     await box.waitForSystemd();                                   // 'running' or 'degraded'
 *   });
 *   test.afterEach.always((t) => { if (!t.passed) box?.markFailed(); });
 *   test.after.always(async () => { await box?.stop(); });        // failed: journal kept, path printed
 *   box.copyIn('/host/dir', '/usr/lib/keelson');                   // cp -a into the container's root fs
 *   box.writeFile('/etc/keelson/config.yaml', 'kind: ...');
 *   const { code, stdout } = await box.exec('systemctl is-active keelson');   // never throws on exit code
 *   const out = await box.run('systemctl start keelson');         // throws on a non-zero exit code
 *   const lines = await box.journal('keelson', 'warning');        // journalctl -u keelson -p warning -o cat
 *   box.path('/etc/keelson')                                      // the host path of a container path
 *   await box.exec('systemctl poweroff --no-block'); await box.waitForExit();  // the journal stays on disk:
 *   //   journalctl -D <box.path('/var/log/journal')>/<machine-id> on the host (persistent storage is on)
 * copyIn/writeFile/path reach the container's root filesystem only: /run, /tmp, /dev, /proc and /sys
 * inside are the container's own mounts (use exec for those). Cold cache: debootstrap takes about two
 * minutes and needs the Debian mirror configured in /etc/apt/sources.list*; concurrent test files
 * share one build through a lock. stop() kills the container (and its processes), deletes it,
 * unmounts the overlay, stops the containerd it started, and removes its temp folder; a process-exit
 * hook does the same if stop() was never called.
 *
 * Warm the cache ahead of the test run (scripts/test.sh does, so no test waits on debootstrap):
 *   node dist/test/harness/systemd-container.js --prepare [--packages containerd,runc]
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startContainerd, type ContainerdNode } from './containerd';

export const DEBIAN_SUITE = 'bookworm';
/** Always in the rootfs; `packages` adds to these. */
export const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'procps', 'ca-certificates'];
/** Bump when the rootfs preparation below changes, so cached trees are rebuilt. */
const ROOTFS_LAYOUT = 1;
const CTR_NAMESPACE = 'keelson-systemd';

export interface SystemdContainerOptions {
  /** Extra Debian packages baked into the cached rootfs (the container has no network to apt-get). */
  packages?: string[];
  /** Cache folder for rootfs trees (default $KEELSON_TEST_CACHE or /var/cache/keelson-test). */
  cacheDir?: string;
  /** Use this containerd instead of starting a private one (its stop() is then yours). */
  containerd?: ContainerdNode;
  /** Extra environment for PID 1 (systemd passes it on to nothing by default). */
  env?: Record<string, string>;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface SystemdContainer {
  id: string;
  /** Host path of the container's root filesystem (the merged overlay). */
  rootfs: string;
  /** Host path of a path inside the container (root filesystem only). */
  path(containerPath: string): string;
  /** Runs `sh -c cmd` inside; resolves with the exit code and output, whatever the code. */
  exec(cmd: string, options?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Like exec, but rejects (with stderr and stdout) on a non-zero exit code; resolves stdout. */
  run(cmd: string, options?: { timeoutMs?: number }): Promise<string>;
  /** Waits for `systemctl is-system-running` to say running or degraded; resolves that word. */
  waitForSystemd(timeoutMs?: number): Promise<string>;
  /** Copies a host file or folder (cp -a semantics) to `containerPath`, creating parent folders. */
  copyIn(hostPath: string, containerPath: string): void;
  writeFile(containerPath: string, content: string, mode?: number): void;
  /** `journalctl -u UNIT [-p PRIORITY] -o cat --no-pager` inside (lines only, no metadata). */
  journal(unit: string, priority?: string, extraArgs?: string): Promise<string>;
  /** Waits for PID 1 to exit (after `systemctl poweroff` inside); the root fs stays readable until stop(). */
  waitForExit(timeoutMs?: number): Promise<void>;
  /** Marks the run as failed: stop() keeps the whole journal and the console log and prints where. */
  markFailed(): void;
  stop(): Promise<void>;
}

function sh(cmd: string, args: string[], timeoutMs = 30_000): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
  } catch {
    return undefined;
  }
}

function execAsync(cmd: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 124) : 0;
      resolve({ code, stdout, stderr: err && code === 124 ? `${stderr}\n(${err.message})` : stderr });
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The Debian mirror apt on this host already uses for the main archive (deb822 `.sources` or
 * one-line `.list`), or $KEELSON_DEBIAN_MIRROR. No mirror host is written into the repository.
 */
export function debianMirror(suite = DEBIAN_SUITE): string {
  if (process.env.KEELSON_DEBIAN_MIRROR) return process.env.KEELSON_DEBIAN_MIRROR;
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) files.push(path.join(dir, f));
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const block of text.split(/\n\s*\n/)) {
        const field = (name: string) => block.match(new RegExp(`^${name}:\\s*(.+)$`, 'mi'))?.[1]?.trim().split(/\s+/) ?? [];
        if (field('Types').includes('deb') && field('Suites').includes(suite) && field('Components').includes('main')) {
          const uri = field('URIs')[0];
          if (uri) return uri;
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = line.trim().match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/);
        if (m && m[2] === suite && m[3]!.split(/\s+/).includes('main')) return m[1]!;
      }
    }
  }
  throw new Error(`no apt source for Debian ${suite} main in /etc/apt/sources.list*; set KEELSON_DEBIAN_MIRROR`);
}

function cacheRoot(options: SystemdContainerOptions): string {
  return options.cacheDir ?? process.env.KEELSON_TEST_CACHE ?? '/var/cache/keelson-test';
}

/** Prepares the tree for running as a container (inside the locked build, before it is published). */
const PREPARE_SCRIPT = `
# Units that make no sense in a container without consoles or udev.
for u in getty@tty1.service serial-getty@ttyS0.service console-getty.service systemd-udevd.service \\
         systemd-udev-trigger.service systemd-networkd-wait-online.service apt-daily.timer \\
         apt-daily-upgrade.timer e2scrub_reap.service systemd-firstboot.service; do
  ln -sf /dev/null "$r/etc/systemd/system/$u"
done
echo keelson-test > "$r/etc/hostname"
: > "$r/etc/machine-id"
mkdir -p "$r/var/log/journal"
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* 2>/dev/null || true
`;

/**
 * Builds (once per package list, under a lock shared by concurrent test files) and returns the
 * cached rootfs folder. Exported for tests that only need the tree (e.g. to chroot into it).
 */
export async function ensureDebianRootfs(options: SystemdContainerOptions = {}): Promise<string> {
  const packages = [...new Set([...BASE_PACKAGES, ...(options.packages ?? [])])].sort();
  const arch = sh('dpkg', ['--print-architecture'])?.trim() ?? (process.arch === 'arm64' ? 'arm64' : 'amd64');
  const key = createHash('sha256').update(JSON.stringify({ suite: DEBIAN_SUITE, arch, packages, layout: ROOTFS_LAYOUT })).digest('hex').slice(0, 16);
  const root = cacheRoot(options);
  const dir = path.join(root, `debian-${DEBIAN_SUITE}-${arch}-${key}`);
  const marker = path.join(dir, '.keelson-rootfs-complete');
  if (existsSync(marker)) return dir;
  mkdirSync(root, { recursive: true });
  const mirror = debianMirror();
  const logPath = path.join(root, `debootstrap-${key}.log`);
  const tmp = `${dir}.tmp`;
  const script = `
set -e
[ -e ${JSON.stringify(marker)} ] && exit 0
rm -rf ${JSON.stringify(tmp)}
debootstrap --variant=minbase --include=${packages.join(',')} ${DEBIAN_SUITE} ${JSON.stringify(tmp)} ${JSON.stringify(mirror)}
r=${JSON.stringify(tmp)}
${PREPARE_SCRIPT}
touch ${JSON.stringify(path.join(tmp, '.keelson-rootfs-complete'))}
rm -rf ${JSON.stringify(dir)}
mv ${JSON.stringify(tmp)} ${JSON.stringify(dir)}
`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn('flock', ['-w', '1200', path.join(root, 'rootfs.lock'), 'sh', '-c', `exec >>${JSON.stringify(logPath)} 2>&1\n${script}`], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0 && existsSync(marker)) return resolve();
      let tail = '';
      try {
        tail = readFileSync(logPath, 'utf8').split('\n').slice(-30).join('\n');
      } catch {
        // no log
      }
      reject(new Error(`building the Debian ${DEBIAN_SUITE} rootfs failed (exit ${code}); log ${logPath}:\n${tail}`));
    });
  });
  return dir;
}

function mountedAt(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

/** True while `pid` is a live (not zombie) systemd: guards against a pid reused after exit. */
function isOurInit(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\d+ \(systemd\) [^Z]/.test(stat);
  } catch {
    return false;
  }
}

let counter = 0;
const live = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Before containerd.ts's own hook (registered earlier), which would kill the shims first.
  process.prependListener('exit', () => {
    for (const teardown of live) {
      try {
        teardown();
      } catch {
        // best effort at exit
      }
    }
  });
}

export async function startSystemdContainer(options: SystemdContainerOptions = {}): Promise<SystemdContainer> {
  installExitHook();
  const lower = await ensureDebianRootfs(options);
  const ownsContainerd = options.containerd === undefined;
  const node = options.containerd ?? (await startContainerd({ importImages: false }));
  counter += 1;
  const id = `kt-sd-${process.pid}-${counter}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), `${id}-`));
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  const rootfs = path.join(dir, 'rootfs');
  const runcRoot = path.join(dir, 'runc');
  const consoleLog = path.join(dir, 'console.log');
  for (const d of [upper, work, rootfs, runcRoot]) mkdirSync(d, { recursive: true });
  let overlay = sh('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, rootfs]) !== undefined;
  if (!overlay) cpSync(lower, rootfs, { recursive: true, verbatimSymlinks: true });

  const ctr = (...args: string[]) => ['--address', node.socket, '--namespace', CTR_NAMESPACE, ...args];
  let failed = false;
  let stopped = false;
  let execCounter = 0;
  let initPid: number | undefined;

  const teardownSync = () => {
    if (stopped) return;
    stopped = true;
    live.delete(teardownSync);
    // Killing PID 1 of the container's pid namespace kills everything in it.
    if (initPid && isOurInit(initPid)) {
      try {
        process.kill(initPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    sh('ctr', ctr('task', 'kill', '--signal', 'SIGKILL', id));
    for (let i = 0; i < 50 && initPid && isOurInit(initPid); i++) execFileSync('sleep', ['0.1']);
    sh('ctr', ctr('task', 'delete', '--force', id));
    sh('ctr', ctr('container', 'delete', id));
    // The namespace's empty parent cgroups are left: removing them could race another test's container start.
    if (overlay) {
      if (sh('umount', [rootfs]) === undefined) sh('umount', ['-l', rootfs]);
      overlay = mountedAt(rootfs);
    }
    if (failed) {
      const keep = path.join(os.tmpdir(), 'keelson-test-logs', `${id}-${Date.now()}`);
      mkdirSync(keep, { recursive: true });
      try {
        cpSync(consoleLog, path.join(keep, 'console.log'));
        cpSync(path.join(upper, 'var', 'log', 'journal'), path.join(keep, 'journal'), { recursive: true });
      } catch {
        // partial
      }
      console.error(`systemd container ${id}: console log and journal kept at ${keep} (journalctl -D ${keep}/journal/*)`);
    }
    if (!overlay) rmSync(dir, { recursive: true, force: true });
  };
  live.add(teardownSync);

  const containerPath = (p: string) => {
    if (!p.startsWith('/')) throw new Error(`systemd container: ${p} is not an absolute path`);
    return path.join(rootfs, p);
  };

  async function exec(cmd: string, opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    execCounter += 1;
    return execAsync('ctr', ctr('task', 'exec', '--exec-id', `x${execCounter}`, id, '/bin/sh', '-c', cmd), opts.timeoutMs ?? 60_000);
  }

  const box: SystemdContainer = {
    id,
    rootfs,
    path: containerPath,
    exec,
    async run(cmd, opts) {
      const r = await exec(cmd, opts);
      if (r.code !== 0) throw new Error(`in ${id}: \`${cmd}\` exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
      return r.stdout;
    },
    async waitForSystemd(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        const r = await exec('systemctl is-system-running --wait', { timeoutMs: Math.max(1000, deadline - Date.now()) });
        last = (r.stdout + r.stderr).trim();
        if (/^(running|degraded)$/m.test(r.stdout)) return r.stdout.trim();
        await sleep(200);
      }
      const failedUnits = await exec('systemctl --failed --no-legend', { timeoutMs: 10_000 });
      const tasks = sh('ctr', ctr('task', 'ls')) ?? '';
      let consoleTail = '';
      try {
        consoleTail = readFileSync(consoleLog, 'utf8').split('\n').slice(-20).join('\n');
      } catch {
        // none
      }
      throw new Error(
        `systemd in ${id} not up after ${timeoutMs} ms (last: ${last}); failed units: ${failedUnits.stdout}${failedUnits.stderr}; tasks: ${tasks}; console:\n${consoleTail}`,
      );
    },
    copyIn(hostPath, dest) {
      const target = containerPath(dest);
      mkdirSync(path.dirname(target), { recursive: true });
      cpSync(hostPath, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    },
    writeFile(dest, content, mode = 0o644) {
      const target = containerPath(dest);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, content, { mode });
    },
    async journal(unit, priority, extraArgs = '') {
      const p = priority ? ` -p ${priority}` : '';
      return (await box.run(`journalctl --no-pager -o cat -u ${unit}${p} ${extraArgs}`)).trim();
    },
    async waitForExit(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (!isOurInit(initPid!)) return;
        await sleep(200);
      }
      throw new Error(`systemd in ${id} still running after ${timeoutMs} ms`);
    },
    markFailed() {
      failed = true;
    },
    async stop() {
      if (stopped) return;
      if (failed) await exec('journalctl --flush').catch(() => undefined);
      teardownSync();
      if (ownsContainerd) await node.stop();
    },
  };

  const env = Object.entries({ container: 'containerd', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...options.env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  const started = await execAsync(
    'ctr',
    ctr('run', '--detach', '--privileged', '--runc-root', runcRoot, '--log-uri', `file://${consoleLog}`, ...env, '--rootfs', rootfs, id, '/lib/systemd/systemd'),
    60_000,
  );
  if (started.code !== 0) {
    failed = true;
    await box.stop();
    throw new Error(`ctr run ${id} failed (exit ${started.code}): ${started.stderr}`);
  }
  // Right after `ctr run -d` the task's process may still be runc's init, not yet systemd.
  let task = '';
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(100)) {
    task = sh('ctr', ctr('task', 'ls')) ?? '';
    const pid = task.split('\n').find((l) => l.startsWith(`${id} `))?.trim().split(/\s+/)[1];
    initPid = pid ? Number(pid) : undefined;
    if (initPid && isOurInit(initPid)) break;
  }
  if (!initPid || !isOurInit(initPid)) {
    failed = true;
    await box.stop();
    throw new Error(`ctr run ${id}: no running systemd task found (ctr task ls: ${task.trim()})`);
  }
  return box;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--packages');
  const packages = i >= 0 ? (args[i + 1] ?? '').split(',').filter(Boolean) : [];
  if (!args.includes('--prepare')) {
    process.stderr.write('usage: systemd-container.js --prepare [--packages a,b]\n');
    process.exit(2);
  }
  const began = Date.now();
  ensureDebianRootfs({ packages }).then(
    (dir) => process.stdout.write(`keelson: systemd test rootfs ready at ${dir} (${Math.round((Date.now() - began) / 1000)} s)\n`),
    (err: unknown) => {
      process.stderr.write(`keelson: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
