/**
 * The pod lifecycle event generator: relists the runtime's sandboxes and containers (only those
 * keelson made) every second and compares with the previous relist, so a container that dies is
 * noticed within about a second and its pod worker is woken. Where the runtime streams container
 * events (CRI GetContainerEvents, containerd ≥ 1.7) an event triggers a relist at once and the
 * periodic relist slows down; containerd 1.6 answers Unimplemented and the 1 s relist stays. Each
 * relist is handed to the RelistCache, from which pod syncs read their runtime state. It also
 * reports which pod UIDs the runtime holds, so pods nobody wants any more can be cleaned up.
 */
import type { Logger } from 'pino';
import type { Clock, ClockTimer } from './clock';
import { LABEL_CONTAINER_NAME, LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, MANAGED_BY } from './labels';
import type { PodRuntime } from './runtime';
import type { RelistCache } from './runtime-state';

export type PodLifecycleEventType = 'ContainerStarted' | 'ContainerDied' | 'ContainerRemoved' | 'SandboxChanged';

export interface PodLifecycleEvent {
  type: PodLifecycleEventType;
  uid: string;
  /** Container or sandbox ID. */
  id: string;
  containerName?: string;
}

export interface RuntimePodRef {
  uid: string;
  name: string;
  namespace: string;
}

export interface Pleg {
  start(): void;
  stop(): void;
  /** Relists now (also used by tests); resolves with the events emitted. */
  relist(): Promise<PodLifecycleEvent[]>;
  /** Pods (by UID) the runtime held at the last relist. */
  runtimePods(): RuntimePodRef[];
  healthy(): { healthy: boolean; lastRelist?: number; message?: string };
  /** 'events' while the runtime's container event stream is live, else 'relist'. */
  mode(): 'events' | 'relist';
}

export interface PlegOptions {
  runtime: PodRuntime;
  clock: Clock;
  logger: Logger;
  onEvent: (event: PodLifecycleEvent) => void;
  /** Called after each successful relist. */
  onRelist?: () => void;
  periodMs?: number;
  /** Relist older than this makes the PLEG unhealthy (kubelet: 3 min). */
  unhealthyAfterMs?: number;
  /** Receives every relist's lists (the pod syncs' runtime state reader). */
  cache?: RelistCache;
  /** Relist period while the runtime's container event stream is live (default 5 s). */
  eventedPeriodMs?: number;
  /** Delay before subscribing again after the event stream broke (default 5 s). */
  eventRetryMs?: number;
}

