/**
 * Informer: a Reflector (list, then watch from the list's resourceVersion, forever) feeding an
 * in-memory store keyed by namespace/name, and handlers with the feed contract of
 * test/harness/feed.ts (onAdd, onUpdate(old, new), onDelete, onSynced once).
 *
 * Robustness, in the order things go wrong on an edge link:
 * - the server ends the watch after timeoutSeconds (random in 300–600 s so many nodes do not
 *   reconnect together): resume from the last version seen, bookmarks included; no relist.
 * - the stream goes silent (a dead NAT mapping, a stuck proxy): no byte within `stallTimeoutMs`
 *   aborts it and reconnects. kube-apiserver sends a BOOKMARK about once a minute on an idle watch
 *   (and one just before the watch's deadline), so the default of 90 s is 1.5 bookmark periods:
 *   one late bookmark is tolerated, a dead link is found within ~1.5 min. A false alarm (a server
 *   that sends no periodic bookmarks) costs only a reconnect from the last version.
 * - 410 Gone / Expired (history compacted while disconnected) or a version the server no longer
 *   knows (it restarted from older state): relist, and deliver the DIFFERENCE between the cache
 *   and the list to handlers: adds, updates, and deletes of objects that vanished in the gap.
 * - anything else (connection refused, 5xx, timeouts): retry with jittered exponential backoff
 *   (800 ms doubling to 30 s; back to 800 ms after 2 min of health), health turns unhealthy, one
 *   log line when that happens and one when it recovers.
 */
import type { Logger } from 'pino';
import type { ComponentHealth } from '../component';
import { ErrorCodes, KeelsonError, errorMessage } from '../errors';
import { ApiStatusError, isApiStatusError, isExpired, isResourceVersionTooLarge, statusFromObject } from './api-error';
import { createBackoff } from './backoff';
import type { BackoffOptions } from './backoff';
import { sleep, systemClock } from './clock';
import type { Clock } from './clock';
import type { KubeClient, WatchEvent } from './client';
import type { KubeObject, ResourceDescriptor } from './resources';

/**
 * The handler contract shared with dns/ and netproxy/ (and test/harness/feed.ts, whose memory feed
 * stands in for an informer in their tests): subscribe replays the cache as onAdd, then onSynced
 * once the first list is in.
 */
export interface InformerHandler<T> {
  onAdd(obj: T): void;
  onUpdate(oldObj: T, newObj: T): void;
  onDelete(obj: T): void;
  onSynced?(): void;
}


export interface Feed<T> {
  subscribe(handler: InformerHandler<T>): () => void;
  list(): T[];
  hasSynced(): boolean;
}

export interface InformerSelector {
  /** Limit to one namespace (namespaced resources only). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface InformerOptions<T> extends InformerSelector {
  client: Pick<KubeClient, 'list' | 'watch'>;
  resource: ResourceDescriptor<T>;
  logger: Logger;
  /** Shown in logs and health; defaults to the resource and selectors. */
  name?: string;
  clock?: Clock;
  /** Reconnect when the watch stream delivered no byte for this long. Default 90 s. */
  stallTimeoutMs?: number;
  /** Server-side watch duration, chosen at random in [min, max] seconds. Default 300–600. */
  watchTimeoutSeconds?: { min: number; max: number };
  backoff?: BackoffOptions;
  /** List page size (limit/continue); 0 lists in one request. Default 500. */
  pageSize?: number;
  /** Deadline of each list request. Default 60 s. */
  listTimeoutMs?: number;
  /** A watch that ends sooner than this with no event counts as a failure (backs off). Default 1 s. */
  minWatchMs?: number;
  /**
   * Applied to every object before it is cached (it may modify the object, which the informer owns).
   * Default: drop metadata.managedFields, often a third of an object's size and used by no keelson
   * component; an update sent without it leaves the server's copy as it was.
   */
  transform?: (obj: T) => T;
}

export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

export type InformerDetails = {
  resourceVersion: string;
  relists: number;
  reconnects: number;
  lastError: string | undefined;
  objects: number;
};

