/**
 * A private containerd (Debian's /usr/bin/containerd, 1.6+) for tests: its own root, state dir,
 * socket and config under a temp folder, the CRI plugin on, sandbox image = the test pause image,
 * overlayfs (native if overlay mounts fail here), and a bridge + host-local + portmap CNI conflist
 * (Debian's plugins in /usr/lib/cni; the CRI plugin sets up loopback itself with the `loopback`
 * plugin from the same folder) for one pod subnet. It runs inside the simulated node's network
 * namespace (`nsenter --net=/var/run/netns/NAME`), so the CNI bridge, its routes and rules stay there.
 *
 * Usage:
 *   import { startContainerd } from '../harness/containerd';
 *   import { createCriClient } from '../../cri/client';
 *   let node: ContainerdNode;
 *   test.before(async () => { node = await startContainerd({ podSubnet: '10.88.1.0/24' }); });
 *   test.afterEach.always((t) => { if (!t.passed) node.markFailed(); });
 *   test.after.always(async () => { await node?.stop(); });   // logs kept (path printed) if a test failed
 *   const cri = createCriClient({ endpoint: node.endpoint });  // BUSYBOX_IMAGE, PAUSE_IMAGE are imported
 *   // pod logs: use a log_directory under node.podLogDir; node.restart() restarts containerd only.
 *   // registries: the CRI plugin reads `${node.registryHostsDir}/<host:port>/hosts.toml` at each pull
 *   // (containerd's config_path; empty by default, so pulls behave as without it).
 * Without `netns`, a fresh namespace is created and deleted by stop(). stop() removes the pods it
 * can through CRI, stops containerd, kills leftover containers and shims, unmounts everything under
 * the temp folder and deletes it. A process-exit hook does the same if a test never called stop().
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCriClient } from '../../cri/client';
import { importImages, PAUSE_IMAGE } from './images';
import { createNetns, deleteNetns, netnsPath } from './netns';

export const CONTAINERD_BINARY = '/usr/bin/containerd';
export const CNI_BIN_DIR = '/usr/lib/cni';

export interface StartContainerdOptions {
  /** Network namespace of the simulated node; created (and deleted on stop) when omitted. */
  netns?: string;
  /** Pod subnet of this node for host-local IPAM (default 10.88.0.0/24). */
  podSubnet?: string;
  /** Bridge name inside the node namespace (default `cni0`). */
  bridge?: string;
  /** Force a snapshotter; default overlayfs, falling back to native when overlay cannot mount. */
  snapshotter?: 'overlayfs' | 'native';
  /** Import BUSYBOX_IMAGE and PAUSE_IMAGE after start (default true). */
  importImages?: boolean;
  /** containerd --log-level (default info). */
  logLevel?: string;
  /** How long to wait for the CRI plugin to be ready, ms (default 20 000). */
  readyTimeoutMs?: number;
  /** runc binary the shim runs (default `runc` from PATH); a wrapper script helps debugging. */
  runcBinary?: string;
}

export interface ContainerdNode {
  /** Socket path, and the same as a CRI endpoint (`unix://...`). */
  socket: string;
  endpoint: string;
  /** Temp folder holding everything below. */
  dir: string;
  root: string;
  state: string;
  configPath: string;
  logPath: string;
  /** A folder for pod log directories (use `${podLogDir}/<ns>_<name>_<uid>`). */
  podLogDir: string;
  /** The CRI registry config_path: `<host:port>/hosts.toml` files here apply to the next pull, no restart. */
  registryHostsDir: string;
  netns: string;
  podSubnet: string;
  snapshotter: 'overlayfs' | 'native';
  /** containerd's pid, or undefined while stopped. */
  pid(): number | undefined;
  /** Marks the run as failed: stop() then keeps the log and prints where it is. */
  markFailed(): void;
  /** Restarts containerd only (SIGTERM, wait, start, wait for CRI ready); containers keep running. */
  restart(): Promise<void>;
  /** Stops containerd without cleaning up (to test a runtime that is down); start again with restart(). */
  kill(): Promise<void>;
  /** Removes pods, stops containerd, kills leftovers, unmounts, deletes the temp folder (and an owned netns). */
  stop(options?: { keepLogs?: boolean }): Promise<void>;
}

let nodeCounter = 0;
const liveNodes = new Set<{ teardownSync(): void }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const node of liveNodes) {
      try {
        node.teardownSync();
      } catch {
        // best effort at exit
      }
    }
  });
}