export function createPleg(options: PlegOptions): Pleg {
  const { runtime, clock, logger, onEvent } = options;
  const periodMs = options.periodMs ?? 1000;
  const unhealthyAfterMs = options.unhealthyAfterMs ?? 180_000;
  const selector = { labels: { [LABEL_MANAGED_BY]: MANAGED_BY } };
  let previous = new Map<string, { uid: string; state: string; name?: string; sandbox: boolean }>();
  let pods: RuntimePodRef[] = [];
  let timer: ClockTimer | undefined;
  let stopped = true;
  let lastRelist: number | undefined;
  let failing = '';
  let inFlight: Promise<PodLifecycleEvent[]> | undefined;
  const eventedPeriodMs = options.eventedPeriodMs ?? 5000;
  const eventRetryMs = options.eventRetryMs ?? 5000;
  let eventsLive = false;
  let cancelEvents: (() => void) | undefined;
  let eventRetry: ClockTimer | undefined;
  let lastEventError = '';
  /** An event arrived while a relist was running: relist again when it ends. */
  let again = false;

  async function relistOnce(): Promise<PodLifecycleEvent[]> {
    const seq = options.cache?.begin() ?? 0;
    const [sandboxes, containers] = await Promise.all([runtime.listPodSandboxes(selector), runtime.listContainers(selector)]);
    options.cache?.store(seq, sandboxes, containers);
    const current = new Map<string, { uid: string; state: string; name?: string; sandbox: boolean }>();
    const podMap = new Map<string, RuntimePodRef>();
    for (const s of sandboxes) {
      const uid = s.labels[LABEL_POD_UID];
      if (!uid) continue;
      current.set(s.id, { uid, state: s.state, sandbox: true });
      podMap.set(uid, { uid, name: s.labels[LABEL_POD_NAME] ?? s.metadata.name, namespace: s.labels[LABEL_POD_NAMESPACE] ?? s.metadata.namespace });
    }
    for (const c of containers) {
      const uid = c.labels[LABEL_POD_UID];
      if (!uid) continue;
      current.set(c.id, { uid, state: c.state, name: c.labels[LABEL_CONTAINER_NAME], sandbox: false });
      if (!podMap.has(uid)) podMap.set(uid, { uid, name: c.labels[LABEL_POD_NAME] ?? '', namespace: c.labels[LABEL_POD_NAMESPACE] ?? '' });
    }
    const events: PodLifecycleEvent[] = [];
    for (const [id, now] of current) {
      const before = previous.get(id);
      if (before?.state === now.state) continue;
      if (now.sandbox) events.push({ type: 'SandboxChanged', uid: now.uid, id });
      else if (now.state === 'running') events.push({ type: 'ContainerStarted', uid: now.uid, id, containerName: now.name });
      else if (now.state === 'exited' || (before && now.state === 'unknown')) events.push({ type: 'ContainerDied', uid: now.uid, id, containerName: now.name });
    }
    for (const [id, before] of previous) {
      if (current.has(id)) continue;
      events.push(before.sandbox ? { type: 'SandboxChanged', uid: before.uid, id } : { type: 'ContainerRemoved', uid: before.uid, id, containerName: before.name });
    }
    previous = current;
    pods = [...podMap.values()];
    lastRelist = clock.now();
    return events;
  }

  async function relist(): Promise<PodLifecycleEvent[]> {
    if (inFlight) return inFlight;
    inFlight = (async () => {
      try {
        const events = await relistOnce();
        if (failing) logger.info('runtime relist recovered');
        failing = '';
        for (const e of events) onEvent(e);
        options.onRelist?.();
        return events;
      } catch (err) {
        const message = (err as Error).message;
        if (message !== failing) logger.error({ err }, 'runtime relist failed');
        failing = message;
        return [];
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  }

  function loop() {
    if (stopped) return;
    timer?.cancel();
    timer = clock.setTimer(eventsLive ? eventedPeriodMs : periodMs, () => void relist().finally(loop));
  }

  /** A container event: relist now (coalesced with a relist in flight). */
  function onRuntimeEvent() {
    if (stopped) return;
    if (inFlight) {
      again = true;
      return;
    }
    void relist().finally(() => {
      if (again) {
        again = false;
        onRuntimeEvent();
      }
    });
  }

  function subscribe() {
    if (stopped || !runtime.containerEvents) return;
    let live = false;
    cancelEvents = runtime.containerEvents(
      () => {
        if (!live) {
          live = true;
          if (!eventsLive) logger.info('runtime container events live; relisting less often');
          eventsLive = true;
          lastEventError = '';
          loop();
        }
        onRuntimeEvent();
      },
      (err) => {
        cancelEvents = undefined;
        const wasLive = eventsLive;
        eventsLive = false;
        if (stopped) return;
        if (err.unimplemented) {
          logger.info('runtime has no container events (CRI GetContainerEvents unimplemented); relisting every %d ms', periodMs);
          return;
        }
        // with the relist already failing (runtime down), the relist's error line says it all
        if (err.message !== lastEventError || wasLive) logger[failing ? 'debug' : 'warn']({ err }, 'runtime container event stream ended; relisting until it is back');
        lastEventError = err.message;
        if (wasLive) loop();
        eventRetry = clock.setTimer(eventRetryMs, () => {
          eventRetry = undefined;
          subscribe();
        });
      },
    );
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      void relist().finally(loop);
      subscribe();
    },
    stop() {
      stopped = true;
      timer?.cancel();
      eventRetry?.cancel();
      cancelEvents?.();
      cancelEvents = undefined;
      eventsLive = false;
    },
    mode: () => (eventsLive ? 'events' : 'relist'),
    relist,
    runtimePods: () => pods,
    healthy() {
      if (lastRelist === undefined) return failing ? { healthy: false, message: `runtime relist failing: ${failing}` } : { healthy: true, message: 'not relisted yet' };
      const age = clock.now() - lastRelist;
      if (age > unhealthyAfterMs) return { healthy: false, lastRelist, message: `pleg was last seen active ${Math.round(age / 1000)}s ago${failing ? `: ${failing}` : ''}` };
      if (failing) return { healthy: false, lastRelist, message: `runtime relist failing: ${failing}` };
      return { healthy: true, lastRelist };
    },
  };
}
