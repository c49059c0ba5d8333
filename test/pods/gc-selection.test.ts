/**
 * Garbage collection: which dead containers, sandboxes and images go (upstream MaxPerPodContainer=1,
 * image GC from 85 % down to 80 %, least recently used first, never in-use images), and the
 * collector applying it to the fake runtime with an injected image-filesystem usage.
 */
import test from 'ava';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime } from '../../agent/pods/fake-runtime';
import {
  createGarbageCollector, detectImages, selectDeadContainers, selectDeadSandboxes, selectImagesToRemove, type FsUsage, type ImageRecord,
} from '../../agent/pods/gc';
import type { Container, PodSandbox, RuntimeImage } from '../../agent/pods/runtime';
import { IMAGE, makePod, running, setup } from './health-helpers';

function container(id: string, uid: string, name: string, state: Container['state'], createdAt: number, sandbox = `sb-${uid}`): Container {
  return {
    id, podSandboxId: sandbox, metadata: { name, attempt: 0 }, image: 'img', imageRef: 'sha256:img', state, createdAt,
    labels: { 'io.kubernetes.pod.uid': uid, 'io.kubernetes.container.name': name }, annotations: {},
  };
}

function sandbox(id: string, uid: string, state: PodSandbox['state'], createdAt: number): PodSandbox {
  return { id, metadata: { name: 'p', uid, namespace: 'default', attempt: 0 }, state, createdAt, labels: { 'io.kubernetes.pod.uid': uid }, annotations: {} };
}

test('dead containers: the newest dead instance per pod container is kept, all of a deleted pod go, running or just created ones never', (t) => {
  const containers = [
    container('a1', 'live', 'app', 'exited', 1), container('a2', 'live', 'app', 'exited', 2), container('a3', 'live', 'app', 'running', 3),
    container('b1', 'live', 'side', 'exited', 1), container('b2', 'live', 'side', 'created', 5),
    container('d1', 'gone', 'app', 'exited', 1), container('d2', 'gone', 'app', 'exited', 2), container('d3', 'gone', 'web', 'running', 3),
  ];
  const active = (uid: string) => uid === 'live';
  t.deepEqual(selectDeadContainers(containers, active).map((c) => c.id).sort(), ['a1', 'd1', 'd2']);
  t.deepEqual(selectDeadContainers(containers, active, 2).map((c) => c.id).sort(), ['d1', 'd2']);
});

test('dead sandboxes: not ready and empty ones go, except the newest of a live pod', (t) => {
  const sandboxes = [sandbox('s1', 'live', 'notready', 1), sandbox('s2', 'live', 'notready', 2), sandbox('s3', 'live', 'notready', 0), sandbox('g1', 'gone', 'notready', 1), sandbox('g2', 'gone', 'ready', 2)];
  const remaining = [container('x', 'live', 'app', 'exited', 1, 's3')];
  t.deepEqual(selectDeadSandboxes(sandboxes, remaining, (uid) => uid === 'live').map((s) => s.id), ['s1', 'g1']);
});

const image = (id: string, size: number, extra: Partial<RuntimeImage> = {}): RuntimeImage => ({ id, repoTags: [`${id}:tag`], size, pinned: false, ...extra });
const policy = { highThresholdPercent: 85, lowThresholdPercent: 80, minAgeMs: 0 };