export interface Informer<T> extends Feed<T> {
  readonly name: string;
  readonly resource: ResourceDescriptor<T>;
  get(namespace: string | undefined, name: string): T | undefined;
  /** Starts the list-watch loop (idempotent). */
  start(): void;
  /** Stops the loop and closes the watch; the cache keeps its last content. */
  stop(): Promise<void>;
  /** Resolves once the first list has been delivered. */
  waitForSync(): Promise<void>;
  health(): ComponentHealth & { details: InformerDetails };
}

export function objectKey(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function rvOf(obj: KubeObject | undefined): string | undefined {
  return obj?.metadata?.resourceVersion;
}

/**
 * Orders two resourceVersions when both are integers (etcd revisions, which every apiserver
 * serves in practice); undefined when they cannot be ordered, and callers then treat them as
 * different. Used only to ignore duplicate or out-of-order events.
 */
export function compareResourceVersions(a: string | undefined, b: string | undefined): number | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (a === b) return 0;
  if (!/^\d{1,30}$/.test(a) || !/^\d{1,30}$/.test(b)) return undefined;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function describeSelector(resource: ResourceDescriptor<unknown>, sel: InformerSelector): string {
  const parts = [sel.namespace && `namespace=${sel.namespace}`, sel.labelSelector && `labels=${sel.labelSelector}`, sel.fieldSelector && `fields=${sel.fieldSelector}`].filter(Boolean);
  const group = resource.group ? `.${resource.group}` : '';
  return parts.length ? `${resource.resource}${group}(${parts.join(',')})` : `${resource.resource}${group}`;
}

type Outcome = { kind: 'closed' | 'dropped' | 'stalled'; events: number; durationMs: number };

export function createInformer<T extends KubeObject>(options: InformerOptions<T>): Informer<T> {
  const { client, resource } = options;
  const clock = options.clock ?? systemClock;
  const name = options.name ?? describeSelector(resource, options);
  const logger = options.logger.child({ informer: name });
  const stallTimeoutMs = options.stallTimeoutMs ?? 90_000;
  const watchTimeout = options.watchTimeoutSeconds ?? { min: 300, max: 600 };
  const pageSize = options.pageSize ?? 500;
  const listTimeoutMs = options.listTimeoutMs ?? 60_000;
  const minWatchMs = options.minWatchMs ?? 1000;
  const backoff = createBackoff(clock, options.backoff);
  const transform = options.transform ?? stripManagedFields;
  const selector = { namespace: resource.namespaced ? options.namespace : undefined, labelSelector: options.labelSelector, fieldSelector: options.fieldSelector };

  let store = new Map<string, T>();
  const handlers = new Set<InformerHandler<T>>();
  let synced = false;
  let resourceVersion = '';
  let relists = 0;
  let reconnects = 0;
  let lastError: string | undefined;
  let lastSync: number | undefined;
  let failing = false;
  let failingSince: number | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let stopController = new AbortController();
  let currentWatch: { abort(reason?: Error): void } | undefined;
  let syncWaiters: Array<() => void> = [];

  function dispatch(what: string, obj: T, call: (h: InformerHandler<T>) => void): void {
    for (const handler of [...handlers]) {
      try {
        call(handler);
      } catch (err) {
        logger.error({ err, object: objectKey(obj) }, `informer handler failed on ${what}`);
      }
    }
  }
  const emitAdd = (obj: T) => dispatch('add', obj, (h) => h.onAdd(obj));
  const emitUpdate = (old: T, obj: T) => dispatch('update', obj, (h) => h.onUpdate(old, obj));
  const emitDelete = (obj: T) => dispatch('delete', obj, (h) => h.onDelete(obj));

  function markHealthy(): void {
    if (!failing) return;
    failing = false;
    failingSince = undefined;
    logger.info({ resourceVersion, objects: store.size }, 'list-watch recovered');
  }

  function markFailing(err: unknown, retryMs: number): void {
    lastError = errorMessage(err);
    if (failing) {
      logger.debug({ err, retryMs }, 'list-watch still failing');
      return;
    }
    failing = true;
    failingSince = clock.now();
    logger.warn({ err, retryMs }, 'list-watch failing, retrying with backoff');
  }

  /** Lists everything (paged) and replaces the store, delivering the difference to handlers. */
  async function listAndReplace(): Promise<void> {
    const items: T[] = [];
    let listRV: string | undefined;
    let cont: string | undefined;
    let limit = pageSize > 0 ? pageSize : undefined;
    for (;;) {
      let page;
      try {
        page = await client.list(resource, { ...selector, limit, continue: cont, timeoutMs: listTimeoutMs, signal: stopController.signal });
      } catch (err) {
        if (cont !== undefined && isApiStatusError(err) && isExpired(err.status)) {
          // The continue token expired between pages: start over in one request.
          logger.info('list continue token expired, listing again without paging');
          items.length = 0;
          cont = undefined;
          limit = undefined;
          continue;
        }
        throw err;
      }
      if (stopped) return;
      for (const item of page.items) items.push(item);
      listRV = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
      if (!cont) break;
    }
    if (!listRV) throw new KeelsonError(ErrorCodes.API_STATUS, `list ${name}: response has no resourceVersion`, { object: name });
    replace(items, listRV);
  }

  function replace(items: T[], listRV: string): void {
    const previous = store;
    const next = new Map<string, T>();
    for (const item of items) {
      if (!item?.metadata?.name) {
        logger.warn({ object: objectKey(item ?? {}) }, 'list returned an object without a name, skipped');
        continue;
      }
      next.set(objectKey(item), transform(item));
    }
    type Change = { kind: 'add'; obj: T } | { kind: 'update'; old: T; obj: T } | { kind: 'delete'; obj: T };
    const changes: Change[] = [];
    for (const [key, old] of previous) if (!next.has(key)) changes.push({ kind: 'delete', obj: old });
    for (const [key, obj] of next) {
      const old = previous.get(key);
      if (!old) changes.push({ kind: 'add', obj });
      else if (old.metadata?.uid && obj.metadata?.uid && old.metadata.uid !== obj.metadata.uid) {
        // Deleted and recreated under the same name while we were away: two events, not one update.
        changes.push({ kind: 'delete', obj: old }, { kind: 'add', obj });
      } else if (rvOf(old) !== rvOf(obj)) changes.push({ kind: 'update', old, obj });
      else next.set(key, old);
    }
    store = next;
    resourceVersion = listRV;
    lastSync = clock.now();
    const firstSync = !synced;
    synced = true;
    for (const change of changes) {
      if (change.kind === 'add') emitAdd(change.obj);
      else if (change.kind === 'update') emitUpdate(change.old, change.obj);
      else emitDelete(change.obj);
    }
    if (firstSync) {
      logger.info({ objects: store.size, resourceVersion }, 'informer synced');
      for (const handler of [...handlers]) {
        try {
          handler.onSynced?.();
        } catch (err) {
          logger.error({ err }, 'informer handler failed on synced');
        }
      }
      for (const resolve of syncWaiters) resolve();
      syncWaiters = [];
    } else if (changes.length > 0) {
      logger.info({ changes: changes.length, objects: store.size, resourceVersion }, 'relist delivered changes missed while disconnected');
    }
  }

  function advanceVersion(rv: string | undefined): void {
    if (!rv) return;
    const c = compareResourceVersions(rv, resourceVersion);
    if (c === undefined || c > 0) resourceVersion = rv;
  }

  /** Applies one watch event; returns an error to end the watch with, if any. */
  function apply(event: WatchEvent<T>): Error | undefined {
    if (event.type === 'ERROR') {
      const status = statusFromObject(event.object);
      return new ApiStatusError(status, name, 'WATCH');
    }
    let obj = event.object;
    if (event.type === 'BOOKMARK') {
      advanceVersion(rvOf(obj));
      lastSync = clock.now();
      return undefined;
    }
    if (!obj?.metadata?.name || !rvOf(obj)) {
      logger.warn({ type: event.type, object: objectKey(obj ?? {}) }, 'watch event without name or resourceVersion, skipped');
      return undefined;
    }
    obj = transform(obj);
    const key = objectKey(obj);
    const old = store.get(key);
    const order = compareResourceVersions(rvOf(obj), rvOf(old));
    lastSync = clock.now();
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
        if (old && (order === 0 || (order !== undefined && order < 0))) break; // duplicate or stale
        store.set(key, obj);
        if (!old) emitAdd(obj);
        else if (old.metadata?.uid && obj.metadata?.uid && old.metadata.uid !== obj.metadata.uid) {
          emitDelete(old);
          emitAdd(obj);
        } else emitUpdate(old, obj);
        break;
      case 'DELETED':
        if (!old || (order !== undefined && order < 0)) break; // already gone, or a delete older than what we hold
        store.delete(key);
        emitDelete(obj);
        break;
      default:
        logger.warn({ type: (event as { type: string }).type }, 'unknown watch event type, skipped');
    }
    advanceVersion(rvOf(obj));
    return undefined;
  }

  function watchOnce(): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const startedAt = clock.now();
      let lastActivity = startedAt;
      let opened = false;
      let events = 0;
      let ended = false;
      const span = Math.max(0, watchTimeout.max - watchTimeout.min);
      const timeoutSeconds = watchTimeout.min + Math.floor(clock.random() * (span + 1));
      let stallTimer: unknown;
      let healthyTimer: unknown;
      const armStall = (ms: number) => {
        stallTimer = clock.setTimeout(() => {
          if (ended) return;
          const idle = clock.now() - lastActivity;
          if (idle >= stallTimeoutMs) {
            handle.abort(new KeelsonError(ErrorCodes.WATCH_STALLED, `watch ${name}: no data for ${idle} ms`, { object: name }));
          } else armStall(stallTimeoutMs - idle);
        }, ms);
      };
      const handle = client.watch<T>(
        resource,
        {
          ...selector,
          resourceVersion,
          timeoutSeconds,
          allowWatchBookmarks: true,
          onOpen() {
            opened = true;
            lastActivity = clock.now();
            backoff.succeeded();
            // Recovered once the stream proves itself (an event, or open for minWatchMs): a server
            // that accepts watches and drops them at once would log recovered/failing per retry.
            if (failing) healthyTimer = clock.setTimeout(markHealthy, minWatchMs);
          },
          onProgress() {
            lastActivity = clock.now();
          },
        },
        (event) => {
          if (ended) return;
          events++;
          const err = apply(event);
          if (err) {
            ended = true;
            handle.abort(err);
          } else markHealthy();
        },
      );
      currentWatch = handle;
      armStall(stallTimeoutMs);
      const finish = () => {
        ended = true;
        if (!stopped) reconnects++;
        clock.clearTimeout(stallTimer);
        clock.clearTimeout(healthyTimer);
        currentWatch = undefined;
      };
      handle.done.then(
        () => {
          finish();
          resolve({ kind: 'closed', events, durationMs: clock.now() - startedAt });
        },
        (err: unknown) => {
          finish();
          const durationMs = clock.now() - startedAt;
          if (err instanceof KeelsonError && err.code === ErrorCodes.WATCH_STALLED) return resolve({ kind: 'stalled', events, durationMs });
          // A stream that was open and then dropped is reconnected at once; one that never opened
          // (or broke straight away) is a failure that backs off.
          if (opened && !isApiStatusError(err) && (events > 0 || durationMs >= minWatchMs)) {
            lastError = errorMessage(err);
            return resolve({ kind: 'dropped', events, durationMs });
          }
          reject(err);
        },
      );
    });
  }

  function needsRelist(err: unknown): boolean {
    return isApiStatusError(err) && (isExpired(err.status) || isResourceVersionTooLarge(err.status));
  }

  async function loop(): Promise<void> {
    let needList = true;
    let lastRelistAt = -Infinity;
    let quietStalls = 0;
    while (!stopped) {
      try {
        if (needList) {
          await listAndReplace();
          if (stopped) break;
          needList = false;
          lastRelistAt = clock.now();
          markHealthy();
        }
        const outcome = await watchOnce();
        if (stopped) break;
        if (outcome.kind === 'stalled') {
          // Warn once; stalls in a row with nothing received in between (a server that sends no
          // periodic bookmarks, on a quiet resource) are only worth a debug line each.
          quietStalls = outcome.events === 0 ? quietStalls + 1 : 1;
          logger[quietStalls > 1 ? 'debug' : 'warn']({ resourceVersion, stallTimeoutMs }, 'watch stalled (no data, not even bookmarks), reconnecting');
        } else if (outcome.events > 0 || outcome.kind === 'dropped') {
          quietStalls = 0;
        }
        if (outcome.kind === 'dropped') {
          logger.debug({ resourceVersion, err: lastError }, 'watch connection dropped, reconnecting');
        }
        if (outcome.events === 0 && outcome.durationMs < minWatchMs && outcome.kind === 'closed') {
          throw new KeelsonError(ErrorCodes.API_UNREACHABLE, `watch ${name}: closed by the server after ${outcome.durationMs} ms with no event`, { object: name });
        }
      } catch (err) {
        if (stopped) break;
        if (needsRelist(err)) {
          relists++;
          needList = true;
          const status = (err as ApiStatusError).status;
          logger.info({ resourceVersion, code: status.code, reason: status.reason }, 'resourceVersion no longer served, relisting');
          // Relist at once, unless the previous relist was just now (then the server is confused: back off).
          if (clock.now() - lastRelistAt >= minWatchMs) continue;
        }
        const delay = backoff.next();
        markFailing(err, delay);
        await sleep(clock, delay, stopController.signal);
      }
    }
  }

  return {
    name,
    resource,
    subscribe(handler) {
      handlers.add(handler);
      for (const obj of store.values()) {
        try {
          handler.onAdd(obj);
        } catch (err) {
          logger.error({ err, object: objectKey(obj) }, 'informer handler failed on add');
        }
      }
      if (synced) {
        try {
          handler.onSynced?.();
        } catch (err) {
          logger.error({ err }, 'informer handler failed on synced');
        }
      }
      return () => void handlers.delete(handler);
    },
    list: () => [...store.values()],
    hasSynced: () => synced,
    get: (namespace, objName) => store.get(`${namespace ?? ''}/${objName}`),
    start() {
      if (running) return;
      stopped = false;
      stopController = new AbortController();
      running = loop().catch((err) => {
        // The loop catches everything; reaching here is a bug, and it must not pass silently.
        failing = true;
        lastError = `informer loop crashed: ${errorMessage(err)}`;
        logger.error({ err }, 'informer loop crashed');
      });
    },
    async stop() {
      if (!running) return;
      stopped = true;
      stopController.abort();
      currentWatch?.abort();
      await running;
      running = undefined;
    },
    waitForSync() {
      if (synced) return Promise.resolve();
      return new Promise((resolve) => syncWaiters.push(resolve));
    },
    health() {
      const details: InformerDetails = { resourceVersion, relists, reconnects, lastError, objects: store.size };
      const lastSyncTime = lastSync === undefined ? undefined : new Date(lastSync).toISOString();
      let message: string;
      let healthy = false;
      if (!running && !synced) message = 'not started';
      else if (failing) message = `list-watch failing since ${new Date(failingSince ?? clock.now()).toISOString()}: ${lastError ?? 'unknown error'}`;
      else if (!synced) message = 'waiting for the first list';
      else if (!running) message = 'stopped';
      else {
        healthy = true;
        message = `watching, ${store.size} objects`;
      }
      return { name, healthy, message, lastSyncTime, details };
    },
  };
}
