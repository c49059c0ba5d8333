import { execFileSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import test from 'ava';
import { createKubeClient, type KubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { goArch, parseOsRelease } from '../../agent/node/host-info';
import { createNodeComponent, type NodeComponentConfig } from '../../agent/node';
import { detectNodeIP, defaultRouteInterface } from '../../agent/node-ip';
import { startTestApiserver, type TestApiserver } from '../harness/apiserver';
import { waitFor } from '../harness/keelson';
import { captureLogger } from './helpers';
import { validateNode } from './node-schema';

let api: TestApiserver;
test.before(async () => {
  api = await startTestApiserver();
});
test.after.always(async () => {
  await api?.stop();
});

interface FakeCri {
  runtimeReady: boolean;
  networkReady: boolean;
  down: boolean;
  version(): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  status(): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A runtime whose state the test sets (the containerd test uses the real one). */
function fakeCri(): FakeCri {
  const cri: FakeCri = {
    runtimeReady: true,
    networkReady: true,
    down: false,
    async version() {
      if (cri.down) throw new Error('connect ENOENT /run/containerd/containerd.sock');
      return { version: '0.1.0', runtime_name: 'containerd', runtime_version: '1.6.20', runtime_api_version: 'v1' };
    },
    async status() {
      if (cri.down) throw new Error('connect ENOENT /run/containerd/containerd.sock');
      return {
        status: {
          conditions: [
            { type: 'RuntimeReady', status: cri.runtimeReady, reason: '', message: '' },
            { type: 'NetworkReady', status: cri.networkReady, reason: cri.networkReady ? '' : 'NetworkPluginNotReady', message: cri.networkReady ? '' : 'cni config uninitialized' },
          ],
        },
      };
    },
  };
  return cri;
}

async function nodeClient(name: string): Promise<KubeClient> {
  const path = await api.writeKubeconfig({ user: `system:node:${name}`, groups: ['system:nodes'] });
  return createKubeClient(loadKubeconfig(path), { logger: captureLogger('silent').logger });
}

function start(name: string, config: Partial<NodeComponentConfig>, cri: FakeCri, client: KubeClient) {
  const { logger, records } = captureLogger('info');
  const node = createNodeComponent({
    client,
    cri,
    logger,
    config: { nodeName: name, statusUpdateFrequencyMs: 200, statusReportFrequencyMs: 60_000, leaseRenewIntervalMs: 200, rootDir: os.tmpdir(), ...config },
    backoff: { initialMs: 50, maxMs: 400 },
  });
  return { node, records };
}

const readyOf = (name: string) => api.store.get('Node', undefined, name)?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');

test.serial('registers a Node whose fields are true for this host and valid against the v1 Node schema', async (t) => {
  const client = await nodeClient('edge-a');
  const nodeIP = detectNodeIP();
  const cri = fakeCri();
  const { node } = start('edge-a', {
    nodeIP,
    labels: { 'topology.kubernetes.io/zone': 'shed-1' },
    taints: [{ key: 'edge.example.com/flaky-link', value: 'true', effect: 'NoSchedule' }],
    systemReserved: { memory: '256Mi', cpu: '100m' },
    kubeReserved: { memory: '128Mi' },
  }, cri, client);
  t.teardown(() => client.close());
  await node.start();
  t.teardown(() => node.stop());
  const obj = await waitFor('Node Ready', async () => (readyOf('edge-a')?.status === 'True' ? api.store.get('Node', undefined, 'edge-a') : undefined), 10_000, 50);

  t.deepEqual(validateNode(obj), []);
  const labels = obj.metadata.labels;
  t.is(labels['kubernetes.io/hostname'], 'edge-a');
  t.is(labels['kubernetes.io/os'], 'linux');
  t.is(labels['kubernetes.io/arch'], execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim());
  t.is(labels['topology.kubernetes.io/zone'], 'shed-1');
  t.deepEqual(obj.spec.taints, [{ key: 'edge.example.com/flaky-link', value: 'true', effect: 'NoSchedule' }]);

  // Addresses: the default route interface's address, and the host name.
  const iface = defaultRouteInterface();
  if (iface && nodeIP) t.true(os.networkInterfaces()[iface]!.some((a) => a.address === nodeIP));
  t.deepEqual(obj.status.addresses, [...(nodeIP ? [{ type: 'InternalIP', address: nodeIP }] : []), { type: 'Hostname', address: os.hostname().toLowerCase() }]);

  const info = obj.status.nodeInfo;
  t.is(info.machineID, readFileSync('/etc/machine-id', 'utf8').trim());
  t.is(info.bootID, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  t.is(info.kernelVersion, execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
  t.is(info.osImage, parseOsRelease(readFileSync('/etc/os-release', 'utf8')).PRETTY_NAME);
  let uuid = '';
  try {
    uuid = readFileSync('/sys/class/dmi/id/product_uuid', 'utf8').trim().toLowerCase();
  } catch {
    // no DMI here: empty, as the kubelet reports it
  }
  t.is(info.systemUUID, uuid);
  t.is(info.architecture, goArch());
  t.is(info.operatingSystem, 'linux');
  t.is(info.containerRuntimeVersion, 'containerd://1.6.20');
  t.regex(info.kubeletVersion, /^v1\.\d+\.\d+-keelson\./);
  t.is(obj.status.daemonEndpoints.kubeletEndpoint.Port, 10250);

  const cpus = Number(execFileSync('nproc', ['--all'], { encoding: 'utf8' }).trim());
  t.is(obj.status.capacity.cpu, String(cpus));
  t.is(obj.status.allocatable.cpu, `${cpus * 1000 - 100}m`);
  const memKi = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
  t.is(obj.status.capacity.memory, `${memKi}Ki`);
  const hugeKi = Number(/HugePages_Total:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * Number(/Hugepagesize:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  t.is(obj.status.allocatable.memory, `${memKi - (256 + 128 + 100) * 1024 - hugeKi}Ki`);
  const fs = statfsSync(os.tmpdir());
  t.is(obj.status.capacity['ephemeral-storage'], `${(fs.blocks * fs.bsize) / 1024}Ki`);
  const fsAllocatable = Math.floor(fs.blocks * fs.bsize - 0.1 * fs.blocks * fs.bsize); // nodefs.available 10 %
  t.is(obj.status.allocatable['ephemeral-storage'], fsAllocatable % 1024 === 0 ? `${fsAllocatable / 1024}Ki` : String(fsAllocatable));
  t.is(obj.status.capacity.pods, '110');

  const ready = readyOf('edge-a');
  t.is(ready.reason, 'KubeletReady');
  for (const type of ['MemoryPressure', 'DiskPressure', 'PIDPressure']) {
    t.truthy(obj.status.conditions.find((c: { type: string; status: string }) => c.type === type && c.status === 'False'), type);
  }
  // The Lease exists, is owned by the Node, and is being renewed.
  const lease = await waitFor('lease owner', async () => {
    const l = api.store.get('Lease', 'kube-node-lease', 'edge-a');
    return l?.metadata?.ownerReferences?.[0]?.uid ? l : undefined;
  }, 5000, 50);
  t.deepEqual(lease.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'edge-a', uid: obj.metadata.uid }]);
  t.is(lease.spec.leaseDurationSeconds, 40);
  t.true(node.health().healthy, node.health().message);
});

test.serial('adopts an existing Node: same uid, its labels and taints kept, keelson labels added', async (t) => {
  const existing = api.store.create({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'edge-b', labels: { 'team': 'ops', 'kubernetes.io/hostname': 'edge-b' } },
    spec: { taints: [{ key: 'maintenance', effect: 'NoExecute' }] },
  });
  const client = await nodeClient('edge-b');
  t.teardown(() => client.close());
  const { node, records } = start('edge-b', {}, fakeCri(), client);
  await node.start();
  t.teardown(() => node.stop());
  await waitFor('Ready', async () => readyOf('edge-b')?.status === 'True', 10_000, 50);
  const obj = api.store.get('Node', undefined, 'edge-b')!;
  t.is(obj.metadata.uid, existing.metadata.uid);
  t.is(obj.metadata.labels.team, 'ops');
  t.is(obj.metadata.labels['kubernetes.io/arch'], goArch());
  t.deepEqual(obj.spec.taints, [{ key: 'maintenance', effect: 'NoExecute' }]);
  t.truthy(records.find((r) => r.msg === 'existing node adopted'));
});

test.serial('status goes out only when it changes (or every report period), and runtime trouble shows in Ready', async (t) => {
  const client = await nodeClient('edge-c');
  t.teardown(() => client.close());
  const cri = fakeCri();
  const { node } = start('edge-c', { statusReportFrequencyMs: 3000 }, cri, client);
  await node.start();
  t.teardown(() => node.stop());
  await waitFor('Ready', async () => readyOf('edge-c')?.status === 'True', 10_000, 50);
  const statusPatches = () => api.requestLog().filter((r) => r.method === 'PATCH' && r.path === '/api/v1/nodes/edge-c/status').length;
  const before = statusPatches();
  await new Promise((r) => setTimeout(r, 1500)); // 7 status periods, nothing changed
  t.is(statusPatches(), before);

  cri.networkReady = false;
  const flippedAt = Date.now();
  await waitFor('NotReady', async () => readyOf('edge-c')?.status === 'False', 5000, 20);
  t.true(Date.now() - flippedAt < 200 + 300, 'within one status period (200 ms) plus a request');
  t.is(readyOf('edge-c').reason, 'KubeletNotReady');
  t.regex(readyOf('edge-c').message, /container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni config uninitialized/);

  cri.down = true;
  await waitFor('runtime down', async () => /container runtime is down/.test(readyOf('edge-c')?.message ?? ''), 5000, 20);
  cri.down = false;
  cri.networkReady = true;
  await waitFor('Ready again', async () => readyOf('edge-c')?.status === 'True', 5000, 20);
  const transition = readyOf('edge-c').lastTransitionTime;

  // Unchanged: re-sent once the report period (3 s here, 5 min by default) has passed.
  const quiet = statusPatches();
  await new Promise((r) => setTimeout(r, 3500));
  t.is(statusPatches(), quiet + 1);
  t.is(readyOf('edge-c').lastTransitionTime, transition, 'a heartbeat does not move the transition time');
});

test.serial('an apiserver outage: no crash, one warning per loop, status correct within one period after it returns', async (t) => {
  const client = await nodeClient('edge-d');
  t.teardown(() => client.close());
  const cri = fakeCri();
  const { node, records } = start('edge-d', {}, cri, client);
  await node.start();
  t.teardown(() => node.stop());
  await waitFor('Ready', async () => readyOf('edge-d')?.status === 'True', 10_000, 50);

  const restarting = api.restart({ downMs: 3000 });
  await new Promise((r) => setTimeout(r, 500));
  cri.networkReady = false; // changes while the apiserver is away
  await restarting;
  const upAt = Date.now();
  await waitFor('status after recovery', async () => readyOf('edge-d')?.status === 'False', 5000, 20);
  t.true(Date.now() - upAt < 200 + 400 + 300, `${Date.now() - upAt} ms after the apiserver returned`);
  t.false(node.health().healthy === undefined);

  const warnings = records.filter((r) => r.level === 40).map((r) => r.msg);
  t.is(warnings.filter((m) => m === 'cannot renew node lease, retrying with backoff').length, 1, warnings.join('\n'));
  t.true(warnings.filter((m) => m === 'cannot report node status, retrying with backoff').length <= 1);
  await waitFor('lease recovered log', async () => records.some((r) => r.msg === 'node lease renewed again'), 5000, 20);
  await waitFor('healthy', async () => node.health().healthy, 5000, 20);
});
