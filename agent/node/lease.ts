/**
 * LeaseHeartbeat: the node's Lease in kube-node-lease, renewed every renewInterval (10 s, a
 * quarter of leaseDurationSeconds 40) with one PUT built from the last Lease the server returned,
 * so a steady state costs one request per renewal. Failures retry with backoff from 200 ms up to
 * 7 s; a conflict or a missing Lease makes the next attempt read (or create) it again. The owner
 * reference to the Node is added as soon as the Node's uid is known, so the Lease goes with it.
 * One log line when renewals start failing and one when they recover, never one per attempt.
 */
import type { Lease } from 'kubernetes-types/coordination/v1';
import type { Logger } from 'pino';
import type { ComponentHealth } from '../component';
import { errorMessage } from '../errors';
import { isConflict, isNotFound, isAlreadyExists } from '../kube/api-error';
import { createBackoff } from '../kube/backoff';
import type { Clock, TimerHandle } from '../kube/clock';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export interface LeaseHeartbeatOptions {
  client: Pick<KubeClient, 'get' | 'create' | 'update'>;
  nodeName: string;
  clock: Clock;
  logger: Logger;
  leaseDurationSeconds?: number;
  /** Default: leaseDurationSeconds / 4 (10 s for 40 s). */
  renewIntervalMs?: number;
  /** The Node's uid once registered (for the owner reference). */
  nodeUid(): string | undefined;
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface LeaseHeartbeat {
  start(): void;
  stop(): Promise<void>;
  /** Time of the last successful renewal (ms), if any. */
  lastRenewed(): number | undefined;
  health(): ComponentHealth;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function createLeaseHeartbeat(options: LeaseHeartbeatOptions): LeaseHeartbeat {
  const { client, nodeName, clock, logger } = options;
  const durationSeconds = options.leaseDurationSeconds ?? 40;
  const renewMs = options.renewIntervalMs ?? (durationSeconds * 1000) / 4;
  const backoff = createBackoff(clock, { initialMs: options.backoff?.initialMs ?? 200, maxMs: options.backoff?.maxMs ?? 7000, jitter: 0.2, resetAfterMs: 0 });
  const log = logger.child({ lease: `${NODE_LEASE_NAMESPACE}/${nodeName}` });
  let lease: Lease | undefined;
  let timer: TimerHandle | undefined;
  let running = false;
  let inFlight: Promise<void> | undefined;
  let lastRenewed: number | undefined;
  let failing: { since: number; attempts: number; message: string } | undefined;

  function desired(base: Lease | undefined): Lease {
    const uid = options.nodeUid();
    const owners = base?.metadata?.ownerReferences ?? [];
    const ownerReferences = uid && !owners.some((o) => o.uid === uid)
      ? [...owners.filter((o) => !(o.kind === 'Node' && o.name === nodeName)), { apiVersion: 'v1', kind: 'Node', name: nodeName, uid }]
      : owners;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      ...base,
      metadata: { ...(base?.metadata ?? {}), name: nodeName, namespace: NODE_LEASE_NAMESPACE, ...(ownerReferences.length ? { ownerReferences } : {}) },
      spec: { ...(base?.spec ?? {}), holderIdentity: nodeName, leaseDurationSeconds: durationSeconds, renewTime: microTime(clock.now()) },
    };
  }

  async function renewOnce(): Promise<void> {
    if (!lease) {
      try {
        lease = await client.get(Resources.leases, nodeName, { namespace: NODE_LEASE_NAMESPACE });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        try {
          lease = await client.create(Resources.leases, desired(undefined));
          return;
        } catch (createErr) {
          if (isAlreadyExists(createErr)) lease = undefined;
          throw createErr;
        }
      }
    }
    try {
      lease = await client.update(Resources.leases, desired(lease));
    } catch (err) {
      // Someone else wrote it, or it was deleted: read it again on the next attempt.
      if (isConflict(err) || isNotFound(err)) lease = undefined;
      throw err;
    }
  }

  function schedule(ms: number): void {
    if (!running) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      inFlight = tick().finally(() => (inFlight = undefined));
    }, ms);
  }

  async function tick(): Promise<void> {
    if (!running) return;
    try {
      await renewOnce();
      lastRenewed = clock.now();
      backoff.succeeded();
      if (failing) {
        log.info({ attempts: failing.attempts, downSeconds: Math.round((clock.now() - failing.since) / 1000) }, 'node lease renewed again');
        failing = undefined;
      }
      // Small jitter (as kubelet's 4 %) so many nodes do not renew in lockstep.
      schedule(Math.round(renewMs * (1 + 0.04 * clock.random())));
    } catch (err) {
      const message = errorMessage(err);
      if (!failing) {
        failing = { since: clock.now(), attempts: 1, message };
        log.warn({ err }, 'cannot renew node lease, retrying with backoff');
      } else {
        failing.attempts++;
        failing.message = message;
        log.debug({ err, attempt: failing.attempts }, 'node lease renewal failed again');
      }
      schedule(backoff.next());
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      schedule(0);
    },
    async stop() {
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
    lastRenewed: () => lastRenewed,
    health() {
      const age = lastRenewed === undefined ? undefined : clock.now() - lastRenewed;
      const healthy = age !== undefined && age < durationSeconds * 1000;
      return {
        name: 'node-lease',
        healthy,
        message: failing
          ? `renewal failing for ${Math.round((clock.now() - failing.since) / 1000)}s (${failing.attempts} attempts): ${failing.message}`
          : lastRenewed === undefined
            ? 'not renewed yet'
            : `renewed ${Math.round((age ?? 0) / 1000)}s ago`,
        ...(lastRenewed !== undefined ? { lastSyncTime: new Date(lastRenewed).toISOString() } : {}),
      };
    },
  };
}
