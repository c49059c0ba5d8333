/**
 * Garbage collection (kubelet's container and image GC). Containers: every minute, dead
 * (exited) containers beyond the newest one per pod and container name are removed
 * (upstream MaxPerPodContainer=1, MaxContainers=-1), and all dead containers of pods that no
 * source wants any more, then not-ready sandboxes left without containers (the newest one of a
 * live pod is kept). Images: every 5 minutes, when the image filesystem is at or above
 * imageGCHighThresholdPercent (85) used, unused images are removed least recently used first until
 * usage is back to imageGCLowThresholdPercent (80); images in use by any container, the sandbox
 * image, pinned images and images first seen less than minAge (2 min) ago are never removed.
 * The selection functions are pure; the collector applies them to the runtime.
 */
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock, ClockTimer } from './clock';
import { LABEL_CONTAINER_NAME, LABEL_MANAGED_BY, LABEL_POD_UID, MANAGED_BY } from './labels';
import type { Container, PodRuntime, PodSandbox, RuntimeImage } from './runtime';
import { errorMessage } from '../errors';

export const DEFAULT_CONTAINER_GC = { maxPerPodContainer: 1, maxContainers: -1, periodMs: 60_000 } as const;
export const DEFAULT_IMAGE_GC = { highThresholdPercent: 85, lowThresholdPercent: 80, minAgeMs: 120_000, periodMs: 300_000 } as const;

export interface FsUsage {
  capacityBytes: number;
  availableBytes: number;
}

/** Reads the usage of the image filesystem; undefined when it cannot be known. */
export type FsUsageReader = () => Promise<FsUsage | undefined>;

export interface ImageRecord {
  firstDetected: number;
  lastUsed: number;
}

/** Dead containers to remove: beyond the newest `maxPerPodContainer` per pod/container, and all of inactive pods. */
export function selectDeadContainers(containers: Container[], isPodActive: (uid: string) => boolean, maxPerPodContainer: number = DEFAULT_CONTAINER_GC.maxPerPodContainer): Container[] {
  const groups = new Map<string, Container[]>();
  for (const c of containers) {
    // only exited containers are dead: a `created` one is about to be started by its pod worker
    if (c.state !== 'exited') continue;
    const uid = c.labels[LABEL_POD_UID];
    if (!uid) continue;
    const key = `${uid}/${c.labels[LABEL_CONTAINER_NAME] ?? c.metadata.name}`;
    const list = groups.get(key) ?? [];
    list.push(c);
    groups.set(key, list);
  }
  const out: Container[] = [];
  for (const [key, list] of groups) {
    const uid = key.slice(0, key.indexOf('/'));
    list.sort((a, b) => b.createdAt - a.createdAt || b.metadata.attempt - a.metadata.attempt);
    const keep = isPodActive(uid) ? Math.max(0, maxPerPodContainer) : 0;
    out.push(...list.slice(keep));
  }
  return out;
}

/** Not-ready sandboxes holding no container; a live pod keeps its newest sandbox. */
export function selectDeadSandboxes(sandboxes: PodSandbox[], remaining: Container[], isPodActive: (uid: string) => boolean): PodSandbox[] {
  const used = new Set(remaining.map((c) => c.podSandboxId));
  const newest = new Map<string, PodSandbox>();
  for (const s of sandboxes) {
    const uid = s.labels[LABEL_POD_UID] ?? s.metadata.uid;
    const cur = newest.get(uid);
    if (!cur || s.createdAt > cur.createdAt) newest.set(uid, s);
  }
  return sandboxes.filter((s) => {
    if (s.state === 'ready' || used.has(s.id)) return false;
    const uid = s.labels[LABEL_POD_UID] ?? s.metadata.uid;
    return !(isPodActive(uid) && newest.get(uid)?.id === s.id);
  });
}

export interface ImageGcPolicy {
  highThresholdPercent: number;
  lowThresholdPercent: number;
  minAgeMs: number;
}

/**
 * Images to remove so that usage drops to the low threshold, least recently used first (then
 * oldest detected); [] below the high threshold. `records` must hold every image (see detectImages).
 */
