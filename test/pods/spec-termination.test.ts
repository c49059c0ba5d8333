/**
 * Termination messages: unit tests on the fake runtime (the per-instance file and its mount, the
 * annotations, File and FallbackToLogsOnError, the 4 KiB / 2 KiB / 80-line / 12 KiB limits, the
 * message in lastState after a restart), then the same on a real containerd: a container writing
 * /dev/termination-log and exiting 1, and one whose log tail becomes the message.
 */
import test from 'ava';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import { validateDocument } from '../../agent/pods/manifest';
import { generatePodStatus } from '../../agent/pods/pod-status';
import { capTerminationMessages, exitedContainerMessage, logTail } from '../../agent/pods/termination-message';
import type { ContainerStatus } from '../../agent/pods/runtime';
import { IMAGE, makePod, setup } from './health-helpers';
import { integrationTest } from '../harness/requirements';
import { SPEC_NODE_COMMANDS, sh, specNode } from './spec-node';

async function tmp(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-term-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** CRI log lines as containerd writes them. */
const criLog = (lines: string[]) => lines.map((l, i) => `2024-05-01T10:00:${String(i % 60).padStart(2, '0')}.000000000Z ${i % 2 ? 'stderr' : 'stdout'} F ${l}\n`).join('');

async function fakeNode(t: { teardown(fn: () => Promise<void>): void }) {
  const root = await tmp(t);
  const env = await setup({ config: { rootDir: path.join(root, 'root'), podLogsDir: path.join(root, 'logs') } });
  t.teardown(() => env.kubelet.stop());
  return { env, root };
}

function instance(env: Awaited<ReturnType<typeof setup>>, name: string) {
  return [...env.runtime.containers.values()].filter((c) => c.config.metadata.name === name).sort((a, b) => b.createdAt - a.createdAt)[0];
}

test('each container instance gets its own empty 0666 file under the pod folder, bind-mounted at terminationMessagePath; path and policy are annotations', async (t) => {
  const { env, root } = await fakeNode(t);
  const pod = makePod('msg', { restartPolicy: 'Never' }, [
    { name: 'app', image: IMAGE },
    { name: 'custom', image: IMAGE, terminationMessagePath: '/tmp/why', terminationMessagePolicy: 'FallbackToLogsOnError' },
  ]);
  env.source.set([pod]);
  await env.until(() => instance(env, 'custom')?.state === 'running');
  const app = instance(env, 'app');
  const mount = app.config.mounts!.find((m) => m.containerPath === '/dev/termination-log')!;
  t.regex(mount.hostPath, new RegExp(`^${path.join(root, 'root', 'pods', pod.metadata!.uid!, 'containers', 'app')}/[0-9a-f]{8}$`));
  t.false(mount.readonly);
  const file = await stat(mount.hostPath);
  t.is(file.size, 0);
  t.is(file.mode & 0o777, 0o666);
  t.like(app.config.annotations, { 'io.kubernetes.container.terminationMessagePath': '/dev/termination-log', 'io.kubernetes.container.terminationMessagePolicy': 'File' });
  t.like(instance(env, 'custom').config.annotations, { 'io.kubernetes.container.terminationMessagePath': '/tmp/why', 'io.kubernetes.container.terminationMessagePolicy': 'FallbackToLogsOnError' });
  t.truthy(instance(env, 'custom').config.mounts!.find((m) => m.containerPath === '/tmp/why'));
});

test('File: what the container wrote becomes state.terminated.message; after a restart it is in lastState and the new instance has a fresh file', async (t) => {
  const { env } = await fakeNode(t);
  const pod = makePod('restarts', { restartPolicy: 'Always' });
  env.source.set([pod]);
  await env.until(() => instance(env, 'app')?.state === 'running');
  const first = instance(env, 'app');
  const file = first.config.mounts!.find((m) => m.containerPath === '/dev/termination-log')!.hostPath;
  await writeFile(file, 'disk full\n');
  env.runtime.exitContainer(first.id, 1);
  await env.until(() => instance(env, 'app').id !== first.id && instance(env, 'app').state === 'running');
  const status = env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)!;
  t.like(status.containerStatuses![0].lastState!.terminated, { exitCode: 1, reason: 'Error', message: 'disk full\n' });
  const second = instance(env, 'app').config.mounts!.find((m) => m.containerPath === '/dev/termination-log')!.hostPath;
  t.not(second, file);
  t.is(await readFile(second, 'utf8'), '');
});