function tryExec(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 15_000 });
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Mount points at or below `dir`, deepest (latest mounted) first. */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points: string[] = [];
  for (const line of lines) {
    const mountPoint = line.split(' ')[4];
    if (!mountPoint) continue;
    const decoded = mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === dir || decoded.startsWith(dir + '/')) points.push(decoded);
  }
  return points.reverse();
}

function unmountAll(dir: string): void {
  for (let pass = 0; pass < 3; pass++) {
    const points = mountsUnder(dir);
    if (!points.length) return;
    for (const p of points) {
      if (tryExec('umount', [p]) === undefined) tryExec('umount', ['-l', p]);
    }
  }
}

function overlayWorks(dir: string): boolean {
  const base = path.join(dir, 'overlay-probe');
  const [lower, upper, work, merged] = ['l', 'u', 'w', 'm'].map((d) => path.join(base, d));
  for (const d of [lower, upper, work, merged]) mkdirSync(d, { recursive: true });
  const ok = tryExec('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]) !== undefined;
  if (ok) tryExec('umount', [merged]);
  rmSync(base, { recursive: true, force: true });
  return ok;
}

/** Pids of processes whose command line contains `needle` as one argument. */
function pidsWithArg(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function renderConfig(p: { dir: string; root: string; state: string; socket: string; snapshotter: string; cniConfDir: string; runcRoot: string; runcBinary: string; registryHostsDir: string }): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${JSON.stringify(p.root)}
state = ${JSON.stringify(p.state)}
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ${JSON.stringify(p.socket)}

[ttrpc]
  address = ${JSON.stringify(p.socket + '.ttrpc')}

[debug]
  address = ${JSON.stringify(path.join(p.dir, 'debug.sock'))}

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(path.join(p.dir, 'opt'))}

[${cri}]
  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}
  disable_apparmor = true
  enable_selinux = false
  # Root in some VMs lacks CAP_SYS_RESOURCE: never ask runc for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  # Pod network namespaces live under the state dir, so teardown's unmount removes leftovers too.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384

  [${cri}.containerd]
    snapshotter = ${JSON.stringify(p.snapshotter)}
    default_runtime_name = "runc"

    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = ${JSON.stringify(p.runcBinary)}
        Root = ${JSON.stringify(p.runcRoot)}

  [${cri}.cni]
    bin_dir = ${JSON.stringify(CNI_BIN_DIR)}
    conf_dir = ${JSON.stringify(p.cniConfDir)}
    max_conf_num = 1

  [${cri}.registry]
    config_path = ${JSON.stringify(p.registryHostsDir)}
