/**
 * One informer per resource kind and selector for the whole daemon: every component asks the
 * factory, and the second ask for the same key gets the same informer (one list-watch, one cache).
 */
import type { Logger } from 'pino';
import type { ComponentHealth } from '../component';
import type { BackoffOptions } from './backoff';
import type { Clock } from './clock';
import type { KubeClient } from './client';
import { createInformer } from './informer';
import type { Informer, InformerOptions, InformerSelector } from './informer';
import type { KubeObject, ResourceDescriptor } from './resources';

export interface InformerFactoryOptions {
  client: Pick<KubeClient, 'list' | 'watch'>;
  logger: Logger;
  clock?: Clock;
  /** Defaults for every informer (tests shorten these). */
  stallTimeoutMs?: number;
  watchTimeoutSeconds?: { min: number; max: number };
  backoff?: BackoffOptions;
  pageSize?: number;
  minWatchMs?: number;
}

export interface InformerFactory {
  /**
   * `transform` shapes what the cache keeps (see InformerOptions.transform); the first ask for a
   * key decides it, so only a component that is the sole reader of a resource should pass one.
   */
  forResource<T extends KubeObject>(resource: ResourceDescriptor<T>, selector?: InformerSelector, options?: { transform?: (obj: T) => T }): Informer<T>;
  /** Starts every informer made so far; informers made later start at once. */
  start(): void;
  stop(): Promise<void>;
  /** Resolves when every informer made so far has synced. */
  waitForSync(): Promise<void>;
  informers(): Informer<KubeObject>[];
  health(): ComponentHealth[];
}

export function informerKey(resource: ResourceDescriptor<unknown>, selector: InformerSelector = {}): string {
  const scope = resource.namespaced ? (selector.namespace ?? '') : '';
  return [resource.group, resource.version, resource.resource, scope, selector.labelSelector ?? '', selector.fieldSelector ?? ''].join('|');
}

export function createInformerFactory(options: InformerFactoryOptions): InformerFactory {
  const informers = new Map<string, Informer<KubeObject>>();
  let started = false;
  return {
    forResource<T extends KubeObject>(resource: ResourceDescriptor<T>, selector: InformerSelector = {}, perInformer: { transform?: (obj: T) => T } = {}): Informer<T> {
      const key = informerKey(resource, selector);
      let informer = informers.get(key);
      if (!informer) {
        const informerOptions: InformerOptions<T> = { ...options, resource, ...selector, ...(perInformer.transform ? { transform: perInformer.transform } : {}) };
        informer = createInformer<T>(informerOptions) as unknown as Informer<KubeObject>;
        informers.set(key, informer);
        if (started) informer.start();
      }
      return informer as unknown as Informer<T>;
    },
    start() {
      started = true;
      for (const informer of informers.values()) informer.start();
    },
    async stop() {
      started = false;
      await Promise.all([...informers.values()].map((informer) => informer.stop()));
    },
    async waitForSync() {
      await Promise.all([...informers.values()].map((informer) => informer.waitForSync()));
    },
    informers: () => [...informers.values()],
    health: () => [...informers.values()].map((informer) => informer.health()),
  };
}
