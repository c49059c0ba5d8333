/**
 * The object store: one global resourceVersion counter (like etcd's revision), current objects per
 * resource, and a bounded history of changes that watches replay from and that lists at an older
 * version (`resourceVersionMatch=Exact`, `continue`) are rebuilt from. Writes here are raw: the
 * API semantics (defaulting, conflicts, subresources, graceful deletion) live in registry.ts.
 */
import { errors } from './status';

export type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  resource: string;
  key: string;
  type: EventType;
  /** The object after the change (for DELETED: the last state, carrying the deletion's version). */
  object: Obj;
  /** The object before the change (MODIFIED, DELETED). */
  old?: Obj;
}

export type StoreListener = (event: StoreEvent) => void;

export interface Store {
  currentRv(): number;
  /** History holds every event with rv > compactedRv. */
  compactedRv(): number;
  get(resource: string, key: string): Obj | undefined;
  /** Current objects of a resource sorted by key; `prefix` selects a namespace (`ns/`). */
  list(resource: string, prefix?: string): Obj[];
  /** Objects as they were at version `rv` (410 Expired when the history no longer reaches it). */
  listAt(resource: string, rv: number, prefix?: string): Obj[];
  /** Events of `resource` with version > rv, or undefined when compacted away. */
  eventsSince(resource: string, rv: number): StoreEvent[] | undefined;
  /** Writes; `obj` must already carry its metadata. Sets metadata.resourceVersion and returns it. */
  put(resource: string, key: string, obj: Obj): Obj;
  remove(resource: string, key: string): Obj | undefined;
  subscribe(listener: StoreListener): () => void;
  /** Drops the whole history: any version older than now is 410 Gone. */
  compact(): void;
  /** Forgets every object (for restart with loseState); versions stay monotonic. */
  clear(): void;
  resources(): string[];
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export function createStore(options: { historySize?: number } = {}): Store {
  const historySize = options.historySize ?? 10000;
  const tables = new Map<string, Map<string, Obj>>();
  const history: StoreEvent[] = [];
  const listeners = new Set<StoreListener>();
  let rv = 0;
  let compacted = 0;

  const table = (resource: string) => {
    let t = tables.get(resource);
    if (!t) tables.set(resource, (t = new Map()));
    return t;
  };

  function record(event: StoreEvent): void {
    history.push(event);
    while (history.length > historySize) compacted = history.shift()!.rv;
    for (const listener of [...listeners]) listener(event);
  }

  function sorted(map: Map<string, Obj>, prefix?: string): Obj[] {
    return [...map.entries()]
      .filter(([key]) => !prefix || key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, obj]) => structuredClone(obj));
  }

  return {
    currentRv: () => rv,
    compactedRv: () => compacted,
    get(resource, key) {
      const obj = tables.get(resource)?.get(key);
      return obj ? structuredClone(obj) : undefined;
    },
    list(resource, prefix) {
      return sorted(table(resource), prefix);
    },
    listAt(resource, at, prefix) {
      if (at < compacted) throw errors.gone(`too old resource version: ${at} (${compacted})`);
      const state = new Map(table(resource));
      for (let i = history.length - 1; i >= 0 && history[i]!.rv > at; i--) {
        const ev = history[i]!;
        if (ev.resource !== resource) continue;
        if (ev.type === 'ADDED') state.delete(ev.key);
        else state.set(ev.key, ev.old!);
      }
      return sorted(state, prefix);
    },
    eventsSince(resource, since) {
      if (since < compacted) return undefined;
      const out: StoreEvent[] = [];
      for (let i = history.length - 1; i >= 0 && history[i]!.rv > since; i--) {
        if (history[i]!.resource === resource) out.push(history[i]!);
      }
      return out.reverse();
    },
    put(resource, key, obj) {
      const t = table(resource);
      const old = t.get(key);
      rv++;
      const stored = structuredClone(obj);
      stored.metadata = { ...(stored.metadata ?? {}), resourceVersion: String(rv) };
      t.set(key, stored);
      record({ rv, resource, key, type: old ? 'MODIFIED' : 'ADDED', object: stored, old });
      return structuredClone(stored);
    },
    remove(resource, key) {
      const t = table(resource);
      const old = t.get(key);
      if (!old) return undefined;
      t.delete(key);
      rv++;
      const last = structuredClone(old);
      last.metadata = { ...last.metadata, resourceVersion: String(rv) };
      record({ rv, resource, key, type: 'DELETED', object: last, old });
      return structuredClone(last);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    compact() {
      history.length = 0;
      compacted = rv;
    },
    clear() {
      tables.clear();
      history.length = 0;
      // The loss itself takes a version, so every version a client saw before it is expired.
      rv++;
      compacted = rv;
    },
    resources: () => [...tables.keys()],
  };
}
