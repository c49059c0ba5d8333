/**
 * Watch streams as kube-apiserver serves them: newline-delimited JSON events
 * `{type, object}` on a chunked 200 response; initial ADDED events when starting from "" or "0";
 * replay from a version out of the bounded history; ERROR 410 Expired for a compacted version;
 * selector transitions (an object that stops matching is DELETED, one that starts matching is
 * ADDED); BOOKMARKs for clients that allow them; `timeoutSeconds` ends the stream cleanly.
 * Fault hooks: drop (destroy sockets), stall (hold everything, bookmarks included).
 */
import type { ServerResponse } from 'node:http';
import { apiVersionOf, resourceId } from './resources';
import type { ResourceDef } from './resources';
import type { Matcher } from './selectors';
import { errors } from './status';
import type { Obj, Store, StoreEvent } from './store';

export interface WatchOptions {
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
  sendInitialEvents?: boolean;
  /** Server-side printing of event objects (kubectl get -w asks for Tables); `first` is the first object event. */
  transform?: (obj: Obj, first: boolean) => Obj;
}

export interface WatchInfo {
  id: number;
  resource: string;
  namespace?: string;
  user?: string;
  stalled: boolean;
  startedAt: number;
}

interface Watcher extends WatchInfo {
  res: ServerResponse;
  def: ResourceDef;
  bookmarks: boolean;
  transform?: (obj: Obj, first: boolean) => Obj;
  sentObjects: number;
  queue: string[];
  timeoutDue: boolean;
  unsubscribe: () => void;
  timers: NodeJS.Timeout[];
  stallTimer?: NodeJS.Timeout;
  closed: boolean;
}

export interface WatchHub {
  serve(def: ResourceDef, namespace: string | undefined, match: Matcher, options: WatchOptions, res: ServerResponse, user?: string): void;
  /** Sends a BOOKMARK now to every watch that allowed bookmarks (and is not stalled). */
  sendBookmark(): number;
  /** Destroys every open watch connection abruptly (no final chunk). */
  drop(): number;
  /**
   * Holds every open watch: nothing is written until `ms` pass ('forever': until resume/drop).
   * With includeNew, watches opened during that time are held too (not even headers are sent).
   */
  stall(ms: number | 'forever', includeNew?: boolean): number;
  resume(): void;
  /** Ends every open watch with an ERROR 410 Expired event (a watcher that fell out of the window). */
  expire(): number;
  list(): WatchInfo[];
  closeAll(): void;
}

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

