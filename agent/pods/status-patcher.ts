/**
 * Sends the status manager's pod statuses to the apiserver (kubelet's status manager sync loop):
 * `PATCH pods/<name>/status` as a strategic merge patch computed between what the apiserver holds
 * and what keelson knows, with the pod's UID as precondition, and only when they differ. A static
 * pod's status goes to its mirror pod. Failures are retried per pod with jittered backoff (5xx,
 * conflicts, an unreachable apiserver); a pod gone from the apiserver (404) is dropped. A pod being
 * deleted is removed with grace period 0 once the kubelet says its containers are gone.
 */
import type { Pod, PodStatus } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { isConflict, isNotFound } from '../kube/api-error';
import type { KubeClient } from '../kube/client';
import { compareResourceVersions } from '../kube/informer';
import { Resources } from '../kube/resources';
import { realClock, type Clock, type ClockTimer } from './clock';
import { canonicalJson } from './labels';
import type { StatusManager } from './status-manager';

/** The status fields the kubelet owns; others (nominatedNodeName, resize…) are left as they are. */
const OWNED = ['phase', 'conditions', 'message', 'reason', 'hostIP', 'hostIPs', 'podIP', 'podIPs', 'startTime', 'containerStatuses', 'initContainerStatuses', 'qosClass'];
/** Conditions the kubelet sets; others (readiness gates, DisruptionTarget) are kept. */
const KUBELET_CONDITIONS = new Set(['PodScheduled', 'Initialized', 'ContainersReady', 'Ready', 'PodReadyToStartContainers']);
/** Patch merge keys of the status lists (as in the Pod API's strategic merge metadata). */
const MERGE_KEYS: Record<string, string> = {
  conditions: 'type',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  ephemeralContainerStatuses: 'name',
  podIPs: 'ip',
  hostIPs: 'ip',
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);
const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

/** Two-way diff of objects: changed keys, removed keys as null. undefined when equal. */
function diffObject(old: JsonObject, next: JsonObject, listKeys: Record<string, string> = {}): JsonObject | undefined {
  const patch: JsonObject = {};
  for (const [key, value] of Object.entries(next)) {
    const before = old[key];
    if (same(before, value)) continue;
    const mergeKey = listKeys[key];
    if (mergeKey && Array.isArray(before) && Array.isArray(value)) {
      Object.assign(patch, diffList(key, mergeKey, before, value));
    } else if (isObject(before) && isObject(value)) {
      const inner = diffObject(before, value);
      if (inner) patch[key] = inner;
    } else {
      patch[key] = value;
    }
  }
  for (const key of Object.keys(old)) if (!(key in next)) patch[key] = null;
  return Object.keys(patch).length ? patch : undefined;
}

/** A list merged by key: changed or new elements, `$patch: delete` for removed ones, and the order. */
function diffList(field: string, mergeKey: string, old: Json[], next: Json[]): JsonObject {
  const keyOf = (e: Json) => (isObject(e) ? String(e[mergeKey]) : String(e));
  const before = new Map(old.map((e) => [keyOf(e), e]));
  const nextKeys = new Set(next.map(keyOf));
  const items: Json[] = [];
  for (const e of next) {
    const prev = before.get(keyOf(e));
    if (!isObject(e) || !isObject(prev)) {
      if (!same(prev, e)) items.push(e);
      continue;
    }
    const inner = diffObject(prev, e);
    if (inner) items.push({ ...inner, [mergeKey]: e[mergeKey] });
  }
  for (const e of old) if (isObject(e) && !nextKeys.has(keyOf(e))) items.push({ [mergeKey]: e[mergeKey], $patch: 'delete' });
  const out: JsonObject = {};
  if (items.length) out[field] = items;
  const reordered = old.map(keyOf).filter((k) => nextKeys.has(k)).join('\0') !== next.map(keyOf).filter((k) => before.has(k)).join('\0');
  if (items.length || reordered) out[`$setElementOrder/${field}`] = next.map((e) => (isObject(e) ? { [mergeKey]: e[mergeKey] } : e));
  return out;
}