export function selectImagesToRemove(
  images: RuntimeImage[], inUse: (image: RuntimeImage) => boolean, records: Map<string, ImageRecord>, usage: FsUsage, policy: ImageGcPolicy, now: number,
): { toFree: number; images: RuntimeImage[] } {
  if (usage.capacityBytes <= 0) return { toFree: 0, images: [] };
  const used = usage.capacityBytes - usage.availableBytes;
  if ((used * 100) / usage.capacityBytes < policy.highThresholdPercent) return { toFree: 0, images: [] };
  const toFree = used - Math.floor((usage.capacityBytes * policy.lowThresholdPercent) / 100);
  if (toFree <= 0) return { toFree: 0, images: [] };
  const candidates = images
    .filter((i) => !i.pinned && !inUse(i))
    .filter((i) => now - (records.get(i.id)?.firstDetected ?? now) >= policy.minAgeMs)
    .sort((a, b) => {
      const ra = records.get(a.id)!;
      const rb = records.get(b.id)!;
      return ra.lastUsed - rb.lastUsed || ra.firstDetected - rb.firstDetected;
    });
  const out: RuntimeImage[] = [];
  let freed = 0;
  for (const i of candidates) {
    if (freed >= toFree) break;
    out.push(i);
    freed += i.size;
  }
  return { toFree, images: out };
}

/** Updates first-detected / last-used times; forgets images that are gone. */
export function detectImages(images: RuntimeImage[], inUse: (image: RuntimeImage) => boolean, records: Map<string, ImageRecord>, now: number): void {
  const present = new Set<string>();
  for (const i of images) {
    present.add(i.id);
    let r = records.get(i.id);
    if (!r) records.set(i.id, (r = { firstDetected: now, lastUsed: 0 }));
    if (inUse(i)) r.lastUsed = now;
  }
  for (const id of [...records.keys()]) if (!present.has(id)) records.delete(id);
}

/** Usage of the filesystem the runtime keeps images on (CRI ImageFsInfo mount point + statfs). */
export function runtimeImageFsUsage(runtime: PodRuntime): FsUsageReader {
  return async () => {
    const mount = await runtime.imageFsMountpoint?.();
    if (!mount) return undefined;
    const s = await statfs(mount);
    return { capacityBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize };
  };
}

export interface GarbageCollectorOptions {
  runtime: PodRuntime;
  clock: Clock;
  logger: Logger;
  /** Whether a source still wants the pod (its dead containers are then kept up to maxPerPodContainer). */
  isPodActive: (uid: string) => boolean;
  /** Image filesystem usage (default: runtimeImageFsUsage). */
  fsUsage?: FsUsageReader;
  maxPerPodContainer?: number;
  containerPeriodMs?: number;
  imageGC?: Partial<ImageGcPolicy> & { periodMs?: number };
  /** Never removed; default: what the runtime reports as its sandbox image. */
  sandboxImage?: string;
}

export interface GarbageCollector {
  start(): void;
  stop(): void;
  collectContainers(): Promise<{ containers: string[]; sandboxes: string[] }>;
  collectImages(): Promise<string[]>;
}

