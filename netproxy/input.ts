/**
 * The feed netproxy consumes. agent/kube's informers (and test/harness/feed.ts) satisfy it
 * structurally; netproxy never imports agent/.
 */
import type { Node, Service } from 'kubernetes-types/core/v1';
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

export interface ProxyInput {
  services: Feed<Service>;
  endpointSlices: Feed<EndpointSlice>;
  nodes?: Feed<Node>;
}
