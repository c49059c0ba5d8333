/**
 * A real, private image registry for tests: Debian's `docker-registry` (distribution 2.8) with
 * htpasswd basic auth (bcrypt, written by `htpasswd -Bbn` from apache2-utils), filesystem storage in
 * a temp folder, listening only on 127.0.0.1 inside a test network namespace — the one of the
 * private containerd, so its CRI plugin reaches it at 127.0.0.1. The port is a free one the kernel
 * picks (addr 127.0.0.1:0, read back from the registry's "listening on" line), so it never meets
 * the package's own service on :5000. The package's /etc/docker/registry config and REGISTRY_*
 * environment variables are not used.
 *
 * Usage:
 *   const registry = await startRegistry({ netns: node.netns, users: { alice: 's3cret' } });
 *   allowPlainHttp(node, registry.host);            // hosts.toml: server = "http://127.0.0.1:PORT"
 *   const ref = await pushImage(node, registry, { repo: 'team/app', tag: '1', user: 'alice', password: 's3cret' });
 *   registry.requests();                            // the access log: method, path, status, user agent
 *   await registry.stop();                          // kills it, deletes the temp folder (log kept if markFailed())
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ContainerdNode } from './containerd';
import { BUSYBOX_BINARY, buildOciArchive } from './images';
import { netnsPath } from './netns';

const execFileAsync = promisify(execFile);

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
export const REGISTRY_COMMANDS = ['docker-registry', 'htpasswd', 'ctr', 'nsenter'];
/** containerd namespace the images are pushed from (not k8s.io, so CRI never sees them as present). */
const PUSH_NAMESPACE = 'keelson-registry-push';

export interface StartRegistryOptions {
  /** Network namespace to listen in (127.0.0.1 there). */
  netns: string;
  /** Users and passwords for basic auth; without any, the registry is anonymous. */
  users?: Record<string, string>;
  /** How long to wait for the registry to listen, ms (default 10 000). */
  readyTimeoutMs?: number;
}

/** One line of the registry's access log. */
export interface RegistryRequest {
  method: string;
  /** Request path, e.g. `/v2/team/app/manifests/1`. */
  path: string;
  status: number;
  userAgent: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the registry part of image references. */
  host: string;
  port: number;
  dir: string;
  logPath: string;
  netns: string;
  /** Every request answered so far, oldest first. */
  requests(): RegistryRequest[];
  /** GET/HEAD requests for a manifest of repo (each pull resolves the tag with one or more). */
  manifestRequests(repo: string, reference?: string): RegistryRequest[];
  markFailed(): void;
  stop(): Promise<void>;
}

const live = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const teardown of live) {
      try {
        teardown();
      } catch {
        // best effort at exit
      }
    }
  });
}

/** `user:$2y$…` lines, bcrypt-hashed by htpasswd itself. */
function htpasswdFile(users: Record<string, string>): string {
  return Object.entries(users)
    .map(([user, password]) => execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }).trim())
    .join('\n') + '\n';
}

// combined log format: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 401 87 "" "curl/7.88.1"
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"/;

export function parseAccessLog(text: string): RegistryRequest[] {
  const out: RegistryRequest[] = [];
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line);
    if (m) out.push({ method: m[1], path: m[2], status: Number(m[3]), userAgent: m[4] });
  }
  return out;
}

