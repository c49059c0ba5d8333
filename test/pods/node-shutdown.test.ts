/**
 * Graceful node shutdown against the in-memory runtime and a fake clock: regular pods stop first
 * with min(own grace, shutdownGracePeriod − critical share), critical pods after them with at most
 * the critical share, every stopped pod ends Failed/Terminated, and a stuck pod does not hold the
 * critical pods back beyond its group's time. The last test does it with static pods on a real
 * containerd (private, in its own network namespace).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import pino from 'pino';
import { createCriClient } from '../../cri/client';
import { createStaticPodsComponent } from '../../agent/pods';
import { createCriRuntime } from '../../agent/pods/cri-runtime';
import type { Pod } from 'kubernetes-types/core/v1';
import { createFakeClock, type FakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime, type FakeRuntime } from '../../agent/pods/fake-runtime';
import { createKubelet, type KubeletComponent } from '../../agent/pods/kubelet';
import { applyDefaults } from '../../agent/pods/manifest';
import {
  isCriticalPod, NODE_SHUTDOWN_MESSAGE, nodeShutdownStatus, planShutdown, shutdownGracePeriod, type ShutdownTarget,
} from '../../agent/pods/node-shutdown';
import type { PodSource } from '../../agent/pods/pod-source';
import { toStaticPod } from '../../agent/pods/static-pod';
import { startContainerd } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { integrationTest } from '../harness/requirements';
import { unitRootDir } from './health-helpers';

const itest = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'ip'] });

const IMAGE = 'busybox:1';
const T0 = Date.UTC(2025, 0, 1);

function makePod(name: string, spec: Record<string, unknown> = {}): Pod {
  const raw = { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'app', image: IMAGE }], ...spec } };
  return toStaticPod(applyDefaults(raw as Pod), raw, `/manifests/${name}.yaml`, 'node1');
}

function memorySource(initial: Pod[]) {
  let deliver: (pods: Pod[]) => void = () => {};
  const source: PodSource & { set(pods: Pod[]): void } = {
    name: 'memory',
    async start(onPods) {
      deliver = onPods;
      onPods(initial);
    },
    stop() {},
    problems: () => [],
    set: (pods) => deliver(pods),
  };
  return source;
}

async function flush(runtime: FakeRuntime) {
  let quiet = 0;
  let seen = -1;
  while (quiet < 4) {
    await new Promise((r) => setTimeout(r, 5));
    quiet = runtime.calls.length === seen ? quiet + 1 : 0;
    seen = runtime.calls.length;
  }
}

interface Stop {
  pod: string;
  grace: number;
  /** Seconds since T0 when the stop was asked. */
  at: number;
}

interface Env {
  clock: FakeClock;
  runtime: FakeRuntime;
  kubelet: KubeletComponent;
  source: ReturnType<typeof memorySource>;
  stops: Stop[];
  /** Containers whose stop never returns (a runtime that hangs). */
  hanging: Set<string>;
  logs: { level: number; msg: string; [k: string]: unknown }[];
  /** Moves the fake clock second by second, letting the workers run in between. */
  advance(seconds: number): Promise<void>;
}

/**
 * A kubelet on the fake runtime whose containers ignore SIGTERM: a stop takes the whole grace
 * period on the fake clock, as with a real runtime that kills at the end of it.
 */
async function setup(pods: Pod[]): Promise<Env> {
  const clock = createFakeClock(T0);
  const runtime = createFakeRuntime(clock, { images: [IMAGE] });
  const stops: Stop[] = [];
  const hanging = new Set<string>();
  const realStop = runtime.stopContainer.bind(runtime);
  runtime.stopContainer = (id, timeoutSeconds) => {
    const pod = runtime.containers.get(id)?.labels['io.kubernetes.pod.name'] ?? id;
    stops.push({ pod, grace: timeoutSeconds, at: (clock.now() - T0) / 1000 });
    if (hanging.has(pod)) return new Promise<void>(() => {});
    return new Promise<void>((resolve, reject) => void clock.setTimer(timeoutSeconds * 1000, () => void realStop(id, timeoutSeconds).then(resolve, reject)));
  };
  const logs: Env['logs'] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const source = memorySource(pods);
  const kubelet = createKubelet(
    { runtime, clock, logger, config: { staticPodPath: '/manifests', podLogsDir: '/tmp/keelson-test-pod-logs', rootDir: unitRootDir(), nodeName: 'node1', resolvConf: '/nonexistent' } },
    { sources: [source] },
  );
  await kubelet.start();
  await flush(runtime);
  clock.advance(1000);
  await flush(runtime);
  return {
    clock, runtime, kubelet, source, stops, hanging, logs,
    async advance(seconds) {
      for (let i = 0; i < seconds; i++) {
        clock.advance(1000);
        await flush(runtime);
      }
    },
  };
}

