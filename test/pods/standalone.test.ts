/**
 * Standalone mode on a real containerd (private, in its own network namespace): static pod files
 * added, changed and removed; restart policies with crash-loop backoff; container logs on disk; a
 * bad manifest beside a good one; and a keelson restart that adopts running containers.
 */
import { mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createCriClient, type CriClient } from '../../cri/client';
import { createStaticPodsComponent, type KubeletComponent, type KubeletConfig } from '../../agent/pods';
import type { PodStatusSnapshot } from '../../agent/pods';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { execIn } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip'] });

const NODE = 'edge1';
const NODE_IP = '192.0.2.10';
/** host-local's gateway on the node's CNI bridge: a local address inside the node namespace. */
const BRIDGE_IP = '10.88.7.1';
let node: ContainerdNode | undefined;
let manifests = '';
let config: KubeletConfig;
const clients: CriClient[] = [];
let kubelet: KubeletComponent | undefined;
const logLines: Record<string, unknown>[] = [];

function newKubelet(): KubeletComponent {
  const cri = createCriClient({ endpoint: node!.endpoint });
  clients.push(cri);
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  return createStaticPodsComponent({ cri, config, logger });
}

interface PodOptions {
  command: string;
  restartPolicy?: string;
  grace?: number;
  env?: Record<string, string>;
  workingDir?: string;
  hostNetwork?: boolean;
  ports?: { containerPort: number; hostPort?: number }[];
  /** More container fields (securityContext, resources…). */
  container?: Record<string, unknown>;
}

function pod(name: string, opts: PodOptions): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      ...(opts.hostNetwork ? { hostNetwork: true } : {}),
      ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
      terminationGracePeriodSeconds: opts.grace ?? 1, // most test pods ignore SIGTERM (sleep as PID 1)
      containers: [{
        name: 'app',
        image: BUSYBOX_IMAGE,
        command: ['sh', '-c', opts.command],
        ...(opts.workingDir ? { workingDir: opts.workingDir } : {}),
        ...(opts.ports ? { ports: opts.ports } : {}),
        ...(opts.container ?? {}),
        env: Object.entries(opts.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
      }],
    },
  });
}