test('FallbackToLogsOnError: empty file and a non-zero exit → the last 80 log lines, at most 2 KiB; a written file wins; exit 0 keeps no message', async (t) => {
  const { env } = await fakeNode(t);
  const container = (name: string) => ({ name, image: IMAGE, terminationMessagePolicy: 'FallbackToLogsOnError' });
  const pod = makePod('fallback', { restartPolicy: 'Never' }, [container('fails'), container('wrote'), container('ok')]);
  env.source.set([pod]);
  await env.until(() => ['fails', 'wrote', 'ok'].every((n) => instance(env, n)?.state === 'running'));
  const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`);
  for (const name of ['fails', 'wrote', 'ok']) {
    const c = instance(env, name);
    await writeFile(c.logPath, criLog(lines));
  }
  await writeFile(instance(env, 'wrote').config.mounts!.find((m) => m.containerPath === '/dev/termination-log')!.hostPath, 'written');
  env.runtime.exitContainer(instance(env, 'fails').id, 2);
  env.runtime.exitContainer(instance(env, 'wrote').id, 2);
  env.runtime.exitContainer(instance(env, 'ok').id, 0);
  await env.until(() => env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)?.phase === 'Failed');
  const byName = Object.fromEntries(env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)!.containerStatuses!.map((s) => [s.name, s.state!.terminated!]));
  t.is(byName.fails.message, lines.slice(20).join('\n') + '\n');
  t.is(byName.wrote.message, 'written');
  t.is(byName.ok.message, undefined);

  // long lines: only the last 2048 bytes of the last 80 lines
  const dir = await tmp(t);
  const log = path.join(dir, '0.log');
  await writeFile(log, criLog(Array.from({ length: 90 }, (_, i) => `${i}`.padEnd(100, '.'))));
  const tail = await logTail(log);
  t.is(Buffer.byteLength(tail), 2048);
  t.true(tail.endsWith(`89${'.'.repeat(98)}\n`));
});

function exited(over: Partial<ContainerStatus>): ContainerStatus {
  return {
    id: 'c1', podSandboxId: 's', metadata: { name: 'app', attempt: 0 }, image: IMAGE, imageRef: '', state: 'exited', createdAt: 0, labels: {},
    annotations: { 'io.kubernetes.container.terminationMessagePath': '/dev/termination-log', 'io.kubernetes.container.terminationMessagePolicy': 'File' },
    startedAt: 0, finishedAt: 0, exitCode: 1, reason: 'Error', message: '', logPath: '', mounts: [], ...over,
  };
}

test('the message file: last 4096 bytes; the runtime message comes first; missing file or mount → no message; an unreadable file says so', async (t) => {
  const dir = await tmp(t);
  const file = path.join(dir, 'msg');
  const mounts = [{ containerPath: '/dev/termination-log', hostPath: file, readonly: false }];
  await writeFile(file, 'x'.repeat(5000) + 'END');
  const long = await exitedContainerMessage(exited({ mounts }));
  t.is(long.length, 4096);
  t.true(long.endsWith('END'));
  await writeFile(file, 'bye');
  t.is(await exitedContainerMessage(exited({ mounts, message: 'OOMKilled by the kernel' })), 'OOMKilled by the kernel: bye');
  t.is(await exitedContainerMessage(exited({ mounts: [] })), '');
  t.is(await exitedContainerMessage(exited({ mounts: [{ ...mounts[0], hostPath: path.join(dir, 'absent') }] })), '');
  t.regex(await exitedContainerMessage(exited({ mounts: [{ ...mounts[0], hostPath: dir }] })), /^Error on reading termination log .*: .*EISDIR/);
  // no annotation (a container created before this feature): the runtime's message only
  t.is(await exitedContainerMessage(exited({ annotations: {}, mounts, message: 'm' })), 'm');
});

test('all terminated messages of a pod stay within 12 KiB, split evenly over init and app containers', (t) => {
  const pod = makePod('cap', {}, [{ name: 'a', image: IMAGE }, { name: 'b', image: IMAGE }]);
  pod.spec!.initContainers = [{ name: 'i', image: IMAGE }];
  const terminated = (message: string) => ({ terminated: { exitCode: 1, message } });
  const status = {
    containerStatuses: [
      { name: 'a', image: IMAGE, imageID: '', ready: false, restartCount: 1, state: terminated('a'.repeat(5000)), lastState: terminated('é'.repeat(3000)) },
      { name: 'b', image: IMAGE, imageID: '', ready: false, restartCount: 0, state: terminated('short') },
    ],
    initContainerStatuses: [{ name: 'i', image: IMAGE, imageID: '', ready: false, restartCount: 0, state: terminated('i'.repeat(4096)) }],
  };
  capTerminationMessages(pod, status);
  t.is(status.containerStatuses[0].state.terminated.message, 'a'.repeat(4096));
  // cut at a character boundary: 2048 two-byte characters
  t.is(status.containerStatuses[0].lastState!.terminated.message, 'é'.repeat(2048));
  t.is(status.containerStatuses[1].state.terminated.message, 'short');
  t.is(status.initContainerStatuses[0].state.terminated.message, 'i'.repeat(4096));
  // generatePodStatus applies it
  const generated = generatePodStatus(pod, { uid: 'u', sandboxes: [], containers: [] }, { runtimeName: 'fake', hostIP: '', startTime: '', now: 0, errors: new Map() });
  t.is(generated.containerStatuses!.length, 2);
});

test('manifest: terminationMessagePolicy is checked; the path defaults to /dev/termination-log', (t) => {
  const doc = (c: object) => validateDocument({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'i', ...c }] } }, 0);
  t.deepEqual(doc({ terminationMessagePolicy: 'Sometimes' }).errors.map((e) => e.field), ['spec.containers[0].terminationMessagePolicy']);
  const ok = doc({ terminationMessagePolicy: 'FallbackToLogsOnError' });
  t.deepEqual(ok.errors, []);
  t.deepEqual(ok.warnings, []);
  t.like((ok.pod as Pod).spec!.containers[0], { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'FallbackToLogsOnError' });
});

// ---------------------------------------------------------------- real containerd

const itest = integrationTest({ root: true, commands: SPEC_NODE_COMMANDS });
const node = specNode(itest, { podSubnet: '10.88.21.0/24' });

itest.serial('containerd: a container writes /dev/termination-log and exits 1 → the message in its status; FallbackToLogsOnError → the log tail', async (t) => {
  node.add(node.pod('term', {
    restartPolicy: 'Never',
    containers: [
      { name: 'writes', ...sh('echo "config invalid: port 0" > /dev/termination-log; exit 1') },
      // a non-root user writes the file too (0666), and readOnlyRootFilesystem does not stop it
      { name: 'custom', ...sh('echo custom path > /tmp/why; exit 0'), terminationMessagePath: '/tmp/why', securityContext: { runAsUser: 1000, readOnlyRootFilesystem: true } },
      // stdout and stderr reach the log through separate pipes: the pause keeps their order
      { name: 'logs', ...sh('for i in $(seq 1 100); do echo "log $i"; done; sleep 0.3; echo "fatal: boom" >&2; exit 3'), terminationMessagePolicy: 'FallbackToLogsOnError' },
    ],
  }));
  const status = await node.waitFor('term Failed', () => node.statusOf('term')?.phase === 'Failed' && node.statusOf('term'), 60_000);
  const byName = Object.fromEntries(status.containerStatuses!.map((s) => [s.name, s.state!.terminated!]));
  t.like(byName.writes, { exitCode: 1, reason: 'Error', message: 'config invalid: port 0\n' });
  t.like(byName.custom, { exitCode: 0, reason: 'Completed', message: 'custom path\n' });
  t.is(byName.logs.exitCode, 3);
  const expected = [...Array.from({ length: 79 }, (_, i) => `log ${i + 22}`), 'fatal: boom'].join('\n') + '\n';
  t.is(byName.logs.message, expected);
});