const running = (env: Env) => [...env.runtime.containers.values()].filter((c) => c.state === 'running').map((c) => c.labels['io.kubernetes.pod.name']).sort();

function target(pod: Pod): ShutdownTarget {
  return { uid: pod.metadata!.uid!, ref: pod.metadata!.name!, pod: () => pod, phase: () => 'syncing', terminate() {}, idle: async () => {} };
}

test('critical pods: the system priority classes, or a priority of 2000000000 and above', (t) => {
  t.true(isCriticalPod(makePod('a', { priorityClassName: 'system-node-critical' })));
  t.true(isCriticalPod(makePod('b', { priorityClassName: 'system-cluster-critical' })));
  t.true(isCriticalPod(makePod('c', { priority: 2_000_000_000 })));
  t.false(isCriticalPod(makePod('d', { priority: 1_999_999_999 })));
  t.false(isCriticalPod(makePod('e', { priorityClassName: 'high-priority' })));
  t.false(isCriticalPod(makePod('f')));
});

test('the plan: regular pods first with the rest of the period, critical pods last with their share', (t) => {
  const pods = [makePod('web'), makePod('dns', { priorityClassName: 'system-cluster-critical' }), makePod('batch')];
  const groups = planShutdown(pods.map(target), { gracePeriodSeconds: 30, criticalGracePeriodSeconds: 10 });
  t.deepEqual(groups.map((g) => [g.critical, g.gracePeriodSeconds, g.workers.map((w) => w.ref)]), [
    [false, 20, ['web-node1', 'batch-node1']],
    [true, 10, ['dns-node1']],
  ]);
  // a critical share longer than the whole period is capped by it; an empty group is left out
  t.deepEqual(planShutdown([target(pods[1])], { gracePeriodSeconds: 5, criticalGracePeriodSeconds: 10 }).map((g) => g.gracePeriodSeconds), [5]);
  t.is(shutdownGracePeriod(makePod('x', { terminationGracePeriodSeconds: 5 }), 20), 5);
  t.is(shutdownGracePeriod(makePod('y', { terminationGracePeriodSeconds: 60 }), 20), 20);
  t.is(shutdownGracePeriod(makePod('z'), 20), 20, 'no terminationGracePeriodSeconds: 30 s, capped by the group');
});

test('the shutdown status: Failed, reason Terminated, a DisruptionTarget condition', (t) => {
  const status = nodeShutdownStatus({ phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] }, T0);
  t.is(status.phase, 'Failed');
  t.is(status.reason, 'Terminated');
  t.is(status.message, 'Pod was terminated in response to imminent node shutdown.');
  t.deepEqual(status.conditions, [
    { type: 'Ready', status: 'False' },
    { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: NODE_SHUTDOWN_MESSAGE, lastTransitionTime: '2025-01-01T00:00:00Z' },
  ]);
  t.is(nodeShutdownStatus(status, T0 + 5000).conditions![1].lastTransitionTime, '2025-01-01T00:00:00Z', 'kept when set again');
});

