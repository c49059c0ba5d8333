/**
 * The kubelet API on a real containerd: a static busybox pod run by the kubelet component, its
 * mirror in the test apiserver (which forwards pods/log, exec and port-forward to the node's
 * kubelet), and the real kubectl. Authentication against the test apiserver's CA and TokenReview,
 * authorization through its SubjectAccessReview.
 *
 * containerd runs in the node's own network namespace, so its streaming server (127.0.0.1 there)
 * is reached through netns-relay.js, a byte relay inside that namespace behind a unix socket.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createCriClient, type CriClient } from '../../cri/client';
import { createStaticPodsComponent, type KubeletComponent } from '../../agent/pods';
import { createKubeClient, type KubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { ensureSelfSignedCertificate } from '../../agent/server/self-signed';
import { createApiReviewer, createKubeletServer, createHealthzServer, type KubeletServer, type HealthzServer } from '../../agent/server';
import { startTestApiserver, type TestApiserver, type IssuedCert } from '../harness/apiserver';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { spawnIn } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip', 'kubectl'] });
const KUBECTL = 'kubectl';
const NODE = 'edge-api';
const POD = `web-${NODE}`;

let node: ContainerdNode | undefined;
let api: TestApiserver | undefined;
let cri: CriClient | undefined;
let kubelet: KubeletComponent | undefined;
let server: KubeletServer | undefined;
let healthz: HealthzServer | undefined;
let client: KubeClient | undefined;
let relay: ChildProcess | undefined;
let workDir = '';
let admin: IssuedCert;
const logger = pino({ level: process.env.KT_DEBUG ? 'debug' : 'silent' });

function kubectl(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(KUBECTL, ['--kubeconfig', api!.kubeconfigPath, ...args], { timeout: 20_000, env: { ...process.env, HOME: workDir } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, unknown>;
}

function kubeletGet(pathname: string, auth: { token?: string; cert?: IssuedCert } = {}): Promise<Reply> {
  const opts: RequestOptions = {
    host: '127.0.0.1',
    port: server!.port(),
    path: pathname,
    rejectUnauthorized: false,
    agent: false,
    headers: auth.token ? { Authorization: `Bearer ${auth.token}` } : {},
    ...(auth.cert ? { cert: auth.cert.certPem, key: auth.cert.keyPem } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pods: ${JSON.stringify(kubelet?.pods())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

itest.before(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), 'keelson-kubelet-api-'));
  node = await startContainerd({ podSubnet: '10.88.9.0/24' });
  const relaySocket = path.join(workDir, 'relay.sock');
  relay = spawnIn(node.netns, process.execPath, [path.join(__dirname, 'netns-relay.js'), relaySocket], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    relay!.stdout!.once('data', () => resolve());
    relay!.once('exit', (code) => reject(new Error(`netns relay exited with ${code}`)));
  });

  api = await startTestApiserver();
  admin = await api.clientCertFor('admin', ['system:masters']);
  client = createKubeClient(loadKubeconfig(api.kubeconfigPath), { logger });

  const manifests = path.join(workDir, 'manifests');
  await mkdir(manifests);
  const script = 'mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -p 8080 -h /www && echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done';
  await writeFile(
    path.join(manifests, 'web.json'),
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: BUSYBOX_IMAGE, command: ['sh', '-c', script] }] },
    }),
  );
  cri = createCriClient({ endpoint: node.endpoint });
  kubelet = createStaticPodsComponent({
    cri,
    logger,
    config: { staticPodPath: manifests, podLogsDir: node.podLogDir, rootDir: path.join(workDir, 'root'), nodeName: NODE, nodeIP: '127.0.0.1', fileCheckFrequencyMs: 2000 },
  });
  await kubelet.start();

  const statusManager = kubelet.statusManager;
  server = createKubeletServer({
    nodeName: NODE,
    address: '127.0.0.1',
    port: 0,
    rootDir: path.join(workDir, 'root'),
    podLogsDir: node.podLogDir,
    clientCA: api.caPem,
    reviewer: createApiReviewer(client, { logger }),
    cri,
    source: { pods: () => statusManager.pods(), onPodStatus: (h) => statusManager.onChange(h) },
    logger,
    dialStream: (url) => {
      const socket = connect(relaySocket);
      socket.write(`${url.hostname}:${url.port}\n`);
      return socket;
    },
  });
  await server.start();
  healthz = createHealthzServer({ address: '127.0.0.1', port: 0, healthy: () => ({ ok: kubelet!.health().healthy, message: kubelet!.health().message }), logger });
  await healthz.listen();

  // the node and the mirror of the static pod, as the apiserver knows them
  api.store.create({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE },
    status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: server.port() } } },
  });
  const running = await waitFor('web running', () => kubelet!.pods().find((p) => p.name === POD && p.phase === 'Running'));
  api.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: 'default', annotations: { 'kubernetes.io/config.mirror': running.uid } },
    spec: { nodeName: NODE, containers: [{ name: 'app', image: BUSYBOX_IMAGE }] },
  });
  // kubectl port-forward checks the pod's phase first (mirror pod status is issue 4's status patcher)
  api.store.patchStatus('Pod', 'default', POD, { phase: 'Running' });
  await waitFor('log output', async () => (await kubeletGet(`/containerLogs/default/${POD}/app`, { cert: admin })).body.includes('tick 2'));
});

itest.afterEach.always((t) => {
  if (!t.passed) node?.markFailed();
});

itest.after.always(async () => {
  await server?.stop();
  await healthz?.close();
  await Promise.race([kubelet?.stop(), new Promise((r) => setTimeout(r, 10_000).unref())]);
  cri?.close();
  client?.close();
  relay?.kill();
  await node?.stop();
  await api?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

itest('anonymous requests get 401, a bad token 401, a token whose user may not use the node 403', async (t) => {
  for (const p of ['/pods', '/healthz', `/containerLogs/default/${POD}/app`, '/stats/summary']) {
    t.is((await kubeletGet(p)).status, 401, p);
  }
  t.is((await kubeletGet('/pods', { token: 'not-a-token' })).status, 401);
  api!.addToken('weak-token', { username: 'weakling', groups: ['viewers'] });
  const denied = await kubeletGet('/stats/summary', { token: 'weak-token' });
  t.is(denied.status, 403);
  t.regex(denied.body, /user=weakling, verb=get, resource=nodes, subresource\(s\)=\[stats\]/);
  t.regex((await kubeletGet(`/containerLogs/default/${POD}/app`, { token: 'weak-token' })).body, /subresource\(s\)=\[proxy\]/);
  // a client certificate from another CA is not accepted
  const other = ensureSelfSignedCertificate(path.join(workDir, 'foreign'), { commonName: 'admin', dnsNames: [], ipAddresses: [] });
  const foreign = { ...admin, certPem: other.certPem, keyPem: other.keyPem };
  t.is((await kubeletGet('/pods', { cert: foreign })).status, 401);
  // the admin token (TokenReview) and the admin certificate (cluster CA) are both let in
  t.is((await kubeletGet('/healthz', { token: api!.adminToken })).status, 200);
  t.is((await kubeletGet('/healthz', { cert: admin })).body, 'ok');
  // the decisions came from the apiserver's TokenReview and SubjectAccessReview
  t.true(api!.requestLog().some((r) => r.path.includes('tokenreviews')));
  t.true(api!.requestLog().some((r) => r.path.includes('subjectaccessreviews')));
});

itest('kubectl logs through the apiserver: whole log, --tail, --timestamps, --limit-bytes', async (t) => {
  const all = (await kubectl(['logs', POD])).stdout;
  t.true(all.startsWith('started\ntick 0\ntick 1\n'), all.slice(0, 80));
  const tail = (await kubectl(['logs', POD, '--tail=2'])).stdout.split('\n');
  t.is(tail.length, 3);
  t.regex(tail[0]!, /^tick \d+$/);
  t.is(tail[2], '');
  const stamped = (await kubectl(['logs', POD, '--timestamps', '--tail=1'])).stdout;
  t.regex(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) tick \d+\n$/);
  t.is((await kubectl(['logs', POD, '--limit-bytes=10'])).stdout, 'started\nti');
  const recent = (await kubectl(['logs', POD, '--since=1s'])).stdout.trim().split('\n');
  t.true(recent.length >= 1 && recent.length <= 6, `${recent.length} lines in the last second`);
  t.false(recent.includes('started'));
  await t.throwsAsync(kubectl(['logs', POD, '--previous']), { message: /BadRequest/ });
  const previous = await kubeletGet(`/containerLogs/default/${POD}/app?previous=true`, { cert: admin });
  t.is(previous.status, 400);
  t.regex(previous.body, /previous terminated container "app" in pod "web-edge-api" not found/);
  t.is((await kubeletGet(`/containerLogs/default/${POD}/nope`, { cert: admin })).status, 404);
  t.is((await kubeletGet(`/containerLogs/default/nope/app`, { cert: admin })).status, 404);
  t.is((await kubeletGet(`/containerLogs/default/${POD}/app?tailLines=-1`, { cert: admin })).status, 400);
});

itest('kubectl logs -f returns new lines as the container writes them', async (t) => {
  const child = spawn(KUBECTL, ['--kubeconfig', api!.kubeconfigPath, 'logs', '-f', '--tail=1', POD], { env: { ...process.env, HOME: workDir } });
  t.teardown(() => child.kill());
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const ticks = () => [...out.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
  await waitFor('4 ticks followed', () => ticks().length >= 4, 10_000);
  const seen = ticks();
  t.is(seen.length >= 4, true);
  for (let i = 1; i < seen.length; i++) t.is(seen[i], seen[i - 1]! + 1, 'consecutive lines, none lost');
});

itest('kubectl exec runs a command in the container over the streaming protocol (stdout, stderr, stdin, exit code)', async (t) => {
  const { stdout, stderr } = await kubectl(['exec', POD, '--', 'sh', '-c', 'echo out-$((6*7)) $(hostname); echo to-stderr >&2']);
  t.is(stdout, `out-42 ${POD}\n`);
  t.is(stderr, 'to-stderr\n');
  t.is((await kubectl(['exec', '-i', POD, '--', 'sh', '-c', 'tr a-z A-Z'], 'piped through stdin\n')).stdout, 'PIPED THROUGH STDIN\n');
  const failed = await kubectl(['exec', POD, '--', 'sh', '-c', 'exit 3']).then(() => '', (err: Error) => err.message);
  t.regex(failed, /command terminated with exit code 3/);
});

itest('kubectl port-forward reaches a port inside the pod', async (t) => {
  const child = spawn(KUBECTL, ['--kubeconfig', api!.kubeconfigPath, 'port-forward', `pod/${POD}`, ':8080', '--address', '127.0.0.1'], { env: { ...process.env, HOME: workDir } });
  t.teardown(() => child.kill());
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const ready = await waitFor('port-forward ready', () => /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(out) ?? undefined, 15_000).catch((err: Error) => {
    throw new Error(`${err.message}\nkubectl port-forward said: ${out}`);
  });
  const port = Number(ready[1]);
  for (let i = 0; i < 2; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/index.html', agent: false }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    t.is(body, 'hello-from-pod\n');
  }
});

itest('/pods, /metrics, /stats/summary and healthz', async (t) => {
  const pods = JSON.parse((await kubeletGet('/pods', { cert: admin })).body);
  t.is(pods.kind, 'PodList');
  const web = pods.items.find((p: { metadata: { name: string } }) => p.metadata.name === POD);
  t.is(web.metadata.namespace, 'default');
  t.is(web.status.phase, 'Running');
  t.is(web.status.containerStatuses[0].name, 'app');

  const metrics = await kubeletGet('/metrics', { cert: admin });
  t.regex(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  t.regex(metrics.body, /^kubelet_running_pods 1$/m);
  t.regex(metrics.body, /^kubelet_running_containers\{container_state="running"\} [1-9]\d*$/m);
  t.regex(metrics.body, /^kubelet_pod_start_duration_seconds_count 1$/m);
  t.regex(metrics.body, /^kubelet_pod_start_duration_seconds_bucket\{le="\+Inf"\} 1$/m);
  t.regex(metrics.body, /^kubelet_http_requests_total\{method="GET",path="containerLogs",server_type="readwrite"\} \d+$/m);

  const summary = JSON.parse((await kubeletGet('/stats/summary', { cert: admin })).body);
  t.is(summary.node.nodeName, NODE);
  t.true(summary.node.cpu.usageCoreNanoSeconds > 0);
  t.true(summary.node.cpu.usageNanoCores >= 0);
  t.true(summary.node.memory.workingSetBytes > 0 && summary.node.memory.availableBytes > 0);
  t.true(summary.node.fs.capacityBytes > 0 && summary.node.fs.usedBytes > 0);
  t.is(typeof summary.node.runtime.imageFs.usedBytes, 'number', JSON.stringify(summary.node.runtime));
  t.true(summary.node.runtime.imageFs.capacityBytes > 0, JSON.stringify(summary.node.runtime));
  t.true(summary.node.rlimit.maxpid > 0);
  const pod = summary.pods.find((p: { podRef: { name: string } }) => p.podRef.name === POD);
  t.is(pod.podRef.namespace, 'default');
  t.is(pod.podRef.uid, web.metadata.uid);
  const app = pod.containers[0];
  t.is(app.name, 'app');
  t.regex(app.cpu.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.regex(app.memory.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // containerd's shim may fail to load a container's cgroup (logged "loading cgroup for <pid>"): CRI
  // then has no cpu/memory for it for its whole life, and the summary reports zeros, as kubelet does
  const { stats: runtimeStats } = await cri!.listContainerStats({ filter: { label_selector: { 'io.kubernetes.pod.uid': web.metadata.uid, 'io.kubernetes.container.name': 'app' } } });
  if (runtimeStats[0]?.cpu) {
    t.true(app.cpu.usageCoreNanoSeconds > 0);
    t.true(app.cpu.usageCoreNanoSeconds <= Number(runtimeStats[0].cpu.usage_core_nano_seconds?.value), 'the runtime\'s later reading is not smaller');
  } else {
    t.log('the runtime has no cgroup stats for the app container: zeros expected');
    t.is(app.cpu.usageCoreNanoSeconds, 0);
  }
  if (runtimeStats[0]?.memory) t.true(app.memory.workingSetBytes > 0);
  else t.is(app.memory.workingSetBytes, 0);
  t.true(app.logs.usedBytes > 0);
  t.true(pod.memory.workingSetBytes >= app.memory.workingSetBytes);
  t.true(pod['ephemeral-storage'].usedBytes > 0);
  const cpuOnly = JSON.parse((await kubeletGet('/stats/summary?only_cpu_and_memory=true', { cert: admin })).body);
  t.is(cpuOnly.node.fs, undefined);
  t.truthy(cpuOnly.pods[0].cpu);

  const local = await new Promise<Reply>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: healthz!.port(), path: '/healthz', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
  t.is(local.status, 200);
  t.is(local.body, 'ok');
});