export function createWatchHub(store: Store, options: { bookmarkIntervalMs: number }): WatchHub {
  const watchers = new Set<Watcher>();
  let nextId = 1;
  /** Until when watches opened from now on start stalled (headers included); Infinity: until resume. */
  let newWatchStall: number | undefined;

  function withType(def: ResourceDef, obj: Obj): Obj {
    const { kind: _k, apiVersion: _a, ...rest } = obj;
    return { kind: def.kind, apiVersion: apiVersionOf(def), ...rest };
  }

  function open(w: Watcher): void {
    if (w.res.headersSent) return;
    w.res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    w.res.flushHeaders();
  }

  function write(w: Watcher, line: string): void {
    if (w.closed) return;
    if (w.stalled) {
      w.queue.push(line);
      return;
    }
    open(w);
    w.res.write(line);
  }

  /** Ends a watch that failed at its start (errors go out even during a stall). */
  function finish(w: Watcher): void {
    if (w.stallTimer) clearTimeout(w.stallTimer);
    w.stalled = false;
    open(w);
    for (const line of w.queue.splice(0)) w.res.write(line);
    w.res.end();
  }

  function event(w: Watcher, type: string, object: Obj): void {
    if (w.transform && type !== 'BOOKMARK' && type !== 'ERROR') object = w.transform(object, w.sentObjects++ === 0);
    write(w, JSON.stringify({ type, object }) + '\n');
  }

  function bookmark(w: Watcher, annotations?: Record<string, string>): void {
    const metadata: Obj = { resourceVersion: String(store.currentRv()) };
    if (annotations) metadata.annotations = annotations;
    event(w, 'BOOKMARK', { kind: w.def.kind, apiVersion: apiVersionOf(w.def), metadata });
  }

  function close(w: Watcher, how: 'end' | 'destroy'): void {
    if (w.closed) return;
    w.closed = true;
    watchers.delete(w);
    w.unsubscribe();
    for (const t of w.timers) clearTimeout(t);
    if (w.stallTimer) clearTimeout(w.stallTimer);
    if (how === 'end') w.res.end();
    else w.res.socket?.destroy();
  }

  function unstall(w: Watcher): void {
    if (!w.stalled || w.closed) return;
    w.stalled = false;
    w.stallTimer = undefined;
    open(w);
    for (const line of w.queue.splice(0)) w.res.write(line);
    if (w.timeoutDue) close(w, 'end');
  }

  function serve(def: ResourceDef, namespace: string | undefined, match: Matcher, opts: WatchOptions, res: ServerResponse, user?: string): void {
    const resource = resourceId(def);
    const rvParam = opts.resourceVersion ?? '';
    const inScope = (obj: Obj) => !def.namespaced || !namespace || obj.metadata?.namespace === namespace;

    const stallNew = newWatchStall !== undefined && newWatchStall > Date.now();
    const w: Watcher = {
      id: nextId++,
      resource,
      namespace,
      user,
      stalled: stallNew,
      startedAt: Date.now(),
      res,
      def,
      bookmarks: Boolean(opts.allowWatchBookmarks),
      transform: opts.transform,
      sentObjects: 0,
      queue: [],
      timeoutDue: false,
      unsubscribe: () => {},
      timers: [],
      closed: false,
    };
    if (!stallNew) open(w);
    else if (newWatchStall !== Infinity) w.stallTimer = setTimeout(() => unstall(w), newWatchStall! - Date.now());

    const deliver = (ev: StoreEvent) => {
      if (ev.resource !== resource) return;
      const cur = ev.type === 'DELETED' ? undefined : ev.object;
      const curPasses = cur !== undefined && inScope(cur) && match(cur);
      const oldPasses = ev.old !== undefined && inScope(ev.old) && match(ev.old);
      if (ev.type === 'DELETED') {
        if (oldPasses) event(w, 'DELETED', withType(def, ev.object));
        return;
      }
      if (curPasses && oldPasses) event(w, 'MODIFIED', withType(def, cur));
      else if (curPasses) event(w, 'ADDED', withType(def, cur));
      else if (oldPasses) {
        const gone = structuredClone(ev.old!);
        gone.metadata = { ...gone.metadata, resourceVersion: String(ev.rv) };
        event(w, 'DELETED', withType(def, gone));
      }
    };

    if (rvParam === '' || rvParam === '0' || opts.sendInitialEvents) {
      // Initial state at the newest version (for sendInitialEvents with a version: NotOlderThan).
      if (opts.sendInitialEvents && rvParam !== '' && Number(rvParam) > store.currentRv()) {
        event(w, 'ERROR', errors.tooLargeResourceVersion(Number(rvParam), store.currentRv()).toStatus());
        finish(w);
        return;
      }
      for (const obj of store.list(resource)) if (inScope(obj) && match(obj)) event(w, 'ADDED', withType(def, obj));
      if (opts.sendInitialEvents && w.bookmarks) bookmark(w, { [INITIAL_EVENTS_END]: 'true' });
    } else {
      const since = Number(rvParam);
      if (!Number.isInteger(since) || since < 0) {
        event(w, 'ERROR', errors.badRequest(`invalid resource version: ${rvParam}`).toStatus());
        finish(w);
        return;
      }
      if (since > store.currentRv()) {
        event(w, 'ERROR', errors.tooLargeResourceVersion(since, store.currentRv()).toStatus());
        finish(w);
        return;
      }
      const replay = store.eventsSince(resource, since);
      if (!replay) {
        expired(w, rvParam);
        return;
      }
      for (const ev of replay) deliver(ev);
    }

    watchers.add(w);
    w.unsubscribe = store.subscribe(deliver);
    res.on('close', () => close(w, 'end'));
    if (w.bookmarks && options.bookmarkIntervalMs > 0) {
      const tick = () => {
        if (!w.stalled) bookmark(w);
        w.timers[0] = setTimeout(tick, options.bookmarkIntervalMs);
      };
      w.timers.push(setTimeout(tick, options.bookmarkIntervalMs));
    }
    if (opts.timeoutSeconds !== undefined && opts.timeoutSeconds > 0) {
      w.timers.push(
        setTimeout(() => {
          if (w.stalled) w.timeoutDue = true;
          else close(w, 'end');
        }, opts.timeoutSeconds * 1000),
      );
    }
  }

  function expired(w: Watcher, rv: string): void {
    event(w, 'ERROR', errors.gone(`too old resource version: ${rv} (${store.compactedRv()})`).toStatus());
    finish(w);
  }

  return {
    serve,
    sendBookmark() {
      let n = 0;
      for (const w of watchers) {
        if (w.bookmarks && !w.stalled) {
          bookmark(w);
          n++;
        }
      }
      return n;
    },
    drop() {
      const all = [...watchers];
      for (const w of all) close(w, 'destroy');
      return all.length;
    },
    stall(ms, includeNew = false) {
      if (includeNew) newWatchStall = ms === 'forever' ? Infinity : Date.now() + ms;
      for (const w of watchers) {
        w.stalled = true;
        if (w.stallTimer) clearTimeout(w.stallTimer);
        w.stallTimer = ms === 'forever' ? undefined : setTimeout(() => unstall(w), ms);
      }
      return watchers.size;
    },
    resume() {
      newWatchStall = undefined;
      for (const w of [...watchers]) {
        if (w.stallTimer) clearTimeout(w.stallTimer);
        unstall(w);
      }
    },
    expire() {
      const all = [...watchers];
      for (const w of all) {
        if (w.stallTimer) clearTimeout(w.stallTimer);
        event(w, 'ERROR', errors.gone(`too old resource version: ${store.compactedRv()} (${store.currentRv()})`).toStatus());
        w.stalled = false;
        for (const line of w.queue.splice(0)) w.res.write(line);
        close(w, 'end');
      }
      return all.length;
    },
    list: () => [...watchers].map(({ id, resource, namespace, user, stalled, startedAt }) => ({ id, resource, namespace, user, stalled, startedAt })),
    closeAll() {
      for (const w of [...watchers]) close(w, 'destroy');
    },
  };
}