test('shutdownPods stops regular pods with their grace, then critical pods with the critical grace', async (t) => {
  const env = await setup([
    makePod('web', { terminationGracePeriodSeconds: 60 }),
    makePod('batch', { terminationGracePeriodSeconds: 5 }),
    makePod('dns', { priorityClassName: 'system-node-critical', terminationGracePeriodSeconds: 60 }),
    makePod('agent', { priority: 2_000_001_000, terminationGracePeriodSeconds: 3 }),
  ]);
  t.teardown(() => env.kubelet.stop());
  t.deepEqual(running(env), ['agent-node1', 'batch-node1', 'dns-node1', 'web-node1']);
  const start = (env.clock.now() - T0) / 1000;
  let finished = false;
  env.logs.length = 0;
  const done = env.kubelet.shutdownPods({ gracePeriodSeconds: 30, criticalGracePeriodSeconds: 10 }).then(() => void (finished = true));
  await flush(env.runtime);
  t.deepEqual(env.stops.map((s) => [s.pod, s.grace, s.at - start]).sort(), [['batch-node1', 5, 0], ['web-node1', 20, 0]]);

  await env.advance(5);
  t.deepEqual(running(env), ['agent-node1', 'dns-node1', 'web-node1'], 'batch stopped after its own 5 s');
  await env.advance(14);
  t.is(env.stops.length, 2, 'critical pods wait while a regular pod is still stopping');
  await env.advance(1);
  t.deepEqual(running(env), ['agent-node1', 'dns-node1']);
  t.deepEqual(env.stops.slice(2).map((s) => [s.pod, s.grace, s.at - start]).sort(), [['agent-node1', 3, 20], ['dns-node1', 10, 20]]);
  t.false(finished);

  await env.advance(10);
  await done;
  t.deepEqual(running(env), []);
  for (const name of ['web', 'batch', 'dns', 'agent']) {
    const snapshot = env.kubelet.pods().find((p) => p.name === `${name}-node1`)!;
    const status = env.kubelet.statusManager.getPodStatus(snapshot.uid)!;
    t.is(status.phase, 'Failed', name);
    t.is(status.reason, 'Terminated', name);
    t.is(status.message, NODE_SHUTDOWN_MESSAGE, name);
    t.is(status.conditions?.find((c) => c.type === 'DisruptionTarget')?.status, 'True', name);
    t.is(status.containerStatuses?.[0].state?.terminated?.exitCode, 143, `${name}: the container's end is kept`);
    t.is(env.kubelet.workerPhase(snapshot.uid), 'terminated');
  }
  const messages = env.logs.map((l) => l.msg);
  t.true(messages.indexOf('stopping pods for node shutdown') < messages.indexOf('stopping critical pods for node shutdown'));
  t.false(env.logs.some((l) => l.level >= 40), 'no warning when every pod stops in time');
});

test('a pod that does not stop holds the critical pods back only until its group time is over', async (t) => {
  const env = await setup([makePod('stuck', { terminationGracePeriodSeconds: 30 }), makePod('dns', { priorityClassName: 'system-cluster-critical', terminationGracePeriodSeconds: 2 })]);
  t.teardown(() => env.kubelet.stop());
  env.hanging.add('stuck-node1');
  const start = (env.clock.now() - T0) / 1000;
  env.logs.length = 0;
  const done = env.kubelet.shutdownPods({ gracePeriodSeconds: 8, criticalGracePeriodSeconds: 4 });
  await flush(env.runtime);
  t.deepEqual(env.stops.map((s) => [s.pod, s.grace]), [['stuck-node1', 4]]);
  await env.advance(5);
  t.is(env.stops.length, 1);
  // the group's 4 s, plus a little for the runtime to report the kill
  await env.advance(1);
  t.deepEqual(env.stops.map((s) => [s.pod, s.grace, s.at - start]), [['stuck-node1', 4, 0], ['dns-node1', 2, 6]]);
  await env.advance(4);
  await done;
  const warning = env.logs.find((l) => l.level === 40);
  t.is(warning?.msg, 'pods not stopped within their node shutdown grace period; going on');
  t.is(warning?.pods, 'default/stuck-node1');
  const dns = env.kubelet.pods().find((p) => p.name === 'dns-node1')!;
  t.is(dns.phase, 'Failed');
});