`;
}

function renderCniConflist(p: { name: string; bridge: string; podSubnet: string; ipamDir: string }): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: p.name,
      plugins: [
        {
          type: 'bridge',
          bridge: p.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: p.podSubnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: p.ipamDir },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export async function startContainerd(options: StartContainerdOptions = {}): Promise<ContainerdNode> {
  installExitHook();
  nodeCounter += 1;
  const ownsNetns = options.netns === undefined;
  const netns = options.netns ?? (await createNetns());
  if (!existsSync(netnsPath(netns))) throw new Error(`startContainerd: network namespace ${netns} does not exist`);

  const dir = mkdtempSync(path.join(os.tmpdir(), `kt-ctrd-${process.pid}-${nodeCounter}-`));
  const root = path.join(dir, 'root');
  const state = path.join(dir, 'state');
  const socket = path.join(dir, 'containerd.sock');
  const cniConfDir = path.join(dir, 'cni', 'net.d');
  const ipamDir = path.join(dir, 'cni', 'ipam');
  const runcRoot = path.join(dir, 'runc');
  const podLogDir = path.join(dir, 'pods');
  const registryHostsDir = path.join(dir, 'certs.d');
  const configPath = path.join(dir, 'config.toml');
  const logPath = path.join(dir, 'containerd.log');
  for (const d of [root, state, cniConfDir, ipamDir, runcRoot, podLogDir, registryHostsDir]) mkdirSync(d, { recursive: true });

  const podSubnet = options.podSubnet ?? '10.88.0.0/24';
  const snapshotter = options.snapshotter ?? (overlayWorks(dir) ? 'overlayfs' : 'native');
  writeFileSync(configPath, renderConfig({ dir, root, state, socket, snapshotter, cniConfDir, runcRoot, runcBinary: options.runcBinary ?? 'runc', registryHostsDir }));
  writeFileSync(
    path.join(cniConfDir, '10-keelson-test.conflist'),
    renderCniConflist({ name: `keelson-${netns}`, bridge: options.bridge ?? 'cni0', podSubnet, ipamDir }),
  );

  let child: ChildProcess | undefined;
  let failed = false;
  let tornDown = false;
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;

  function launch(): void {
    const fd = openSync(logPath, 'a');
    try {
      child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', CONTAINERD_BINARY, '--config', configPath, '--log-level', options.logLevel ?? 'info'], {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
      });
    } finally {
      closeSync(fd);
    }
    const c = child;
    c.once('exit', () => {
      if (child === c) child = undefined;
    });
  }

  function logTail(lines = 40): string {
    try {
      return readFileSync(logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async function waitReady(): Promise<void> {
    const cri = createCriClient({ endpoint: socket, timeoutMs: 2000 });
    const deadline = Date.now() + readyTimeoutMs;
    let last = 'not started';
    try {
      while (Date.now() < deadline) {
        if (!child) throw new Error(`containerd exited during start (log ${logPath}):\n${logTail()}`);
        if (existsSync(socket)) {
          try {
            const res = await cri.status();
            const conditions = res.status?.conditions ?? [];
            const notReady = conditions.filter((c) => !c.status);
            if (conditions.length && !notReady.length) return;
            last = notReady.map((c) => `${c.type}: ${c.reason} ${c.message}`).join('; ') || 'no conditions';
          } catch (err) {
            last = (err as Error).message;
          }
        }
        await sleep(100);
      }
      throw new Error(`containerd at ${socket} not ready after ${readyTimeoutMs} ms (${last}); log ${logPath}:\n${logTail()}`);
    } finally {
      cri.close();
    }
  }

  async function terminate(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) {
      child = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    child = undefined;
  }

  async function removePods(): Promise<void> {
    if (!child || !existsSync(socket)) return;
    const cri = createCriClient({ endpoint: socket, timeoutMs: 10_000, slowTimeoutMs: 15_000 });
    try {
      const { items } = await cri.listPodSandbox();
      for (const pod of items) {
        await cri.stopPodSandbox({ pod_sandbox_id: pod.id }).catch(() => {});
        await cri.removePodSandbox({ pod_sandbox_id: pod.id }).catch(() => {});
      }
    } catch {
      // containerd not answering: the sync teardown kills what is left
    } finally {
      cri.close();
    }
  }

  const handle = {
    teardownSync(): void {
      if (tornDown) return;
      tornDown = true;
      liveNodes.delete(handle);
      if (child?.pid && isAlive(child.pid)) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      // Containers first (a killed shim would orphan them), then the shims.
      const runcNsRoot = path.join(runcRoot, 'k8s.io');
      if (existsSync(runcNsRoot)) {
        const ids = (tryExec('runc', ['--root', runcNsRoot, 'list', '-q']) ?? '').split('\n').filter(Boolean);
        for (const id of ids) tryExec('runc', ['--root', runcNsRoot, 'delete', '--force', id]);
      }
      for (const pid of pidsWithArg(socket)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      unmountAll(dir);
      if (failed) {
        const keepDir = path.join(os.tmpdir(), 'keelson-test-logs');
        mkdirSync(keepDir, { recursive: true });
        const kept = path.join(keepDir, `containerd-${netns}-${Date.now()}.log`);
        try {
          copyFileSync(logPath, kept);
          console.error(`containerd log of failed test run kept at ${kept}`);
        } catch {
          // no log
        }
      }
      if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
      if (ownsNetns) tryExec('ip', ['netns', 'delete', netns]);
    },
  };
  liveNodes.add(handle);

  launch();
  try {
    await waitReady();
    if (options.importImages !== false) await importImages({ socket, snapshotter });
  } catch (err) {
    failed = true;
    await terminate().catch(() => {});
    handle.teardownSync();
    throw err;
  }

  return {
    socket,
    endpoint: `unix://${socket}`,
    dir,
    root,
    state,
    configPath,
    logPath,
    podLogDir,
    registryHostsDir,
    netns,
    podSubnet,
    snapshotter,
    pid: () => child?.pid,
    markFailed() {
      failed = true;
    },
    async restart() {
      await terminate();
      launch();
      await waitReady();
    },
    async kill() {
      await terminate();
    },
    async stop(opts = {}) {
      if (opts.keepLogs) failed = true;
      await removePods();
      await terminate();
      handle.teardownSync();
      if (ownsNetns) await deleteNetns(netns).catch(() => {});
    },
  };
}
