/**
 * Health and lifecycle on a real containerd (private, in its own network namespace), with keelson's
 * kubelet running as a child process inside that namespace (health-node.ts) so that probes reach pod
 * IPs as on a real node: the node's pod network comes from the bridge config keelson writes for its
 * pod CIDR; httpGet readiness toggles `ready`; a failing exec liveness probe restarts the container;
 * a tcpSocket startup probe gates liveness; a gRPC probe talks to a health server in the node
 * namespace; preStop runs before SIGTERM; a container death is noticed within about a second; dead
 * containers and an unused image are garbage-collected; a bad probe spec shows in the pod status.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PodStatus } from 'kubernetes-types/core/v1';
import pino from 'pino';
import { createCriClient, type CriClient } from '../../cri/client';
import { createCriRuntime } from '../../agent/pods/cri-runtime';
import { ensureCniConfig, KEELSON_CNI_FILE, renderBridgeConflist } from '../../agent/pods/cni-config';
import { runtimeImageFsUsage } from '../../agent/pods/gc';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_BINARY, BUSYBOX_IMAGE, buildOciArchive, PAUSE_IMAGE } from '../harness/images';
import { addAddress, createNetns, deleteNetns, netnsPath } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import type { RunnerConfig } from './health-node';

const execFileAsync = promisify(execFile);
const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip', 'ctr'] });

const NODE = 'edge1';
const NODE_IP = '192.0.2.20';
const POD_CIDR = '10.88.9.0/24';
const GRPC_PORT = 50051;
const EXTRA_IMAGE = 'docker.io/library/unused:keelson-test';

let ns = '';
let node: ContainerdNode | undefined;
let cri: CriClient;
let manifests = '';
let fsUsageFile = '';
let runner: ChildProcess | undefined;
let grpcServer: ChildProcess | undefined;
const logs: Record<string, unknown>[] = [];
const statuses = new Map<string, { uid: string; at: number; status: PodStatus }[]>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) {
      const state = runner ? `kubelet ${runner.exitCode === null && runner.signalCode === null ? 'running' : `exited (${runner.exitCode ?? runner.signalCode})`}` : 'no kubelet';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${state}; last log: ${JSON.stringify(logs.slice(-3))}`);
    }
    await sleep(100);
  }
}

const latest = (name: string) => statuses.get(`${name}-${NODE}`)?.at(-1);
const containerOf = (name: string) => latest(name)?.status.containerStatuses?.[0];
const idOf = (containerID: string | undefined) => containerID?.replace(/^[a-z]+:\/\//, '') ?? '';

async function put(name: string, spec: Record<string, unknown>, container: Record<string, unknown>) {
  const text = JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { terminationGracePeriodSeconds: 1, ...spec, containers: [{ name: 'app', image: BUSYBOX_IMAGE, ...container }] },
  });
  const tmp = path.join(manifests, `.${name}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path.join(manifests, `${name}.json`));
}

async function execInContainer(containerId: string, cmd: string[]) {
  const res = await cri.execSync({ container_id: containerId, cmd, timeout: 5 });
  if (res.exit_code !== 0) throw new Error(`${cmd.join(' ')} exited ${res.exit_code}: ${res.stderr.toString()}`);
}

async function setFsUsage(usedPercent: number) {
  await writeFile(fsUsageFile, JSON.stringify({ capacityBytes: 1000, availableBytes: 1000 - usedPercent * 10 }));
}

async function networkReady(): Promise<boolean> {
  const res = await cri.status();
  return res.status?.conditions.find((c) => c.type === 'NetworkReady')?.status === true;
}

/** An image of its own (same busybox layer, another config), so that nothing uses it. */
async function importExtraImage() {
  const applets = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' }).split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox').sort();
  const archive = path.join(node!.dir, 'extra-image.tar');
  await writeFile(archive, buildOciArchive(await readFile(BUSYBOX_BINARY), applets, [{ ref: EXTRA_IMAGE, cmd: ['true'] }]));
  await execFileAsync('ctr', ['-n', 'k8s.io', '--address', node!.socket, 'images', 'import', '--snapshotter', node!.snapshotter, archive], { timeout: 60_000 });
}

async function imageTags(): Promise<string[]> {
  return (await cri.listImages()).images.flatMap((i) => i.repo_tags);
}

