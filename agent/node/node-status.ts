/**
 * NodeStatusReporter: computes the node status every updateFrequency (10 s) and sends it as a
 * strategic-merge patch of nodes/status only when something changed or when reportFrequency
 * (5 min) has passed since the last report. Condition transition times move only when a
 * condition's status changes. Failures (5xx, conflicts, no route) retry with backoff capped below
 * the update period, so the status is right within one period after the apiserver returns.
 */
import type { Node, NodeCondition, NodeStatus } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { isNotFound } from '../kube/api-error';
import { createBackoff } from '../kube/backoff';
import type { Clock, TimerHandle } from '../kube/clock';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';
import type { ConditionValue } from './conditions';

export interface ObservedStatus {
  conditions: ConditionValue[];
  /** capacity, allocatable, addresses, nodeInfo, daemonEndpoints. */
  status: NodeStatus;
}

export interface NodeStatusReporterOptions {
  client: Pick<KubeClient, 'patch'>;
  nodeName: string;
  clock: Clock;
  logger: Logger;
  observe(): Promise<ObservedStatus>;
  updateFrequencyMs?: number;
  reportFrequencyMs?: number;
  /** The Node is gone (404): register it again. */
  onNodeMissing(): void;
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface NodeStatusReporter {
  start(): void;
  stop(): Promise<void>;
  /** Computes and, if needed, sends now (after registration, or a change the caller knows of). */
  syncNow(): void;
  /** The conditions last computed. */
  conditions(): ConditionValue[];
  lastReported(): number | undefined;
  healthy(): { healthy: boolean; message: string };
}

function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function createNodeStatusReporter(options: NodeStatusReporterOptions): NodeStatusReporter {
  const { client, nodeName, clock, logger } = options;
  const updateMs = options.updateFrequencyMs ?? 10_000;
  const reportMs = options.reportFrequencyMs ?? 300_000;
  const backoff = createBackoff(clock, { initialMs: options.backoff?.initialMs ?? 200, maxMs: Math.min(options.backoff?.maxMs ?? 7000, updateMs), jitter: 0.2, resetAfterMs: 0 });
  const log = logger.child({ node: nodeName });
  const transitions = new Map<string, { status: string; at: number }>();
  let lastSentKey = '';
  let lastSentAt: number | undefined;
  let current: ConditionValue[] = [];
  let running = false;
  let timer: TimerHandle | undefined;
  let inFlight: Promise<void> | undefined;
  let rerun = false;
  let failing: { since: number; attempts: number; message: string } | undefined;

  function withTimes(conditions: ConditionValue[], now: number): NodeCondition[] {
    return conditions.map((c) => {
      const previous = transitions.get(c.type);
      if (!previous || previous.status !== c.status) transitions.set(c.type, { status: c.status, at: now });
      return { ...c, lastHeartbeatTime: timestamp(now), lastTransitionTime: timestamp(transitions.get(c.type)!.at) };
    });
  }

  async function syncOnce(): Promise<void> {
    const observed = await options.observe();
    current = observed.conditions;
    const now = clock.now();
    for (const c of observed.conditions) {
      const previous = transitions.get(c.type);
      if (previous && previous.status !== c.status) log.info({ condition: c.type, status: c.status, reason: c.reason, detail: c.message }, 'node condition changed');
    }
    const key = JSON.stringify(observed);
    const due = lastSentAt === undefined || now - lastSentAt >= reportMs;
    if (key === lastSentKey && !due) return;
    const patch: Node = { status: { ...observed.status, conditions: withTimes(observed.conditions, now) } };
    try {
      await client.patch(Resources.nodes, nodeName, patch, { type: 'strategic', subresource: 'status' });
    } catch (err) {
      if (isNotFound(err)) options.onNodeMissing();
      throw err;
    }
    lastSentKey = key;
    lastSentAt = now;
  }

  function schedule(ms: number): void {
    if (!running) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => {
      timer = undefined;
      run();
    }, ms);
  }

  function run(): void {
    if (!running) return;
    if (inFlight) {
      rerun = true;
      return;
    }
    inFlight = (async () => {
      try {
        await syncOnce();
        backoff.succeeded();
        if (failing) {
          log.info({ attempts: failing.attempts, downSeconds: Math.round((clock.now() - failing.since) / 1000) }, 'node status reported again');
          failing = undefined;
        }
        schedule(updateMs);
      } catch (err) {
        const message = errorMessage(err);
        if (!failing) {
          failing = { since: clock.now(), attempts: 1, message };
          log.warn({ err }, 'cannot report node status, retrying with backoff');
        } else {
          failing.attempts++;
          failing.message = message;
          log.debug({ err, attempt: failing.attempts }, 'node status report failed again');
        }
        schedule(backoff.next());
      }
    })().finally(() => {
      inFlight = undefined;
      if (rerun && running) {
        rerun = false;
        run();
      }
    });
  }

  return {
    start() {
      if (running) return;
      running = true;
      run();
    },
    async stop() {
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
    syncNow() {
      if (!running) return;
      // Force a report: the object may be new or re-created.
      lastSentKey = '';
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      run();
    },
    conditions: () => current,
    lastReported: () => lastSentAt,
    healthy() {
      if (failing) return { healthy: false, message: `status report failing for ${Math.round((clock.now() - failing.since) / 1000)}s: ${failing.message}` };
      if (lastSentAt === undefined) return { healthy: false, message: 'status not reported yet' };
      return { healthy: true, message: `status reported ${Math.round((clock.now() - lastSentAt) / 1000)}s ago` };
    },
  };
}