test('image GC: nothing below 85 %; from 85 % it frees down to 80 %, least recently used first, never in-use or pinned images', (t) => {
  const images = [image('old', 300), image('older', 300), image('used', 5000), image('pinned', 5000, { pinned: true }), image('recent', 300)];
  const records = new Map<string, ImageRecord>([
    ['old', { firstDetected: 0, lastUsed: 200 }], ['older', { firstDetected: 0, lastUsed: 100 }], ['used', { firstDetected: 0, lastUsed: 900 }],
    ['pinned', { firstDetected: 0, lastUsed: 0 }], ['recent', { firstDetected: 0, lastUsed: 800 }],
  ]);
  const inUse = (i: RuntimeImage) => i.id === 'used';
  const at = (percent: number): FsUsage => ({ capacityBytes: 10_000, availableBytes: 10_000 - percent * 100 });
  t.deepEqual(selectImagesToRemove(images, inUse, records, at(84), policy, 1000), { toFree: 0, images: [] });
  // 85 %: 500 bytes over 80 % → the two least recently used (300 + 300)
  const r85 = selectImagesToRemove(images, inUse, records, at(85), policy, 1000);
  t.is(r85.toFree, 500);
  t.deepEqual(r85.images.map((i) => i.id), ['older', 'old']);
  // 95 %: everything removable goes, still never the used or pinned image
  t.deepEqual(selectImagesToRemove(images, inUse, records, at(95), policy, 1000).images.map((i) => i.id), ['older', 'old', 'recent']);
  // images first seen less than minAge ago stay
  t.deepEqual(selectImagesToRemove(images, inUse, records, at(95), { ...policy, minAgeMs: 2000 }, 1000).images, []);
});

test('detectImages: first-detected stays, last-used follows use, gone images are forgotten', (t) => {
  const records = new Map<string, ImageRecord>();
  detectImages([image('a', 1), image('b', 1)], (i) => i.id === 'a', records, 10);
  detectImages([image('a', 1)], () => false, records, 20);
  t.deepEqual([...records], [['a', { firstDetected: 10, lastUsed: 10 }]]);
});

test('collector on the runtime: dead containers of a deleted pod and of restarts are removed; an unused image is removed under disk pressure', async (t) => {
  let usage: FsUsage = { capacityBytes: 100_000, availableBytes: 50_000 };
  const clock = createFakeClock();
  const runtime = createFakeRuntime(clock, { images: [IMAGE, 'unused:1', 'also-unused:1'] });
  runtime.imageSizes.set('unused:1', 4000);
  runtime.imageSizes.set('also-unused:1', 4000);
  const env = await setup({ runtime, clock, config: { backoff: { initialMs: 1000, maxMs: 1000 } } });
  t.teardown(() => env.kubelet.stop());
  env.source.set([makePod('crash', {}, [{ name: 'app', image: IMAGE }]), makePod('doomed', { restartPolicy: 'Never' })]);
  await env.until(() => running(runtime).length === 2);
  // three crashes of `crash`, one exit of `doomed`
  for (let i = 0; i < 3; i++) {
    const c = running(runtime).find((x) => x.labels['io.kubernetes.pod.name'] === 'crash-node1')!;
    runtime.exitContainer(c.id, 1);
    await env.until(() => running(runtime).some((x) => x.labels['io.kubernetes.pod.name'] === 'crash-node1'), 10_000);
  }
  const doomed = running(runtime).find((x) => x.labels['io.kubernetes.pod.name'] === 'doomed-node1')!;
  runtime.exitContainer(doomed.id, 0);
  await env.pass(2000);
  const gc = createGarbageCollector({
    runtime, clock, logger: pino({ level: 'silent' }), fsUsage: async () => usage, imageGC: { minAgeMs: 0 },
    isPodActive: (uid) => uid !== doomed.labels['io.kubernetes.pod.uid'],
  });
  const result = await gc.collectContainers();
  t.deepEqual(result.containers, [doomed.id]);
  // the doomed pod finished (restartPolicy Never): its stopped, now empty sandbox goes too
  const doomedSandbox = doomed.podSandboxId;
  t.deepEqual(result.sandboxes, [doomedSandbox]);
  const perPod = [...runtime.containers.values()].filter((c) => c.labels['io.kubernetes.pod.name'] === 'crash-node1');
  t.is(perPod.length, 2, 'one running and the newest dead instance');
  // image GC: 50 % used → nothing; 90 % → free 10 000 bytes: both unused images, never the one in use
  t.deepEqual(await gc.collectImages(), []);
  await gc.collectImages();
  clock.advance(1000);
  usage = { capacityBytes: 100_000, availableBytes: 10_000 };
  t.deepEqual((await gc.collectImages()).sort(), ['sha256:also-unused:1', 'sha256:unused:1']);
  t.deepEqual([...runtime.images], [IMAGE]);
});
