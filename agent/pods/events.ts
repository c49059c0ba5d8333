/**
 * Pod Events (kubelet's event recorder): `recordEvent(pod, 'Normal', 'Pulled', 'Container image … ')`
 * from anywhere in agent/pods. The kubelet that runs the pod registers a sink with an EventRecorder
 * (cluster mode), which posts core/v1 Events to the apiserver; without one (standalone mode, unit
 * tests) the call does nothing. Repeats of the same event (same pod, reason, message, fieldPath)
 * within the aggregation window become one Event whose count and lastTimestamp are patched, as
 * kubelet's correlator does. Sending is asynchronous, bounded and never blocks or throws: with the
 * apiserver unreachable, events are retried a few times and then dropped (they are best effort).
 */
import { randomBytes } from 'node:crypto';
import type { Event, Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { isNotFound } from '../kube/api-error';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';
import { realClock, type Clock } from './clock';

export type EventType = 'Normal' | 'Warning';

export interface EventOptions {
  /** The container concerned: `spec.containers{app}`. */
  fieldPath?: string;
}

export interface EventSink {
  /** Whether this sink's kubelet runs the pod with this UID. */
  owns(uid: string): boolean;
  record(pod: Pod, type: EventType, reason: string, message: string, options?: EventOptions): void;
}

const sinks = new Set<EventSink>();

/** Registers a sink (one per kubelet); returns the unregister function. */
export function registerEventSink(sink: EventSink): () => void {
  sinks.add(sink);
  return () => void sinks.delete(sink);
}

/** Records an Event about pod (best effort; a no-op when no kubelet with an apiserver runs it). */
export function recordEvent(pod: Pod, type: EventType, reason: string, message: string, options?: EventOptions): void {
  const uid = pod.metadata?.uid;
  if (!uid) return;
  for (const sink of sinks) {
    if (!sink.owns(uid)) continue;
    sink.record(pod, type, reason, message, options);
    return;
  }
}

/** `spec.containers{name}`, the fieldPath kubelet gives container events. */
export function containerFieldPath(name: string): string {
  return `spec.containers{${name}}`;
}

export interface EventRecorderOptions {
  client: Pick<KubeClient, 'create' | 'patch'>;
  nodeName: string;
  logger: Logger;
  clock?: Clock;
  /** Repeats within this window update the existing Event (default 10 min). */
  aggregateWindowMs?: number;
  /** Events waiting to be sent; more are dropped (default 1000). */
  maxQueue?: number;
  /** Attempts per event before it is dropped (default 3). */
  attempts?: number;
  /** Delay before a retry, doubled each time (default 1 s). */
  retryMs?: number;
}

export interface EventRecorder {
  record(pod: Pod, type: EventType, reason: string, message: string, options?: EventOptions): void;
  /** Resolves when nothing is queued or in flight (tests). */
  idle(): Promise<void>;
  stop(): void;
  /** Counters for health and tests. */
  stats(): { sent: number; dropped: number; queued: number };
}

interface Pending {
  key: string;
  event: Event;
  attempts: number;
}

interface Known {
  name: string;
  namespace: string;
  count: number;
  firstTimestamp: string;
  lastSeen: number;
  /** The Event exists on the server (later repeats patch it). */
  created: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const MAX_KNOWN = 4096;

export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const { client, nodeName } = options;
  const clock = options.clock ?? realClock;
  const logger = options.logger.child({ component: 'events' });
  const windowMs = options.aggregateWindowMs ?? 600_000;
  const maxQueue = options.maxQueue ?? 1000;
  const maxAttempts = options.attempts ?? 3;
  const retryMs = options.retryMs ?? 1000;
  const queue: Pending[] = [];
  const known = new Map<string, Known>();
  let sending: Promise<void> | undefined;
  let stopped = false;
  let sent = 0;
  let dropped = 0;
  let failing = false;

  function drop(why: string, p: Pending) {
    dropped++;
    if (!failing) {
      failing = true;
      logger.warn({ pod: `${p.event.involvedObject.namespace}/${p.event.involvedObject.name}`, reason: p.event.reason, why }, 'events are being dropped');
    }
  }

  async function sendOne(p: Pending): Promise<void> {
    const k = known.get(p.key);
    const ns = p.event.metadata!.namespace!;
    const count = k?.count ?? p.event.count;
    if (k?.created) {
      try {
        await client.patch(Resources.events, k.name, { count, lastTimestamp: p.event.lastTimestamp }, { type: 'strategic', namespace: ns });
        return;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        k.created = false; // the Event expired on the server: post it again
      }
    }
    await client.create(Resources.events, { ...p.event, count });
    if (k) k.created = true;
  }

  async function drain() {
    while (queue.length && !stopped) {
      const p = queue.shift()!;
      // repeats queued behind this one are folded into it (the count is read at send time)
      try {
        await sendOne(p);
        sent++;
        if (failing) {
          failing = false;
          logger.info('events are sent again');
        }
      } catch (err) {
        p.attempts++;
        if (p.attempts >= maxAttempts) {
          drop(errorMessage(err), p);
          continue;
        }
        await new Promise<void>((resolve) => clock.setTimer(retryMs * 2 ** (p.attempts - 1), resolve));
        queue.unshift(p);
      }
    }
  }

  function kick() {
    if (sending || stopped) return;
    sending = drain().finally(() => {
      sending = undefined;
      if (queue.length && !stopped) kick();
    });
  }

  function prune(now: number) {
    if (known.size < MAX_KNOWN) return;
    for (const [key, k] of known) if (now - k.lastSeen > windowMs || known.size >= MAX_KNOWN) known.delete(key);
  }

  return {
    record(pod, type, reason, message, opts = {}) {
      if (stopped) return;
      const meta = pod.metadata ?? {};
      const now = clock.now();
      const key = [meta.uid, reason, message, opts.fieldPath ?? '', type].join('\0');
      let k = known.get(key);
      if (k && now - k.lastSeen > windowMs) k = undefined;
      if (k) {
        k.count++;
        k.lastSeen = now;
        // an update already queued for this event carries the new count when it is sent
        if (queue.some((p) => p.key === key)) return;
      } else {
        prune(now);
        k = {
          name: `${meta.name}.${now.toString(16)}${randomBytes(2).toString('hex')}`,
          namespace: meta.namespace ?? 'default',
          count: 1,
          firstTimestamp: iso(now),
          lastSeen: now,
          created: false,
        };
        known.set(key, k);
      }
      if (queue.length >= maxQueue) {
        dropped++;
        return;
      }
      const event: Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: k.name, namespace: k.namespace },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
          ...(opts.fieldPath ? { fieldPath: opts.fieldPath } : {}),
        },
        reason,
        message,
        type,
        source: { component: 'kubelet', host: nodeName },
        firstTimestamp: k.firstTimestamp,
        lastTimestamp: iso(now),
        count: k.count,
        reportingComponent: 'kubelet',
        reportingInstance: nodeName,
      };
      queue.push({ key, event, attempts: 0 });
      kick();
    },
    async idle() {
      while (sending) await sending;
    },
    stop() {
      stopped = true;
      queue.length = 0;
    },
    stats: () => ({ sent, dropped, queued: queue.length }),
  };
}
