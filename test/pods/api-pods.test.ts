/**
 * Cluster-mode kubelet on a real containerd with the test apiserver: pods bound to the node run and
 * their status reaches the apiserver (patched only on change); admission refuses what does not fit
 * with kubelet's reasons and an Event; deletion honours the grace period and ends with a delete
 * with grace 0; static pods get a mirror pod; and with the apiserver down across a keelson restart
 * the pods keep running (restarted per policy, none of the healthy ones restarted) and the status
 * converges when the link returns.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Pod } from 'kubernetes-types/core/v1';
import { createCriClient, type CriClient } from '../../cri/client';
import { createClusterKubeletComponent, type ClusterKubeletComponent } from '../../agent/pods/cluster-kubelet';
import { recordEvent } from '../../agent/pods/events';
import type { KubeletConfig } from '../../agent/pods';
import { createKubeClient, type KubeClient } from '../../agent/kube/client';
import { createInformerFactory, type InformerFactory } from '../../agent/kube/informer-factory';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import { startTestApiserver, type Obj, type TestApiserver } from '../harness/apiserver';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { integrationTest } from '../harness/requirements';

const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip'] });

const NODE = 'edge-api1';
const NODE_IP = '192.0.2.20';
let node: ContainerdNode | undefined;
let api: TestApiserver | undefined;
let manifests = '';
let config: KubeletConfig;
interface Instance {
  cri: CriClient;
  client: KubeClient;
  informers: InformerFactory;
  kubelet: ClusterKubeletComponent;
}
let current: Instance | undefined;
const logLines: Record<string, unknown>[] = [];

const nodeObject: Obj = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE, 'kubernetes.io/os': 'linux', zone: 'edge-a' } },
  spec: {},
  status: { allocatable: { cpu: '2', memory: '4Gi', pods: '20', 'ephemeral-storage': '10Gi' }, capacity: { cpu: '2', memory: '4Gi', pods: '20' } },
};

async function startInstance(): Promise<Instance> {
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  const cri = createCriClient({ endpoint: node!.endpoint });
  const client = createKubeClient(loadKubeconfig(api!.kubeconfigPath), { logger, timeoutMs: 3000 });
  const informers = createInformerFactory({ client, logger, backoff: { initialMs: 200, maxMs: 1000 } });
  const kubelet = createClusterKubeletComponent({
    cri, client, informers, logger, config, apiSyncTimeoutMs: 1000, statusRetry: { initialMs: 200, maxMs: 1000 },
  });
  await kubelet.start();
  current = { cri, client, informers, kubelet };
  return current;
}

async function stopInstance(inst: Instance | undefined) {
  if (!inst) return;
  await inst.kubelet.stop();
  await inst.informers.stop();
  inst.client.close();
  inst.cri.close();
}

function podSpec(name: string, extra: { container?: Record<string, unknown>; spec?: Record<string, unknown>; command?: string } = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: NODE,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'app', image: BUSYBOX_IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', extra.command ?? 'sleep 3600'], ...(extra.container ?? {}) }],
      ...(extra.spec ?? {}),
    },
  };
}

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const apiPod = (name: string) => api!.store.get('Pod', 'default', name) as Pod | undefined;
const running = (name: string) => {
  const p = apiPod(name);
  return p?.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready) ? p : undefined;
};

async function runtimeContainers(uid: string) {
  const { containers } = await current!.cri.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });
  return containers;
}

const cachedNode = () => current!.informers.forResource(Resources.nodes, { fieldSelector: `metadata.name=${NODE}` }).get(undefined, NODE);

const statusPatches = () => api!.requestLog().filter((r) => r.method === 'PATCH' && /\/pods\/[^/]+\/status$/.test(r.path));

itest.before(async () => {
  api = await startTestApiserver({ fixtures: [nodeObject] });
  node = await startContainerd({ podSubnet: '10.88.9.0/24' });
  manifests = await mkdtemp(path.join(os.tmpdir(), 'keelson-api-static-'));
  config = {
    staticPodPath: manifests,
    podLogsDir: node.podLogDir,
    rootDir: path.join(node.dir, 'keelson'),
    nodeName: NODE,
    nodeIP: NODE_IP,
    backoff: { initialMs: 1000, maxMs: 2000 },
    fileCheckFrequencyMs: 1000,
  };
  await startInstance();
});

itest.afterEach.always((t) => {
  if (!t.passed) {
    node?.markFailed();
    for (const l of logLines) if ((l.level as number) >= 40) console.log(JSON.stringify(l));
  }
});

itest.after.always(async () => {
  if (process.env.KT_DEBUG === 'all') for (const l of logLines) console.log(JSON.stringify(l));
  await Promise.race([stopInstance(current), new Promise((r) => setTimeout(r, 10_000).unref())]);
  await node?.stop();
  await api?.stop();
  if (manifests) await rm(manifests, { recursive: true, force: true });
});

itest.serial('a pod bound to the node runs, and its full status reaches the apiserver', async (t) => {
  const created = api!.store.create(podSpec('web')) as Pod;
  const pod = await waitFor('web Running', () => running('web'));
  const s = pod.status!;
  t.is(s.hostIP, NODE_IP);
  t.deepEqual(s.hostIPs, [{ ip: NODE_IP }]);
  t.regex(s.podIP ?? '', /^10\.88\.9\.\d+$/);
  t.deepEqual(s.podIPs, [{ ip: s.podIP! }]);
  t.truthy(s.startTime);
  const conditions = Object.fromEntries((s.conditions ?? []).map((c) => [c.type, c.status]));
  t.deepEqual(conditions, { PodScheduled: 'True', Initialized: 'True', ContainersReady: 'True', Ready: 'True', PodReadyToStartContainers: 'True' });
  const c = s.containerStatuses![0];
  t.is(c.name, 'app');
  t.is(c.image, BUSYBOX_IMAGE);
  t.truthy(c.imageID);
  t.regex(c.containerID ?? '', /^containerd:\/\/[0-9a-f]{64}$/);
  t.is(c.restartCount, 0);
  t.true(c.ready);
  t.true(c.started);
  t.truthy(c.state?.running?.startedAt);
  t.is(s.qosClass, 'BestEffort');
  const containers = await runtimeContainers(created.metadata!.uid!);
  t.is(containers.length, 1);
  t.is(c.containerID, `containerd://${containers[0].id}`);
});

itest.serial('status is patched only when it changes', async (t) => {
  await waitFor('web Running', () => running('web'));
  await current!.kubelet.statusPatcher.idle();
  api!.clearRequestLog();
  // several relists (1 s) and worker resyncs happen in this window; nothing changed, so nothing is sent
  await new Promise((r) => setTimeout(r, 3500));
  t.deepEqual(statusPatches().map((r) => r.path), []);
  // a change (container killed → restarted) is sent, once it settles, in few patches
  const uid = apiPod('web')!.metadata!.uid!;
  const [c] = await runtimeContainers(uid);
  await current!.cri.stopContainer({ container_id: c.id, timeout: 0 });
  await waitFor('restart reported', () => apiPod('web')?.status?.containerStatuses?.[0].restartCount === 1 && running('web'));
  const n = statusPatches().length;
  t.true(n >= 1 && n <= 4, `${n} status patches for one restart`);
  const lastState = apiPod('web')!.status!.containerStatuses![0].lastState;
  t.truthy(lastState?.terminated, 'the killed container is the last state');
  t.falsy(apiPod('web')!.status!.containerStatuses![0].state?.terminated, 'the running state replaced the terminated one (strategic merge with deletions)');
});

itest.serial('admission refuses pods that do not fit, with kubelet reasons and Events', async (t) => {
  const cases: { name: string; pod: Obj; reason: string; message: RegExp }[] = [
    { name: 'too-big', pod: podSpec('too-big', { container: { resources: { requests: { cpu: '3' } } } }), reason: 'OutOfcpu', message: /^Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000$/ },
    { name: 'mem-big', pod: podSpec('mem-big', { container: { resources: { limits: { memory: '5Gi' } } } }), reason: 'OutOfmemory', message: /^Pod was rejected: Node didn't have enough resource: memory, requested: 5368709120, used: 0, capacity: 4294967296$/ },
    { name: 'wrong-zone', pod: podSpec('wrong-zone', { spec: { nodeSelector: { zone: 'edge-b' } } }), reason: 'NodeAffinity', message: /^Pod was rejected: Predicate NodeAffinity failed: node\(s\) didn't match Pod's node affinity\/selector$/ },
    {
      name: 'affinity-miss',
      pod: podSpec('affinity-miss', { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['edge-a'] }] }] } } } } }),
      reason: 'NodeAffinity',
      message: /NodeAffinity failed/,
    },
  ];
  for (const c of cases) api!.store.create(c.pod);
  // a host port taken by a running pod
  api!.store.create(podSpec('port-a', { container: { ports: [{ containerPort: 8080, hostPort: 18080 }] } }));
  await waitFor('port-a Running', () => running('port-a'));
  api!.store.create(podSpec('port-b', { container: { ports: [{ containerPort: 9090, hostPort: 18080 }] } }));
  cases.push({ name: 'port-b', pod: {}, reason: 'NodePorts', message: /^Pod was rejected: Predicate NodePorts failed: node\(s\) didn't have free ports for the requested pod ports$/ });

  for (const c of cases) {
    const p = await waitFor(`${c.name} Failed`, () => apiPod(c.name)?.status?.phase === 'Failed' && apiPod(c.name));
    t.is(p.status!.reason, c.reason, c.name);
    t.regex(p.status!.message ?? '', c.message, c.name);
    t.deepEqual(await runtimeContainers(p.metadata!.uid!), [], `${c.name} never ran`);
  }
  // a right selector and affinity are admitted
  api!.store.create(podSpec('right-zone', { spec: { nodeSelector: { zone: 'edge-a' }, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['edge-a'] }] }] } } } } }));
  await waitFor('right-zone Running', () => running('right-zone'));

  await waitFor('rejection Events', () => {
    const events = api!.store.list('Event', 'default');
    return cases.every((c) => events.some((e) => e.involvedObject?.name === c.name && e.reason === c.reason && e.type === 'Warning' && e.source?.component === 'kubelet'));
  });
  t.pass();
});

itest.serial('admission: NoExecute taints not tolerated, and maxPods', async (t) => {
  api!.store.update({ ...api!.store.get('Node', undefined, NODE)!, spec: { taints: [{ key: 'edge/maintenance', value: 'yes', effect: 'NoExecute' }] } });
  await waitFor('the node informer sees the taint', () => cachedNode()?.spec?.taints?.length);
  api!.store.create(podSpec('no-toleration'));
  api!.store.create(podSpec('tolerates', { spec: { tolerations: [{ key: 'edge/maintenance', operator: 'Exists', effect: 'NoExecute' }] } }));
  const p = await waitFor('no-toleration Failed', () => apiPod('no-toleration')?.status?.phase === 'Failed' && apiPod('no-toleration'));
  t.is(p.status!.reason, 'TaintToleration');
  t.is(p.status!.message, 'Pod was rejected: Predicate TaintToleration failed: node(s) had untolerated taint');
  await waitFor('tolerates Running', () => running('tolerates'));
  api!.store.update({ ...api!.store.get('Node', undefined, NODE)!, spec: {} });

  const active = current!.kubelet.pods().filter((s) => s.phase === 'Running' || s.phase === 'Pending').length;
  api!.store.patchStatus('Node', undefined, NODE, { allocatable: { pods: String(active) } });
  await waitFor('the node informer sees maxPods', () => cachedNode()?.status?.allocatable?.pods === String(active));
  api!.store.create(podSpec('one-too-many'));
  const q = await waitFor('one-too-many Failed', () => apiPod('one-too-many')?.status?.phase === 'Failed' && apiPod('one-too-many'));
  t.is(q.status!.reason, 'OutOfpods');
  t.is(q.status!.message, `Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: ${active}, capacity: ${active}`);
  api!.store.patchStatus('Node', undefined, NODE, { allocatable: { pods: '20' } });
});

itest.serial('deletion from the apiserver: containers stopped within the grace period, then the pod is deleted with grace 0', async (t) => {
  // PID 1 ignores SIGTERM: only the grace period's end (SIGKILL) stops it
  api!.store.create(podSpec('slow-stop', { spec: { terminationGracePeriodSeconds: 30 } }));
  const pod = await waitFor('slow-stop Running', () => running('slow-stop'));
  const uid = pod.metadata!.uid!;
  api!.clearRequestLog();
  const started = Date.now();
  api!.store.delete('Pod', 'default', 'slow-stop', { gracePeriodSeconds: 2 });
  t.truthy(apiPod('slow-stop')?.metadata?.deletionTimestamp, 'graceful: still there, being deleted');
  await waitFor('slow-stop gone from the apiserver', () => !apiPod('slow-stop'), 15_000);
  const elapsed = Date.now() - started;
  t.true(elapsed >= 1500, `stopped after ${elapsed} ms, grace 2 s`);
  t.true(elapsed < 8000, `stopped after ${elapsed} ms, not the pod's 30 s`);
  const del = api!.requestLog().filter((r) => r.method === 'DELETE' && r.path.endsWith('/pods/slow-stop'));
  t.is(del.length, 1);
  t.true(logLines.some((l) => l.msg === 'killing container' && l.gracePeriod === 2), 'killed with the deletion grace period');
  await waitFor('containers removed', async () => (await runtimeContainers(uid)).length === 0);
});

itest.serial('Events: recordEvent() posts an Event, repeats update its count', async (t) => {
  const pod = await waitFor('web Running', () => running('web'));
  // (the kubelet records its own Pulled event for web's real image too)
  const fake = 'Container image "x" already present on machine';
  recordEvent(pod, 'Normal', 'Pulled', 'Container image "x" already present on machine', { fieldPath: 'spec.containers{app}' });
  recordEvent(pod, 'Normal', 'Pulled', 'Container image "x" already present on machine', { fieldPath: 'spec.containers{app}' });
  await current!.kubelet.events.idle();
  recordEvent(pod, 'Normal', 'Pulled', 'Container image "x" already present on machine', { fieldPath: 'spec.containers{app}' });
  const ev = await waitFor('Pulled event with count 3', () =>
    api!.store.list('Event', 'default').find((e) => e.involvedObject?.uid === pod.metadata!.uid && e.reason === 'Pulled' && e.message === fake && e.count === 3));
  t.is(ev.involvedObject.fieldPath, 'spec.containers{app}');
  t.is(ev.source.host, NODE);
  t.is(api!.store.list('Event', 'default').filter((e) => e.involvedObject?.uid === pod.metadata!.uid && e.reason === 'Pulled' && e.message === fake).length, 1);
});

itest.serial('Events: image pulls and a missing ConfigMap are recorded as kubelet does', async (t) => {
  // nothing listens on 127.0.0.1:1, so the pull fails at once (loopback only)
  const unknown = '127.0.0.1:1/keelson/no-such-image:1';
  const bad = api!.store.create(podSpec('bad-image', { container: { image: unknown } })) as Pod;
  const cfg = api!.store.create(podSpec('no-config', { container: { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'absent-cfg', key: 'k' } } }] } })) as Pod;
  t.teardown(() => {
    api!.store.delete('Pod', 'default', 'bad-image', { gracePeriodSeconds: 0 });
    api!.store.delete('Pod', 'default', 'no-config', { gracePeriodSeconds: 0 });
  });
  const eventsOf = (uid: string) => api!.store.list('Event', 'default').filter((e) => e.involvedObject?.uid === uid);
  const has = (uid: string, type: string, reason: string, message: RegExp) =>
    eventsOf(uid).some((e) => e.type === type && e.reason === reason && message.test(e.message) && e.involvedObject.fieldPath === 'spec.containers{app}');
  const badUid = bad.metadata!.uid!;
  const esc = unknown.replace(/[.]/g, '\\.');
  await waitFor('pull Events of bad-image', () =>
    has(badUid, 'Normal', 'Pulling', new RegExp(`^Pulling image "${esc}"$`)) &&
    has(badUid, 'Warning', 'Failed', new RegExp(`^Failed to pull image "${esc}": `)) &&
    has(badUid, 'Warning', 'Failed', /^Error: ErrImagePull$/) &&
    has(badUid, 'Normal', 'BackOff', new RegExp(`^Back-off pulling image "${esc}"$`)), 20_000)
    .catch((err: Error) => { throw new Error(`${err.message}; events: ${JSON.stringify(eventsOf(badUid).map((e) => [e.type, e.reason, e.message]))}`); });
  t.regex(apiPod('bad-image')?.status?.containerStatuses?.[0].state?.waiting?.reason ?? '', /^(ErrImagePull|ImagePullBackOff)$/);
  const cfgUid = cfg.metadata!.uid!;
  await waitFor('config error Event of no-config', () => has(cfgUid, 'Warning', 'Failed', /^Error: configmap "absent-cfg" not found$/), 20_000)
    .catch((err: Error) => { throw new Error(`${err.message}; events: ${JSON.stringify(eventsOf(cfgUid).map((e) => [e.type, e.reason, e.message]))}`); });
  t.is(apiPod('no-config')?.status?.containerStatuses?.[0].state?.waiting?.reason, 'CreateContainerConfigError');
  // the busybox image of a running pod is reported as present
  const web = await waitFor('web Running', () => running('web'));
  t.true(has(web.metadata!.uid!, 'Normal', 'Pulled', new RegExp(`^Container image "${BUSYBOX_IMAGE.replace(/[.]/g, '\\.')}" already present on machine$`)));
});

itest.serial('a static pod gets a mirror pod owned by the Node, with its status', async (t) => {
  await writeFile(path.join(manifests, 'static.json'), JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'edge-agent', namespace: 'kube-system' },
    spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'agent', image: BUSYBOX_IMAGE, command: ['sleep', '3600'] }] },
  }));
  const name = `edge-agent-${NODE}`;
  const mirror = await waitFor('mirror pod Running', () => {
    const p = api!.store.get('Pod', 'kube-system', name) as Pod | undefined;
    return p?.status?.phase === 'Running' && p;
  });
  const annotations = mirror.metadata!.annotations!;
  t.truthy(annotations['kubernetes.io/config.mirror']);
  t.is(annotations['kubernetes.io/config.mirror'], annotations['kubernetes.io/config.hash']);
  t.is(mirror.metadata!.ownerReferences?.[0].kind, 'Node');
  t.is(mirror.metadata!.ownerReferences?.[0].name, NODE);
  t.not(mirror.metadata!.uid, annotations['kubernetes.io/config.hash'], 'the mirror has its own UID');
  // the mirror is not run as a pod of its own
  t.is(current!.kubelet.pods().filter((p) => p.name === name).length, 1);
  t.is(mirror.status!.containerStatuses?.[0].name, 'agent');
  // a mirror deleted by someone is created again
  api!.store.delete('Pod', 'kube-system', name, { gracePeriodSeconds: 0 });
  await waitFor('mirror recreated', () => {
    const p = api!.store.get('Pod', 'kube-system', name) as Pod | undefined;
    return p && p.metadata!.uid !== mirror.metadata!.uid;
  });
  t.pass();
});

itest.serial('apiserver outage across a keelson restart: pods keep running, are restarted per policy, status converges', async (t) => {
  await waitFor('web Running', () => running('web'));
  api!.store.create(podSpec('steady'));
  api!.store.create(podSpec('crashy'));
  await waitFor('steady and crashy Running', () => running('steady') && running('crashy'));
  await current!.kubelet.statusPatcher.idle();
  const ids = async (name: string) => (await runtimeContainers(apiPod(name)!.metadata!.uid!)).filter((c) => c.state === 'CONTAINER_RUNNING').map((c) => c.id);
  const before = { web: await ids('web'), steady: await ids('steady') };
  const crashyUid = apiPod('crashy')!.metadata!.uid!;
  const webRestarts = apiPod('web')!.status!.containerStatuses![0].restartCount;

  const restartStart = logLines.length;
  await stopInstance(current);
  current = undefined;
  const outage = api!.faults.restart({ downMs: 9000 });
  await new Promise((r) => setTimeout(r, 300));
  await startInstance();
  t.is(current!.kubelet.health().details?.apiserverPods, 'checkpoint', 'started from the checkpoint');
  // the checkpointed pods run again without a restart; a container that dies is restarted offline
  const crashyContainer = (await runtimeContainers(crashyUid)).find((c) => c.state === 'CONTAINER_RUNNING')!;
  await current!.cri.stopContainer({ container_id: crashyContainer.id, timeout: 0 });
  await waitFor('crashy restarted offline', () => current!.kubelet.pods().find((p) => p.uid === crashyUid)?.containers[0].restartCount === 1 && current!.kubelet.pods().find((p) => p.uid === crashyUid)?.containers[0].state === 'running')
    .catch(async (err: Error) => {
      // what the kubelet reports, what the runtime holds, and what was logged about crashy (and warnings) since the restart
      const runtime = (await runtimeContainers(crashyUid)).map((c) => ({ id: c.id.slice(0, 12), state: c.state, restartCount: c.annotations['io.kubernetes.container.restartCount'] }));
      const logged = logLines.slice(restartStart).filter((l) => l.pod === 'default/crashy' || (l.level as number) >= 40);
      throw new Error(`${err.message}; status: ${JSON.stringify(current!.kubelet.pods().find((p) => p.uid === crashyUid))}; runtime: ${JSON.stringify(runtime)}; log: ${JSON.stringify(logged)}`);
    });
  await outage;
  await waitFor('crashy restart reported after the link returned', () => apiPod('crashy')?.status?.containerStatuses?.[0].restartCount === 1 && running('crashy'), 20_000);
  t.is(current!.kubelet.health().details?.apiserverPods, 'live');
  t.deepEqual(await ids('web'), before.web, 'web not restarted');
  t.deepEqual(await ids('steady'), before.steady, 'steady not restarted');
  t.is(apiPod('web')!.status!.containerStatuses![0].restartCount, webRestarts);
  t.is(apiPod('steady')!.status!.containerStatuses![0].restartCount, 0);
});