/** Atomic write (temp file + rename), as config tools write manifests. */
async function put(file: string, text: string) {
  const tmp = path.join(manifests, `.${file}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path.join(manifests, file));
}

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; pods: ${JSON.stringify(kubelet?.pods())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const podNamed = (name: string): PodStatusSnapshot | undefined => kubelet!.pods().find((p) => p.name === `${name}-${NODE}`);

async function runtimeContainers(uid: string) {
  const { containers } = await clients[0].listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });
  return containers;
}

async function runtimeSandboxes(uid: string) {
  const { items } = await clients[0].listPodSandbox({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });
  return items;
}

itest.before(async () => {
  node = await startContainerd({ podSubnet: '10.88.7.0/24' });
  manifests = await mkdtemp(path.join(os.tmpdir(), 'keelson-static-'));
  config = {
    staticPodPath: manifests,
    podLogsDir: node.podLogDir,
    rootDir: path.join(node.dir, 'keelson'),
    nodeName: NODE,
    nodeIP: NODE_IP,
    backoff: { initialMs: 1000, maxMs: 4000 },
    fileCheckFrequencyMs: 2000,
  };
  kubelet = newKubelet();
  await kubelet.start();
});

itest.afterEach.always((t) => {
  if (!t.passed) node?.markFailed();
});

itest.after.always(async () => {
  if (process.env.KT_DEBUG) for (const l of logLines) if ((l.level as number) >= 40) console.log(JSON.stringify(l));
  const debug = (msg: string) => process.env.KT_DEBUG && console.log(`${new Date().toISOString()} ${msg}`);
  debug('stopping kubelet');
  await Promise.race([kubelet?.stop(), new Promise((r) => setTimeout(r, 10_000).unref())]);
  for (const c of clients) c.close();
  debug('stopping containerd');
  await node?.stop();
  debug('stopped');
  if (manifests) await rm(manifests, { recursive: true, force: true });
});

itest.serial('a manifest file added → its pod runs and the container log has its output', async (t) => {
  await put('hello.json', pod('hello', { command: 'echo "greeting=$GREETING dir=$(pwd) host=$(hostname)"; grep -m1 nameserver /etc/resolv.conf; sleep 3600', env: { GREETING: 'hi-keelson' }, workingDir: '/tmp' }));
  const status = await waitFor('hello running', () => podNamed('hello')?.phase === 'Running' && podNamed('hello'));
  t.is(status.namespace, 'default');
  t.regex(status.podIP ?? '', /^10\.88\.7\.\d+$/);
  t.is(status.containers[0].state, 'running');
  t.is(status.containers[0].restartCount, 0);
  const logFile = path.join(node!.podLogDir, `default_hello-${NODE}_${status.uid}`, 'app', '0.log');
  const log = await waitFor('log output', async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.includes('greeting=') && text;
  });
  // CRI log format: <RFC3339Nano time> stdout F <line>
  t.regex(log, /^\S+ stdout F greeting=hi-keelson dir=\/tmp host=hello-edge1$/m);
  // standalone: the sandbox DNS comes from the host's resolv.conf
  const hostNameserver = (await readFile('/etc/resolv.conf', 'utf8')).split('\n').find((l) => /^nameserver\s/.test(l));
  if (hostNameserver) {
    await waitFor('nameserver line', async () => (await readFile(logFile, 'utf8')).includes('stdout F nameserver'));
    t.true((await readFile(logFile, 'utf8')).includes(`stdout F ${hostNameserver.trim()}`));
  }
  const [sandbox] = await runtimeSandboxes(status.uid);
  t.is(sandbox.labels['io.kubernetes.pod.name'], `hello-${NODE}`);
  t.is(sandbox.labels['io.kubernetes.pod.namespace'], 'default');
  const [container] = await runtimeContainers(status.uid);
  t.is(container.labels['io.kubernetes.container.name'], 'app');
  t.regex(container.annotations['io.kubernetes.container.hash'], /^[0-9a-f]{16}$/);
});

itest.serial('the file changed → the pod is replaced (new UID, new container); removed → stopped within its grace period', async (t) => {
  await put('change.json', pod('change', { command: 'echo v1; sleep 3600', grace: 2 }));
  const v1 = await waitFor('change v1 running', () => podNamed('change')?.phase === 'Running' && podNamed('change'));
  await put('change.json', pod('change', { command: 'echo v2; sleep 3600', grace: 2 }));
  const v2 = await waitFor('change v2 running', () => {
    const p = podNamed('change');
    return p && p.uid !== v1.uid && p.phase === 'Running' && p;
  });
  t.not(v2.containers[0].containerID, v1.containers[0].containerID);
  t.deepEqual(await runtimeSandboxes(v1.uid), []);
  t.deepEqual(await runtimeContainers(v1.uid), []);
  t.is((await runtimeContainers(v2.uid))[0].state, 'CONTAINER_RUNNING');

  // sleep as PID 1 ignores SIGTERM: only the SIGKILL after the 2 s grace period stops it
  const removedAt = Date.now();
  await unlink(path.join(manifests, 'change.json'));
  await waitFor('change removed from the runtime', async () => (await runtimeSandboxes(v2.uid)).length === 0 && !podNamed('change'));
  const took = Date.now() - removedAt;
  t.true(took >= 2000, `stopped after ${took} ms, before the grace period`);
  t.true(took < 10_000, `stopped after ${took} ms`);
  t.true(logLines.some((l) => l.msg === 'killing container' && l.gracePeriod === 2));
});

itest.serial('restartPolicy Always: a crashing container is restarted with growing backoff', async (t) => {
  await put('crash.json', pod('crash', { command: 'echo crash; exit 3' }));
  const seen: { restarts: number; at: number }[] = [];
  let sawBackoff = false;
  await waitFor('3 restarts', () => {
    const c = podNamed('crash')?.containers[0];
    if (c?.reason === 'CrashLoopBackOff') sawBackoff = true;
    if (c && (seen.length === 0 || seen[seen.length - 1].restarts !== c.restartCount)) seen.push({ restarts: c.restartCount, at: Date.now() });
    return (c?.restartCount ?? 0) >= 3;
  }, 30_000);
  t.true(sawBackoff);
  const at = (n: number) => seen.find((s) => s.restarts === n)?.at;
  // backoff 1 s then 2 s (base 1 s for the test); the real 10 s, 20 s… sequence is unit-tested
  const gap23 = at(3)! - at(2)!;
  t.true(gap23 >= 1500, `restart 2→3 after ${gap23} ms`);
  const status = podNamed('crash')!;
  t.is(status.phase, 'Running');
  const log = await readFile(path.join(node!.podLogDir, `default_crash-${NODE}_${status.uid}`, 'app', '3.log'), 'utf8').catch(() => '');
  t.regex(log, /stdout F crash/);
  await unlink(path.join(manifests, 'crash.json'));
});

itest.serial('restartPolicy OnFailure with exit 0 → not restarted, pod Succeeded', async (t) => {
  await put('job.json', pod('job', { command: 'echo done; exit 0', restartPolicy: 'OnFailure' }));
  const done = await waitFor('job succeeded', () => podNamed('job')?.phase === 'Succeeded' && podNamed('job'));
  t.is(done.containers[0].state, 'terminated');
  t.is(done.containers[0].exitCode, 0);
  await new Promise((r) => setTimeout(r, 2500));
  t.is(podNamed('job')!.containers[0].restartCount, 0);
  const containers = await runtimeContainers(done.uid);
  t.is(containers.length, 1);
  t.is(containers[0].state, 'CONTAINER_EXITED');
  await unlink(path.join(manifests, 'job.json'));
});

itest.serial('a bad manifest beside a good one: the good pod runs, the error names file and field', async (t) => {
  const bad = JSON.parse(pod('broken', { command: 'true' }));
  delete bad.spec.containers[0].image;
  await put('broken.json', JSON.stringify(bad));
  await put('good.json', pod('good', { command: 'sleep 3600' }));
  await waitFor('good running', () => podNamed('good')?.phase === 'Running');
  const problem = await waitFor('problem reported', () => kubelet!.manifestProblems().find((p) => p.file.endsWith('broken.json')));
  t.is(problem.field, 'spec.containers[0].image');
  t.regex(problem.message, /Required value/);
  t.is(podNamed('broken'), undefined);
  const logged = logLines.find((l) => l.level === 50 && typeof l.file === 'string' && l.file.endsWith('broken.json'));
  t.is(logged?.field, 'spec.containers[0].image');
  t.like(kubelet!.health(), { healthy: true });
  t.deepEqual((kubelet!.health().details!.manifestProblems as unknown[]).length, 1);
  await unlink(path.join(manifests, 'broken.json'));
});

itest.serial('hostPort mapping reaches the pod; a hostNetwork pod shares the node network', async (t) => {
  await put('web.json', pod('web', { command: 'mkdir -p /tmp/www && echo port-mapped > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www', ports: [{ containerPort: 8080, hostPort: 18080 }] }));
  await put('hostnet.json', pod('hostnet', { command: 'ls /sys/class/net; sleep 3600', hostNetwork: true }));
  await waitFor('web running', () => podNamed('web')?.phase === 'Running');
  const body = await waitFor('http through the host port', async () => {
    try {
      return (await execIn(node!.netns, 'wget', ['-qO-', '-T', '2', `http://${BRIDGE_IP}:18080/index.html`])).stdout;
    } catch {
      return undefined;
    }
  }, 15_000);
  t.is(body.trim(), 'port-mapped');
  const hostnet = await waitFor('hostnet running', () => podNamed('hostnet')?.phase === 'Running' && podNamed('hostnet'));
  t.is(hostnet.podIP, NODE_IP);
  const log = await waitFor('hostnet log', async () => {
    const text = await readFile(path.join(node!.podLogDir, `default_hostnet-${NODE}_${hostnet.uid}`, 'app', '0.log'), 'utf8').catch(() => '');
    return text.includes('stdout F lo') && text;
  });
  // the node namespace's CNI bridge is visible: the pod is not in a namespace of its own
  t.regex(log, /stdout F cni0$/m);
  await unlink(path.join(manifests, 'web.json'));
  await unlink(path.join(manifests, 'hostnet.json'));
});