test('no pod is started once the node is shutting down', async (t) => {
  const env = await setup([makePod('web', { terminationGracePeriodSeconds: 1 })]);
  t.teardown(() => env.kubelet.stop());
  const done = env.kubelet.shutdownPods({ gracePeriodSeconds: 10, criticalGracePeriodSeconds: 0 });
  await flush(env.runtime);
  env.source.set([makePod('web', { terminationGracePeriodSeconds: 1 }), makePod('late')]);
  await env.advance(3);
  await done;
  t.false([...env.runtime.sandboxes.values()].some((s) => s.config.metadata.name === 'late-node1'));
  t.deepEqual(running(env), []);
});

/** A static pod whose container ignores SIGTERM (sleep as PID 1): it stops when its grace period ends. */
function manifest(name: string, grace: number, priorityClassName?: string): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { terminationGracePeriodSeconds: grace, ...(priorityClassName ? { priorityClassName } : {}), containers: [{ name: 'app', image: BUSYBOX_IMAGE, command: ['sleep', '3600'] }] },
  });
}

itest.serial('containerd: a regular and a critical static pod are stopped in order, each with its grace period', async (t) => {
  const node = await startContainerd({ podSubnet: '10.88.9.0/24' });
  const manifests = await mkdtemp(path.join(os.tmpdir(), 'keelson-shutdown-'));
  const cri = createCriClient({ endpoint: node.endpoint });
  const logs: { msg: string; pod?: string; gracePeriod?: number }[] = [];
  const kubelet = createStaticPodsComponent({
    cri,
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
    config: { staticPodPath: manifests, podLogsDir: node.podLogDir, rootDir: path.join(node.dir, 'keelson'), nodeName: 'edge1', nodeIP: '192.0.2.10', fileCheckFrequencyMs: 1000 },
  });
  t.teardown(async () => {
    if (!t.passed) node.markFailed();
    await Promise.race([kubelet.stop(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    cri.close();
    await node.stop();
    await rm(manifests, { recursive: true, force: true });
  });
  await writeFile(path.join(manifests, 'web.json'), manifest('web', 60));
  await writeFile(path.join(manifests, 'dns.json'), manifest('dns', 60, 'system-node-critical'));
  await kubelet.start();
  const deadline = Date.now() + 30_000;
  while (kubelet.pods().filter((p) => p.phase === 'Running').length < 2) {
    if (Date.now() > deadline) throw new Error(`pods not running: ${JSON.stringify(kubelet.pods())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const uid = (name: string) => kubelet.pods().find((p) => p.name === `${name}-edge1`)!.uid;

  // 5 s in all, 2 s of it for critical pods: web gets 3 s, then dns 2 s
  const began = Date.now();
  await kubelet.shutdownPods({ gracePeriodSeconds: 5, criticalGracePeriodSeconds: 2 });
  const tookMs = Date.now() - began;

  const runtime = createCriRuntime(cri);
  const finishedAt = async (name: string) => {
    const [c] = await runtime.listContainers({ labels: { 'io.kubernetes.pod.uid': uid(name) } });
    const status = await runtime.containerStatus(c.id);
    t.is(status.state, 'exited', name);
    t.is(status.exitCode, 137, `${name} ignored SIGTERM and was killed at the end of its grace period`);
    return status.finishedAt;
  };
  const web = (await finishedAt('web')) - began;
  const dns = (await finishedAt('dns')) - began;
  t.log(`web stopped after ${web} ms, dns after ${dns} ms, shutdownPods took ${tookMs} ms`);
  t.true(web >= 2500 && web < 4500, `web (regular) killed after its 3 s: ${web} ms`);
  t.true(dns - web >= 1500 && dns - web < 3500, `dns (critical) stopped after web, within its 2 s: ${dns - web} ms later`);
  t.true(tookMs < 9000);
  const killed = logs.filter((l) => l.msg === 'killing container').map((l) => [l.pod, l.gracePeriod]);
  t.deepEqual(killed, [['default/web-edge1', 3], ['default/dns-edge1', 2]]);
  for (const name of ['web', 'dns']) {
    const status = kubelet.statusManager.getPodStatus(uid(name))!;
    t.is(status.phase, 'Failed', name);
    t.is(status.reason, 'Terminated', name);
    t.is(status.message, NODE_SHUTDOWN_MESSAGE, name);
  }
});