export function createGarbageCollector(options: GarbageCollectorOptions): GarbageCollector {
  const { runtime, clock, isPodActive } = options;
  const logger = options.logger.child({ loop: 'gc' });
  const fsUsage = options.fsUsage ?? runtimeImageFsUsage(runtime);
  const policy: ImageGcPolicy = {
    highThresholdPercent: options.imageGC?.highThresholdPercent ?? DEFAULT_IMAGE_GC.highThresholdPercent,
    lowThresholdPercent: options.imageGC?.lowThresholdPercent ?? DEFAULT_IMAGE_GC.lowThresholdPercent,
    minAgeMs: options.imageGC?.minAgeMs ?? DEFAULT_IMAGE_GC.minAgeMs,
  };
  const records = new Map<string, ImageRecord>();
  const selector = { labels: { [LABEL_MANAGED_BY]: MANAGED_BY } };
  let sandboxImage = options.sandboxImage;
  const timers = new Map<string, ClockTimer>();
  let stopped = true;
  const lastError = { containers: '', images: '' };

  async function collectContainers() {
    const [containers, sandboxes] = await Promise.all([runtime.listContainers(selector), runtime.listPodSandboxes(selector)]);
    const dead = selectDeadContainers(containers, isPodActive, options.maxPerPodContainer ?? DEFAULT_CONTAINER_GC.maxPerPodContainer);
    const removed: string[] = [];
    for (const c of dead) {
      try {
        await runtime.removeContainer(c.id);
        removed.push(c.id);
      } catch (err) {
        logger.warn({ err, containerId: c.id }, 'cannot remove dead container');
      }
    }
    const gone = new Set(removed);
    const remaining = containers.filter((c) => !gone.has(c.id));
    const removedSandboxes: string[] = [];
    for (const s of selectDeadSandboxes(sandboxes, remaining, isPodActive)) {
      try {
        await runtime.removePodSandbox(s.id);
        removedSandboxes.push(s.id);
      } catch (err) {
        logger.warn({ err, sandbox: s.id }, 'cannot remove dead sandbox');
      }
    }
    if (removed.length || removedSandboxes.length) logger.info({ containers: removed.length, sandboxes: removedSandboxes.length }, 'removed dead containers and sandboxes');
    return { containers: removed, sandboxes: removedSandboxes };
  }

  async function collectImages() {
    if (!runtime.listImages || !runtime.removeImage) return [];
    if (!sandboxImage && runtime.status) sandboxImage = (await runtime.status().catch(() => undefined))?.sandboxImage;
    const [images, containers] = await Promise.all([runtime.listImages(), runtime.listContainers()]);
    const used = new Set<string>();
    for (const c of containers) {
      if (c.image) used.add(c.image);
      if (c.imageRef) used.add(c.imageRef);
    }
    if (sandboxImage) used.add(sandboxImage);
    const inUse = (i: RuntimeImage) => used.has(i.id) || i.repoTags.some((t) => used.has(t));
    const now = clock.now();
    detectImages(images, inUse, records, now);
    const usage = await fsUsage();
    if (!usage) return [];
    const { toFree, images: victims } = selectImagesToRemove(images, inUse, records, usage, policy, now);
    if (!toFree) return [];
    const removed: string[] = [];
    let freed = 0;
    for (const i of victims) {
      try {
        await runtime.removeImage(i.id);
        removed.push(i.id);
        records.delete(i.id);
        freed += i.size;
        logger.info({ image: i.repoTags[0] ?? i.id, imageId: i.id, size: i.size }, 'removed unused image');
      } catch (err) {
        logger.warn({ err, image: i.id }, 'cannot remove image');
      }
    }
    const usedPercent = Math.round(((usage.capacityBytes - usage.availableBytes) * 100) / usage.capacityBytes);
    if (freed < toFree) {
      logger.warn({ usedPercent, highThresholdPercent: policy.highThresholdPercent, toFree, freed }, 'image garbage collection could not free enough space');
    } else {
      logger.info({ usedPercent, toFree, freed }, 'image garbage collection freed space');
    }
    return removed;
  }

  function loop(kind: 'containers' | 'images', periodMs: number, fn: () => Promise<unknown>) {
    const run = () => {
      if (stopped) return;
      void fn()
        .then(() => {
          if (lastError[kind]) logger.info({ kind }, 'garbage collection recovered');
          lastError[kind] = '';
        })
        .catch((err) => {
          if (errorMessage(err) !== lastError[kind]) logger.error({ err, kind }, 'garbage collection failed');
          lastError[kind] = errorMessage(err);
        })
        .finally(() => {
          if (!stopped) timers.set(kind, clock.setTimer(periodMs, run));
        });
    };
    timers.set(kind, clock.setTimer(periodMs, run));
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop('containers', options.containerPeriodMs ?? DEFAULT_CONTAINER_GC.periodMs, collectContainers);
      loop('images', options.imageGC?.periodMs ?? DEFAULT_IMAGE_GC.periodMs, collectImages);
    },
    stop() {
      stopped = true;
      for (const t of timers.values()) t.cancel();
      timers.clear();
    },
    collectContainers,
    collectImages,
  };
}