itest.serial('runAsUser and resource limits reach the container (user, memory limit, CFS quota)', async (t) => {
  const show = 'id -u; for f in memory.max memory/memory.limit_in_bytes cpu.max cpu/cpu.cfs_quota_us; do [ -r /sys/fs/cgroup/$f ] && echo "$f=$(cat /sys/fs/cgroup/$f)"; done; sleep 3600';
  await put('limits.json', pod('limits', {
    command: show,
    container: { securityContext: { runAsUser: 1000 }, resources: { limits: { cpu: '500m', memory: '64Mi' } } },
  }));
  const status = await waitFor('limits running', () => podNamed('limits')?.phase === 'Running' && podNamed('limits'));
  const logFile = path.join(node!.podLogDir, `default_limits-${NODE}_${status.uid}`, 'app', '0.log');
  const log = await waitFor('limits log', async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return /(cpu\.max|cfs_quota_us)=/.test(text) && text;
  });
  t.regex(log, /stdout F 1000$/m);
  t.regex(log, /stdout F (memory\.max|memory\/memory\.limit_in_bytes)=67108864$/m);
  t.regex(log, /stdout F (cpu\.max=50000 100000|cpu\/cpu\.cfs_quota_us=50000)$/m);
  await unlink(path.join(manifests, 'limits.json'));
});

itest.serial('keelson stop + a new instance: running containers adopted, not restarted', async (t) => {
  const before = await waitFor('hello and good running', () => {
    const pods = kubelet!.pods().filter((p) => p.phase === 'Running' && ['hello', 'good'].some((n) => p.name === `${n}-${NODE}`));
    return pods.length === 2 && pods;
  });
  await kubelet!.stop();
  kubelet = newKubelet();
  await kubelet.start();
  await new Promise((r) => setTimeout(r, 3000)); // three relists
  for (const p of before) {
    const after = await waitFor(`${p.name} status`, () => kubelet!.pods().find((q) => q.uid === p.uid && q.phase === 'Running'));
    t.is(after.containers[0].containerID, p.containers[0].containerID);
    t.is(after.containers[0].restartCount, p.containers[0].restartCount);
    t.is(after.containers[0].startedAt, p.containers[0].startedAt);
    const containers = await runtimeContainers(p.uid);
    t.is(containers.length, 1);
    t.is(containers[0].state, 'CONTAINER_RUNNING');
  }
});