function clean<T>(v: T): JsonObject {
  return (v === undefined ? {} : JSON.parse(JSON.stringify(v))) as JsonObject;
}

/** The status to send: keelson's status, plus the conditions other actors own from the server's copy. */
export function desiredStatus(server: PodStatus | undefined, mine: PodStatus): JsonObject {
  const desired = clean(mine);
  const mineTypes = new Set((mine.conditions ?? []).map((c) => c.type));
  // a condition keelson sets itself (DisruptionTarget on a node shutdown) is not taken from the server too
  const foreign = (server?.conditions ?? []).filter((c) => !KUBELET_CONDITIONS.has(c.type) && !mineTypes.has(c.type));
  if (foreign.length) desired.conditions = [...((desired.conditions as Json[]) ?? []), ...clean(foreign) as unknown as Json[]];
  return desired;
}

/**
 * The strategic merge patch turning the server's status into desired, over the fields the kubelet
 * owns; undefined when there is nothing to change.
 */
export function statusPatch(server: PodStatus | undefined, desired: JsonObject): JsonObject | undefined {
  const old = clean(server);
  const ownedOld: JsonObject = {};
  const ownedNew: JsonObject = {};
  for (const key of OWNED) {
    if (old[key] !== undefined) ownedOld[key] = old[key];
    if (desired[key] !== undefined) ownedNew[key] = desired[key];
  }
  return diffObject(ownedOld, ownedNew, MERGE_KEYS);
}

export interface StatusPatcherOptions {
  client: Pick<KubeClient, 'patch' | 'delete'>;
  statusManager: StatusManager;
  logger: Logger;
  clock?: Clock;
  /** The apiserver's copy of the pod whose status this UID's status goes to (the mirror pod for a static pod). */
  target(uid: string): Pod | undefined;
  /** Whether the pod may now be deleted with grace 0 (it is being deleted and its containers are gone). */
  deletable(uid: string): boolean;
  /** Parallel requests (default 8). */
  concurrency?: number;
  /** Retry backoff (default 500 ms doubling to 30 s). */
  retry?: { initialMs?: number; maxMs?: number };
}

export interface StatusPatcher {
  /** Something about this pod changed (its status, or its apiserver copy): bring the apiserver up to date. */
  sync(uid: string): void;
  /** Sync every pod the status manager knows. */
  syncAll(): void;
  /** Drop what is known about a pod (it is gone). */
  forget(uid: string): void;
  stop(): void;
  /** Resolves when no request is queued or in flight (tests). */
  idle(): Promise<void>;
  stats(): { patches: number; deletes: number; failing: boolean; lastError?: string };
}