itest.before(async () => {
  ns = await createNetns();
  await addAddress(ns, 'lo', `${NODE_IP}/32`); // no dummy module here: the node IP lives on the namespace's loopback
  node = await startContainerd({ netns: ns, podSubnet: '10.88.8.0/24' });
  cri = createCriClient({ endpoint: node.endpoint });
  // the node starts without a pod network config: keelson writes one for its pod CIDR
  const confDir = path.join(node.dir, 'cni', 'net.d');
  await unlink(path.join(confDir, '10-keelson-test.conflist'));
  await waitFor('NetworkReady false', async () => !(await networkReady()), 10_000);
  const outcome = await ensureCniConfig({
    podCIDR: POD_CIDR, confDir, bridge: 'kbr0', ipamDataDir: path.join(node.dir, 'cni', 'ipam-keelson'), runtime: createCriRuntime(cri), logger: pino({ level: 'silent' }),
  });
  if (outcome !== 'written') throw new Error(`ensureCniConfig: ${outcome}`);
  await waitFor('NetworkReady true', () => networkReady(), 10_000);

  manifests = await mkdtemp(path.join(os.tmpdir(), 'keelson-health-'));
  fsUsageFile = path.join(manifests, '..', `${path.basename(manifests)}-fs-usage.json`);
  await setFsUsage(50);
  grpcServer = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', process.execPath, path.join(__dirname, 'grpc-health-server.js'), NODE_IP, String(GRPC_PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: grpcServer!.stdout! }).once('line', (line) => (line.startsWith('listening') ? resolve() : reject(new Error(line))));
  });
  const config: RunnerConfig = {
    endpoint: node.endpoint,
    fsUsageFile,
    kubelet: {
      staticPodPath: manifests, podLogsDir: node.podLogDir, rootDir: path.join(node.dir, 'keelson'), nodeName: NODE, nodeIP: NODE_IP,
      backoff: { initialMs: 500, maxMs: 1000 }, fileCheckFrequencyMs: 2000, containerGCPeriodMs: 1000, imageGC: { periodMs: 1000, minAgeMs: 0 },
      // a config exists (written above) in the folder containerd reports: the kubelet must find it and leave it alone
      podCIDR: '10.88.10.0/24',
    },
  };
  runner = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', process.execPath, path.join(__dirname, 'health-node.js'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: runner.stdout! }).on('line', (line) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch {
      return;
    }
    if (rec.kind === 'status') {
      const name = String(rec.name);
      const list = statuses.get(name) ?? [];
      list.push({ uid: String(rec.uid), at: Number(rec.at), status: rec.status as PodStatus });
      statuses.set(name, list);
    } else logs.push(rec);
  });
  await waitFor('kubelet started', () => logs.some((l) => l.kind === 'started' || l.kind === 'failed'), 20_000);
  if (logs.some((l) => l.kind === 'failed')) throw new Error(`kubelet failed: ${JSON.stringify(logs.at(-1))}`);
});

itest.afterEach.always((t) => {
  if (!t.passed) node?.markFailed();
});

