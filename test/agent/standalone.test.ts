/**
 * Standalone mode through the public surface: the `keelson` CLI against a private containerd in
 * the simulated node's network namespace, read back with `keelson status` and the CRI.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCriClient, type CriClient } from '../../cri/client';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { keelsonStatus, runKeelson, startKeelson, waitFor, type KeelsonProcess } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';

const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip', 'ctr'] });

test('an invalid config file stops keelson at once naming file, field and reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-cli-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: lots\n');
  const r = await runKeelson(['run', '--config', config, '--root-dir', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`invalid config ${config}: maxPods: must be an integer`));
});

test('an invalid dns or proxy section is reported with its field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-cli-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'kind: KubeletConfiguration\nproxy:\n  mode: ebpf\ndns:\n  ttl: -1\n');
  const r = await runKeelson(['run', '--config', config, '--root-dir', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /proxy\.mode/);
  t.regex(r.stderr, /dns\.ttl/);
});

test('keelson status without a daemon says where it looked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-cli-'));
  const r = await runKeelson(['status', '--root-dir', dir]);
  t.is(r.code, 3);
  t.regex(r.stderr, new RegExp(`no daemon state at ${dir}/run/status.json`));
});

test('unknown commands and flags fail with usage', async (t) => {
  const r = await runKeelson(['run', '--no-such-flag']);
  t.is(r.code, 2);
  t.regex(r.stderr, /Usage: keelson/);
  const v = await runKeelson(['version']);
  t.is(v.code, 0);
  t.regex(v.stdout, /^keelson \d+\.\d+\.\d+ \(node v24\./);
});

let node: ContainerdNode | undefined;
let cri: CriClient | undefined;
const keelsons: KeelsonProcess[] = [];

test.after.always(async () => {
  for (const k of keelsons) await k.stop('SIGKILL').catch(() => undefined);
  cri?.close();
  await node?.stop();
});

const WEB = (name: string) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: demo
spec:
  containers:
    - name: web
      image: ${BUSYBOX_IMAGE}
      command: ["sh", "-c", "echo started-${name}; exec sleep 3600"]
`;

itest.serial('standalone: static pods run, bad manifests are reported, and a keelson restart keeps containers', async (t) => {
  node = await startContainerd({ podSubnet: '10.88.7.0/24' });
  t.teardown(() => {
    if (!t.passed) node?.markFailed();
  });
  cri = createCriClient({ endpoint: node.endpoint });
  const dir = mkdtempSync(join(tmpdir(), 'keelson-standalone-'));
  const manifests = join(dir, 'manifests');
  const logs = join(dir, 'pods');
  const rootDir = join(dir, 'root');
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'web.yaml'), WEB('web'));
  writeFileSync(join(manifests, 'broken.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: broken\nspec:\n  containers:\n    - name: c\n');
  const args = ['run', '--root-dir', rootDir, '--pod-manifest-path', manifests, '--pod-logs-dir', logs, '--container-runtime-endpoint', node.endpoint, '--hostname-override', 'edge-1'];

  const first = startKeelson(args, { netns: node.netns });
  keelsons.push(first);
  await first.waitForLine(/keelson running/);
  t.regex(first.output(), /standalone mode \(no kubeconfig\): proxy and dns serve a cluster and are not started/);

  const pod = await waitFor('the web pod Running in keelson status', async () => {
    const { state } = await keelsonStatus(rootDir);
    const p = state?.pods?.find((x: any) => x.name === 'web-edge-1' && x.phase === 'Running' && x.containers[0]?.state === 'running');
    return p;
  });
  t.is(pod.namespace, 'demo');
  t.regex(pod.podIP, /^10\.88\.7\./);
  const { state } = await keelsonStatus(rootDir);
  t.true(state!.running);
  t.true(state!.problems.some((p: string) => p.includes(join(manifests, 'broken.yaml')) && p.includes('image')), `problems: ${JSON.stringify(state!.problems)}`);

  // The container is what containerd runs, and its log is where kubelet puts it.
  const containerID = pod.containers[0].containerID as string;
  const listed = await cri.listContainers({});
  t.true(listed.containers.some((c) => containerID.endsWith(c.id) && c.state === 'CONTAINER_RUNNING'));
  const podLogDir = readdirSync(logs).find((d) => d.startsWith('demo_web-edge-1_'));
  t.truthy(podLogDir);
  const logText = await waitFor('the container log', async () => {
    const text = readFileSync(join(logs, podLogDir!, 'web', '0.log'), 'utf8');
    return text.includes('started-web') ? text : undefined;
  });
  t.regex(logText, /^\S+ stdout F started-web$/m);

  // A restart of keelson does not restart healthy containers.
  t.is(await first.stop(), 0);
  const afterStop = await cri.listContainers({});
  t.true(afterStop.containers.some((c) => containerID.endsWith(c.id) && c.state === 'CONTAINER_RUNNING'), 'container survives keelson stopping');
  const second = startKeelson(args, { netns: node.netns });
  keelsons.push(second);
  await second.waitForLine(/keelson running/);
  const again = await waitFor('the web pod seen again after restart', async () => {
    const { state: s } = await keelsonStatus(rootDir);
    return s?.pods?.find((x: any) => x.name === 'web-edge-1' && x.phase === 'Running');
  });
  t.is(again.containers[0].containerID, containerID);
  t.is(again.containers[0].restartCount, 0);
  t.is(await second.stop(), 0);
});
