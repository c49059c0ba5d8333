/**
 * A change tracker records `{previous, current}` per object key between syncs, as kube-proxy's
 * service and endpoint change trackers do. Watch handlers only record; the sync drains.
 */
export interface Change<T> {
  previous: T | undefined;
  current: T | undefined;
}

export interface ChangeTracker<T> {
  record(key: string, previous: T | undefined, current: T | undefined): void;
  /** Returns the pending changes (previous = value at the last drain) and starts afresh. */
  drain(): Map<string, Change<T>>;
  pending(): number;
}

export function createChangeTracker<T>(): ChangeTracker<T> {
  let changes = new Map<string, Change<T>>();
  return {
    record(key, previous, current) {
      const existing = changes.get(key);
      if (existing) {
        existing.current = current;
        // A create followed by a delete between two syncs is no change at all.
        if (existing.previous === undefined && current === undefined) changes.delete(key);
      } else {
        changes.set(key, { previous, current });
      }
    },
    drain() {
      const out = changes;
      changes = new Map();
      return out;
    },
    pending: () => changes.size,
  };
}