itest.after.always(async () => {
  if (process.env.KT_DEBUG) for (const l of logs) if ((l.level as number) >= (process.env.KT_DEBUG === 'all' ? 0 : 40)) console.log(JSON.stringify(l));
  for (const child of [runner, grpcServer]) {
    if (!child || child.exitCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(timer);
  }
  cri?.close();
  await node?.stop();
  if (ns) await deleteNetns(ns);
  if (manifests) await rm(manifests, { recursive: true, force: true });
  if (fsUsageFile) await rm(fsUsageFile, { force: true });
});

itest.serial('the node pod network comes from the bridge config keelson wrote for its pod CIDR; an existing config is left alone', async (t) => {
  const confDir = path.join(node!.dir, 'cni', 'net.d');
  const text = await readFile(path.join(confDir, KEELSON_CNI_FILE), 'utf8');
  t.is(text, renderBridgeConflist({ podCIDR: POD_CIDR, bridge: 'kbr0', ipamDataDir: path.join(node!.dir, 'cni', 'ipam-keelson') }));
  // the kubelet (podCIDR 10.88.10.0/24 in its config) found it and did not overwrite it
  t.true(logs.some((l) => l.msg === 'CNI config present; not writing one' && l.confDir === confDir));
  await put('net', {}, { command: ['sleep', '3600'] });
  const status = await waitFor('net running', () => latest('net')?.status.phase === 'Running' && latest('net'));
  t.regex(status.status.podIP ?? '', /^10\.88\.9\.\d+$/);
  await unlink(path.join(manifests, 'net.json'));
});

itest('httpGet readiness (named port) toggles ready as the file it serves comes and goes', async (t) => {
  await put('web', {}, {
    command: ['sh', '-c', 'mkdir -p /tmp/www && echo ok > /tmp/www/ready && exec httpd -f -p 8080 -h /tmp/www'],
    ports: [{ name: 'http', containerPort: 8080 }],
    readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
  });
  await waitFor('web ready', () => containerOf('web')?.ready === true);
  t.like(latest('web')!.status.conditions!.find((c) => c.type === 'Ready'), { status: 'True' });
  const id = idOf(containerOf('web')!.containerID);
  await execInContainer(id, ['rm', '/tmp/www/ready']);
  await waitFor('web not ready', () => containerOf('web')?.ready === false, 10_000);
  t.like(latest('web')!.status.conditions!.find((c) => c.type === 'Ready'), { status: 'False', reason: 'ContainersNotReady' });
  t.is(containerOf('web')!.state?.running !== undefined, true);
  await execInContainer(id, ['sh', '-c', 'echo ok > /tmp/www/ready']);
  await waitFor('web ready again', () => containerOf('web')?.ready === true, 10_000);
  t.is(containerOf('web')!.restartCount, 0);
  await unlink(path.join(manifests, 'web.json'));
});

itest('a failing exec liveness probe restarts the container: restartCount grows, lastState Terminated', async (t) => {
  await put('live', {}, {
    command: ['sh', '-c', 'touch /tmp/alive; exec sleep 3600'],
    livenessProbe: { exec: { command: ['cat', '/tmp/alive'] }, periodSeconds: 1, failureThreshold: 2 },
  });
  const first = await waitFor('live running', () => containerOf('live')?.state?.running && containerOf('live'));
  await sleep(2500);
  t.is(containerOf('live')!.restartCount, 0, 'a passing liveness probe leaves the container alone');
  await execInContainer(idOf(first.containerID), ['rm', '/tmp/alive']);
  const restarted = await waitFor('live restarted', () => containerOf('live')?.restartCount === 1 && containerOf('live')?.state?.running && containerOf('live'), 15_000);
  t.not(restarted.containerID, first.containerID);
  t.is(restarted.lastState?.terminated?.containerID, first.containerID, JSON.stringify(restarted));
  t.true([137, 143].includes(restarted.lastState!.terminated!.exitCode));
  t.true(logs.some((l) => l.msg === 'killing container' && l.pod === `default/live-${NODE}` && l.reason === 'Container app failed liveness probe, will be restarted'));
  await unlink(path.join(manifests, 'live.json'));
});

itest('a tcpSocket startup probe holds liveness back until the server listens', async (t) => {
  await put('slowstart', {}, {
    command: ['sh', '-c', 'sleep 4; exec httpd -f -p 8081 -h /tmp'],
    startupProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1, failureThreshold: 20 },
    // would kill the container within a second if it ran before the startup probe succeeded
    livenessProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1, failureThreshold: 1 },
  });
  const early = await waitFor('slowstart running', () => containerOf('slowstart')?.state?.running && containerOf('slowstart'));
  t.like(early, { started: false, ready: false });
  const started = await waitFor('slowstart started', () => containerOf('slowstart')?.started === true && containerOf('slowstart'), 15_000);
  t.is(started.ready, true);
  await sleep(2000);
  t.is(containerOf('slowstart')!.restartCount, 0);
  t.is(containerOf('slowstart')!.containerID, early.containerID);
  await unlink(path.join(manifests, 'slowstart.json'));
});

itest('a grpc readiness probe follows a grpc.health.v1 server in the node namespace', async (t) => {
  await put('grpcpod', { hostNetwork: true }, {
    command: ['sleep', '3600'],
    readinessProbe: { grpc: { port: GRPC_PORT }, periodSeconds: 1, failureThreshold: 1 },
  });
  await waitFor('grpcpod ready', () => containerOf('grpcpod')?.ready === true, 15_000);
  t.is(latest('grpcpod')!.status.podIP, NODE_IP);
  grpcServer!.stdin!.write('NOT_SERVING\n');
  await waitFor('grpcpod not ready', () => containerOf('grpcpod')?.ready === false, 10_000);
  grpcServer!.stdin!.write('SERVING\n');
  await waitFor('grpcpod ready again', () => containerOf('grpcpod')?.ready === true, 10_000);
  t.pass();
  await unlink(path.join(manifests, 'grpcpod.json'));
});

