/**
 * The small typed feed dns/ consumes. agent/kube's informers satisfy it structurally; tests use
 * test/harness/feed.ts. dns/ never talks to the apiserver itself.
 */
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';

export interface FeedHandler<T> {
  onAdd(obj: T): void;
  onUpdate(oldObj: T, newObj: T): void;
  onDelete(obj: T): void;
  onSynced?(): void;
}

export interface Feed<T> {
  subscribe(handler: FeedHandler<T>): () => void;
  list(): T[];
  hasSynced(): boolean;
}

export interface DnsInput {
  services: Feed<Service>;
  endpointSlices: Feed<EndpointSlice>;
  pods?: Feed<Pod>;
  namespaces?: Feed<Namespace>;
}