export function createStatusPatcher(options: StatusPatcherOptions): StatusPatcher {
  const { client, statusManager } = options;
  const clock = options.clock ?? realClock;
  const logger = options.logger.child({ component: 'status' });
  const concurrency = options.concurrency ?? 8;
  const initialMs = options.retry?.initialMs ?? 500;
  const maxMs = options.retry?.maxMs ?? 30_000;
  const pending = new Set<string>();
  const inFlight = new Map<string, Promise<void>>();
  const again = new Set<string>();
  const retries = new Map<string, { attempts: number; timer: ClockTimer }>();
  /** The pod as the last successful PATCH returned it: newer than the informer's copy for a moment. */
  const acked = new Map<string, Pod>();
  const deleted = new Set<string>();
  let stopped = false;
  let patches = 0;
  let deletes = 0;
  let failing = false;
  let lastError: string | undefined;
  let idleWaiters: Array<() => void> = [];

  function newest(a: Pod | undefined, b: Pod | undefined): Pod | undefined {
    if (!a || !b) return a ?? b;
    if (a.metadata?.uid !== b.metadata?.uid) return a;
    const c = compareResourceVersions(b.metadata?.resourceVersion, a.metadata?.resourceVersion);
    return c !== undefined && c > 0 ? b : a;
  }

  async function work(uid: string) {
    const target = options.target(uid);
    if (!target?.metadata?.name || !target.metadata.uid) return; // not in the apiserver (yet): a later sync sends it
    const ref = `${target.metadata.namespace}/${target.metadata.name}`;
    const mine = statusManager.getPodStatus(uid);
    if (mine) {
      const base = newest(target, acked.get(uid));
      const desired = desiredStatus(base?.status, mine);
      const patch = statusPatch(base?.status, desired);
      if (patch) {
        const updated = await client.patch<Pod>(
          Resources.pods,
          target.metadata.name,
          { metadata: { uid: target.metadata.uid }, status: patch },
          { type: 'strategic', namespace: target.metadata.namespace, subresource: 'status' },
        );
        patches++;
        acked.set(uid, updated);
        logger.debug({ pod: ref, phase: desired.phase }, 'pod status patched');
      }
    }
    if (target.metadata.deletionTimestamp && !deleted.has(uid) && options.deletable(uid)) {
      await client.delete(Resources.pods, target.metadata.name, {
        namespace: target.metadata.namespace,
        options: { gracePeriodSeconds: 0, preconditions: { uid: target.metadata.uid } },
      });
      deletes++;
      deleted.add(uid);
      logger.info({ pod: ref }, 'pod deleted from the apiserver (containers are gone)');
    }
  }

  function onSuccess(uid: string) {
    retries.delete(uid);
    if (failing && retries.size === 0) {
      failing = false;
      logger.info('pod status updates succeed again');
    }
  }

  function onFailure(uid: string, err: unknown) {
    if (isNotFound(err)) {
      retries.delete(uid); // the pod is gone from the apiserver
      return;
    }
    lastError = errorMessage(err);
    const attempts = (retries.get(uid)?.attempts ?? 0) + 1;
    const target = options.target(uid)?.metadata;
    const pod = target ? `${target.namespace}/${target.name}` : uid;
    // one warning per outage (all pods together); each further failure is a debug line
    if (!failing) {
      failing = true;
      logger.warn({ err, pod }, 'cannot update pod status; retrying with backoff');
    } else {
      logger.debug({ err, pod, attempt: attempts }, 'pod status update failed again');
    }
    const nominal = isConflict(err) ? initialMs : Math.min(maxMs, initialMs * 2 ** (attempts - 1));
    const delay = Math.round(nominal * (0.75 + Math.random() * 0.5));
    retries.get(uid)?.timer.cancel();
    retries.set(uid, { attempts, timer: clock.setTimer(delay, () => sync(uid)) });
  }

  function pump() {
    for (const uid of pending) {
      if (inFlight.size >= concurrency || stopped) break;
      if (inFlight.has(uid)) continue;
      pending.delete(uid);
      const run = work(uid).then(
        () => onSuccess(uid),
        (err: unknown) => onFailure(uid, err),
      ).finally(() => {
        inFlight.delete(uid);
        if (again.delete(uid)) pending.add(uid);
        pump();
        if (!inFlight.size && !pending.size) {
          for (const w of idleWaiters) w();
          idleWaiters = [];
        }
      });
      inFlight.set(uid, run);
    }
  }

  function sync(uid: string) {
    if (stopped) return;
    if (inFlight.has(uid)) {
      again.add(uid);
      return;
    }
    pending.add(uid);
    pump();
  }

  return {
    sync,
    syncAll() {
      for (const s of statusManager.snapshot()) sync(s.uid);
    },
    forget(uid) {
      acked.delete(uid);
      deleted.delete(uid);
      retries.get(uid)?.timer.cancel();
      retries.delete(uid);
    },
    stop() {
      stopped = true;
      pending.clear();
      for (const r of retries.values()) r.timer.cancel();
      retries.clear();
    },
    idle() {
      if (!inFlight.size && !pending.size) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    stats: () => ({ patches, deletes, failing, ...(lastError ? { lastError } : {}) }),
  };
}