itest('preStop runs before SIGTERM, within the grace period', async (t) => {
  await put('graceful', { terminationGracePeriodSeconds: 5 }, {
    command: ['sh', '-c', 'trap \'echo "got-term prestop=$(cat /tmp/prestop 2>/dev/null)"; exit 0\' TERM; echo started; while true; do sleep 1 & wait $!; done'],
    lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo ran > /tmp/prestop; echo prestop-hook > /proc/1/fd/1; sleep 1'] } } },
    livenessProbe: { exec: { command: ['sh', '-c', 'test ! -f /tmp/die'] }, periodSeconds: 1, failureThreshold: 1 },
  });
  const first = await waitFor('graceful running', () => containerOf('graceful')?.state?.running && containerOf('graceful'));
  await execInContainer(idOf(first.containerID), ['touch', '/tmp/die']);
  const after = await waitFor('graceful restarted', () => containerOf('graceful')?.restartCount === 1 && containerOf('graceful'), 20_000);
  // the TERM trap saw the file preStop wrote, and exited 0 well before the SIGKILL
  t.is(after.lastState?.terminated?.exitCode, 0);
  const uid = latest('graceful')!.uid;
  const log = await readFile(path.join(node!.podLogDir, `default_graceful-${NODE}_${uid}`, 'app', '0.log'), 'utf8');
  const hookAt = log.indexOf('stdout F prestop-hook');
  const termAt = log.indexOf('stdout F got-term prestop=ran');
  t.true(hookAt >= 0 && termAt > hookAt, log);
  const kill = logs.find((l) => l.msg === 'killing container' && l.pod === `default/graceful-${NODE}`)!;
  t.true((kill.gracePeriod as number) < 5 && (kill.gracePeriod as number) >= 2, `grace left ${kill.gracePeriod}`);
  await unlink(path.join(manifests, 'graceful.json'));
});

itest('a container death is noticed within about a second', async (t) => {
  await put('dies', { restartPolicy: 'Never' }, { command: ['sh', '-c', 'sleep 2; exit 3'] });
  const exited = await waitFor('exit logged', () => logs.find((l) => l.msg === 'container exited' && l.pod === `default/dies-${NODE}`), 20_000);
  const { status } = await cri.containerStatus({ container_id: String(exited.containerId) });
  const finishedMs = Number(BigInt(status!.finished_at) / 1_000_000n);
  const lag = (exited.time as number) - finishedMs;
  t.log(`death noticed ${lag} ms after the exit`);
  t.true(lag < 1500, `noticed after ${lag} ms`);
  t.is(exited.exitCode, 3);
  await waitFor('dies failed', () => latest('dies')?.status.phase === 'Failed');
  await unlink(path.join(manifests, 'dies.json'));
});

itest('a bad probe spec (unknown port name) is reported in the pod status; the pod and the others run on', async (t) => {
  await put('badprobe', {}, { command: ['sleep', '3600'], readinessProbe: { httpGet: { port: 'nosuchport' }, periodSeconds: 1 } });
  const status = await waitFor('probe problem in status', () => {
    const s = latest('badprobe')?.status;
    return s?.conditions?.find((c) => c.type === 'Ready')?.message?.includes('nosuchport') && s;
  }, 15_000);
  t.is(status.phase, 'Running');
  t.is(status.containerStatuses![0].ready, false);
  t.regex(status.conditions!.find((c) => c.type === 'Ready')!.message!, /app: Readiness probe errored: readinessProbe\.httpGet\.port: port name "nosuchport" not found/);
  await unlink(path.join(manifests, 'badprobe.json'));
});

itest('garbage collection: a crash-looping pod keeps one dead container; an unused image goes under disk pressure, in-use ones stay', async (t) => {
  await put('crashy', {}, { command: ['sh', '-c', 'exit 1'] });
  await waitFor('3 restarts', () => (containerOf('crashy')?.restartCount ?? 0) >= 3, 30_000);
  const uid = latest('crashy')!.uid;
  const { containers } = await cri.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });
  t.true(containers.length <= 2, `${containers.length} containers`);
  t.true(containers.filter((c) => c.state === 'CONTAINER_EXITED').length <= 2, 'at most the newest dead instance (and one dying) remain');

  // the default usage reader (CRI ImageFsInfo mount point + statfs) works against this containerd
  const real = await runtimeImageFsUsage(createCriRuntime(cri))();
  t.true((real?.capacityBytes ?? 0) > 0 && real!.availableBytes <= real!.capacityBytes, JSON.stringify(real));

  await importExtraImage();
  t.true((await imageTags()).includes(EXTRA_IMAGE), 'the extra image was imported');
  await setFsUsage(90);
  try {
    await waitFor('extra image removed', async () => !(await imageTags()).includes(EXTRA_IMAGE), 15_000);
  } finally {
    await setFsUsage(50);
  }
  const tags = await imageTags();
  t.true(tags.includes(BUSYBOX_IMAGE), 'the image in use stays');
  t.true(tags.includes(PAUSE_IMAGE), 'the sandbox image is never collected');
  // The kubelet runs as a child process: its log line may arrive after containerd already shows the image gone.
  t.true(await waitFor('the removal logged', () => logs.some((l) => l.msg === 'removed unused image' && l.image === EXTRA_IMAGE), 5_000), 'removed unused image is logged');
  await unlink(path.join(manifests, 'crashy.json'));
  await waitFor('crashy removed', async () => (await cri.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } })).containers.length === 0);
});
