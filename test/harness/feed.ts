/**
 * An in-memory feed of Kubernetes objects with the same contract as agent/kube's informers
 * (subscribe, list, hasSynced), for component tests that need no apiserver. It is a real
 * implementation of the contract, not a mock of the component under test.
 */
import type { Feed, FeedHandler } from '../../dns/input';

// The feed contract is dns/input.ts's (netproxy/input.ts declares the same shape: the two
// components may not import each other). agent/kube's informers satisfy it structurally.
export type { Feed, FeedHandler };

interface Named {
  metadata?: { namespace?: string; name?: string };
}

function keyOf(obj: Named): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export interface MemoryFeed<T extends Named> extends Feed<T> {
  upsert(obj: T): void;
  remove(obj: T): void;
  markSynced(): void;
}

export function createMemoryFeed<T extends Named>(initial: T[] = [], synced = true): MemoryFeed<T> {
  const items = new Map<string, T>();
  for (const obj of initial) items.set(keyOf(obj), obj);
  const handlers = new Set<FeedHandler<T>>();
  let isSynced = synced;
  return {
    subscribe(handler) {
      handlers.add(handler);
      for (const obj of items.values()) handler.onAdd(obj);
      if (isSynced) handler.onSynced?.();
      return () => void handlers.delete(handler);
    },
    list: () => [...items.values()],
    hasSynced: () => isSynced,
    upsert(obj) {
      const key = keyOf(obj);
      const old = items.get(key);
      items.set(key, obj);
      for (const h of handlers) (old ? h.onUpdate(old, obj) : h.onAdd(obj));
    },
    remove(obj) {
      const key = keyOf(obj);
      const old = items.get(key);
      if (!old) return;
      items.delete(key);
      for (const h of handlers) h.onDelete(old);
    },
    markSynced() {
      isSynced = true;
      for (const h of handlers) h.onSynced?.();
    },
  };
}