export async function startRegistry(options: StartRegistryOptions): Promise<TestRegistry> {
  installExitHook();
  const dir = mkdtempSync(path.join(os.tmpdir(), `kt-registry-${process.pid}-`));
  const logPath = path.join(dir, 'registry.log');
  const configPath = path.join(dir, 'config.yml');
  mkdirSync(path.join(dir, 'data'));
  const users = options.users ?? {};
  const auth = Object.keys(users).length ? { htpasswd: { realm: 'keelson-test', path: path.join(dir, 'htpasswd') } } : undefined;
  if (auth) writeFileSync(auth.htpasswd.path, htpasswdFile(users), { mode: 0o600 });
  // JSON is YAML: no YAML writer needed
  const config = {
    version: '0.1',
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: path.join(dir, 'data') },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: '127.0.0.1:0', secret: randomBytes(16).toString('hex') },
    ...(auth ? { auth } : {}),
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  let child: ChildProcess | undefined;
  let failed = false;
  const fd = openSync(logPath, 'a');
  try {
    // nsenter --net does not fork: child.pid is the registry's own pid
    child = spawn('nsenter', [`--net=${netnsPath(options.netns)}`, '--', REGISTRY_BINARY, 'serve', configPath], {
      stdio: ['ignore', fd, fd],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir },
    });
  } finally {
    closeSync(fd);
  }
  const proc = child;
  proc.once('exit', () => {
    if (child === proc) child = undefined;
  });
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  const teardownSync = () => {
    live.delete(teardownSync);
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    child = undefined;
    if (failed) {
      const kept = path.join(os.tmpdir(), `keelson-registry-${process.pid}-${Date.now()}.log`);
      try {
        copyFileSync(logPath, kept);
        console.error(`registry log of failed test run kept at ${kept}`);
      } catch {
        // no log
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  live.add(teardownSync);

  const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000);
  let port = 0;
  while (!port) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log());
    if (m) {
      port = Number(m[1]);
      break;
    }
    if (!child || Date.now() > deadline) {
      const why = child ? 'not listening in time' : 'exited during start';
      const text = log();
      teardownSync();
      throw new Error(`docker-registry ${why}; log:\n${text.split('\n').slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    logPath,
    netns: options.netns,
    requests: () => parseAccessLog(log()),
    manifestRequests(repo, reference) {
      const prefix = `/v2/${repo}/manifests/`;
      return parseAccessLog(log()).filter((r) =>
        (r.method === 'GET' || r.method === 'HEAD') && r.path.startsWith(prefix) && (reference === undefined || r.path === prefix + reference));
    },
    markFailed() {
      failed = true;
    },
    async stop() {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      teardownSync();
    },
  };
}

/**
 * Lets the node's CRI plugin pull from host over plain http (hosts.toml under the node's
 * registryHostsDir; read at each pull, so no restart).
 */
export function allowPlainHttp(node: ContainerdNode, host: string): void {
  const hostDir = path.join(node.registryHostsDir, host);
  mkdirSync(hostDir, { recursive: true });
  writeFileSync(path.join(hostDir, 'hosts.toml'), `server = "http://${host}"\n\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`);
}

export interface PushImageOptions {
  /** Repository inside the registry, e.g. `team/app`. */
  repo: string;
  tag: string;
  user?: string;
  password?: string;
  /** The image's Entrypoint / Cmd (busybox-static rootfs as in images.ts). */
  entrypoint?: string[];
  cmd?: string[];
}

async function ctr(node: ContainerdNode, args: string[], inNetns = false): Promise<string> {
  const base = ['--address', node.socket, '-n', PUSH_NAMESPACE, ...args];
  const [cmd, argv] = inNetns ? ['nsenter', [`--net=${netnsPath(node.netns)}`, '--', 'ctr', ...base]] : ['ctr', base];
  try {
    return (await execFileAsync(cmd, argv, { timeout: 60_000, encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ctr ${args.slice(0, 2).join(' ')} failed: ${e.message}${e.stderr ? `\n${e.stderr}` : ''}`, { cause: err });
  }
}

/**
 * Builds a busybox-static image named `<registry.host>/<repo>:<tag>` (its own config, so its
 * manifest differs from BUSYBOX_IMAGE's), pushes it with `ctr images push --plain-http` from a
 * scratch containerd namespace, then removes it there again. Returns the reference.
 */
export async function pushImage(node: ContainerdNode, registry: TestRegistry, options: PushImageOptions): Promise<string> {
  const ref = `${registry.host}/${options.repo}:${options.tag}`;
  const applets = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' })
    .split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox' && !s.includes('/')).sort();
  const archive = path.join(registry.dir, `push-${options.repo.replace(/\W/g, '_')}-${options.tag}.oci.tar`);
  writeFileSync(archive, buildOciArchive(readFileSync(BUSYBOX_BINARY), applets, [{ ref, entrypoint: options.entrypoint, cmd: options.cmd ?? ['sh'] }]));
  try {
    await ctr(node, ['images', 'import', '--no-unpack', archive]);
    const user = options.user !== undefined ? ['--user', `${options.user}:${options.password ?? ''}`] : [];
    await ctr(node, ['images', 'push', '--plain-http', ...user, ref], true);
    await ctr(node, ['images', 'rm', '--sync', ref]);
  } finally {
    rmSync(archive, { force: true });
  }
  return ref;
}
