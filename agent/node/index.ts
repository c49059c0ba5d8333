/**
 * The node component (cluster mode): registers the Node (create, or adopt one of the same name),
 * keeps its Lease renewed (lease.ts), reports its status (node-status.ts) and rotates the client
 * certificate (cert-rotation.ts). start() returns at once: with the apiserver unreachable the
 * loops retry with backoff while the rest of the daemon runs, and converge when it returns.
 *
 *   const node = createNodeComponent({ client, cri, logger, config: { nodeName, nodeIP, ... },
 *     podLifecycleHealth: () => kubelet.health(),
 *     clientCertificate: { path: kubeconfig.source.clientCertificatePath } });
 */
import { hostname } from 'node:os';
import type { Node } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { CriClient } from '../../cri/client';
import type { Component, ComponentHealth } from '../component';
import { errorMessage } from '../errors';
import { isAlreadyExists, isNotFound } from '../kube/api-error';
import { createBackoff } from '../kube/backoff';
import { systemClock, type Clock, type TimerHandle } from '../kube/clock';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';
import { keelsonVersion } from '../version';
import { createCertificateRotation, type CertificateRotation } from './cert-rotation';
import { computeConditions, type RuntimeObservation } from './conditions';
import { realHostProbe, type HostProbe, type SystemInfo } from './host-info';
import { createLeaseHeartbeat } from './lease';
import { computeResources } from './node-resources';
import { defaultLabels, newNode, staticStatus, type NodeIdentity } from './node-object';
import { createNodeStatusReporter, type ObservedStatus } from './node-status';

export { rbacManifest, checkPermissions, requiredPermissions, RBAC_FIX_COMMAND } from './rbac';

export interface NodeComponentConfig {
  nodeName: string;
  nodeIP?: string;
  /** For the Hostname address; default the host's name, lower-cased. */
  hostname?: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
  maxPods?: number;
  systemReserved?: Record<string, string>;
  kubeReserved?: Record<string, string>;
  evictionHard?: Record<string, string>;
  leaseDurationSeconds?: number;
  /** How often status is computed (nodeStatusUpdateFrequency, 10 s). */
  statusUpdateFrequencyMs?: number;
  /** How often an unchanged status is still sent (nodeStatusReportFrequency, 5 min). */
  statusReportFrequencyMs?: number;
  /** Lease renew interval; default leaseDurationSeconds / 4. */
  leaseRenewIntervalMs?: number;
  kubeletPort?: number;
  /** Its filesystem is the node's ephemeral storage (default /var/lib/keelson). */
  rootDir?: string;
}

export interface NodeComponentOptions {
  client: Pick<KubeClient, 'get' | 'create' | 'update' | 'patch' | 'setCredentials'>;
  config: NodeComponentConfig;
  cri: Pick<CriClient, 'version' | 'status'>;
  logger: Logger;
  clock?: Clock;
  host?: HostProbe;
  /** The kubelet's pod lifecycle relist health, when pods run in this daemon. */
  podLifecycleHealth?: () => { healthy: boolean; message?: string };
  /** Rotate this client certificate (cert + key PEM file); omitted: no rotation. */
  clientCertificate?: { path: string; approvalTimeoutMs?: number; pollIntervalMs?: number };
  /** Backoff of the lease and status loops (tests). */
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface NodeComponent extends Component {
  /** The Node's uid once registered. */
  nodeUid(): string | undefined;
  /** The conditions computed last. */
  conditions(): ReturnType<typeof computeConditions>;
}

/** kubeletVersion: a semver that version-skew checks can parse, and that says what it is. */
export function kubeletVersionString(): string {
  return `v1.30.0-keelson.${keelsonVersion().replace(/[^0-9A-Za-z.-]/g, '-')}`;
}

export function createNodeComponent(options: NodeComponentOptions): NodeComponent {
  const { client, cri, config } = options;
  const clock = options.clock ?? systemClock;
  const host = options.host ?? realHostProbe;
  const logger = options.logger.child({ component: 'node' });
  const nodeName = config.nodeName;
  const rootDir = config.rootDir ?? '/var/lib/keelson';
  const evictionHard = config.evictionHard ?? { 'memory.available': '100Mi', 'nodefs.available': '10%', 'nodefs.inodesFree': '5%' };
  const identity: NodeIdentity = {
    nodeName,
    hostname: config.hostname ?? hostname().toLowerCase(),
    nodeIP: config.nodeIP,
    labels: config.labels ?? {},
    taints: config.taints ?? [],
    kubeletPort: config.kubeletPort ?? 10250,
  };
  const kubeletVersion = kubeletVersionString();
  let system: SystemInfo | undefined;
  let runtimeVersion: string | undefined;
  let uid: string | undefined;
  let running = false;
  let registered = false;
  let registerTimer: TimerHandle | undefined;
  let registering: Promise<void> | undefined;
  let registrationError: string | undefined;
  let reporterStarted = false;
  const registerBackoff = createBackoff(clock, { initialMs: options.backoff?.initialMs ?? 200, maxMs: options.backoff?.maxMs ?? 7000, jitter: 0.2, resetAfterMs: 0 });

  async function observeRuntime(): Promise<RuntimeObservation> {
    try {
      if (runtimeVersion === undefined) {
        const v = await cri.version();
        runtimeVersion = `${v.runtime_name}://${v.runtime_version}`;
      }
      const status = await cri.status();
      return { conditions: status.status?.conditions ?? [] };
    } catch (err) {
      // Ask the version again once it is back: the runtime may have been upgraded.
      runtimeVersion = undefined;
      return { error: errorMessage(err) };
    }
  }

  async function observe(): Promise<ObservedStatus> {
    system ??= host.systemInfo();
    const runtime = await observeRuntime();
    const memory = host.memory();
    const rootFs = host.filesystem(rootDir);
    const resources = computeResources(
      { maxPods: config.maxPods ?? 110, systemReserved: config.systemReserved ?? {}, kubeReserved: config.kubeReserved ?? {}, evictionHard },
      host.cpuCount(),
      memory,
      rootFs,
    );
    const conditions = computeConditions({ runtime, podLifecycle: options.podLifecycleHealth?.(), memory, rootFs, pids: host.pids(), evictionHard });
    // While the runtime is down its version is unknown: keep the last one reported rather than blank it.
    if (runtimeVersion !== undefined) lastRuntimeVersion = runtimeVersion;
    return { conditions, status: staticStatus(identity, system, resources, lastRuntimeVersion ?? '', kubeletVersion) };
  }
  let lastRuntimeVersion: string | undefined;

  const reporter = createNodeStatusReporter({
    client,
    nodeName,
    clock,
    logger,
    observe,
    updateFrequencyMs: config.statusUpdateFrequencyMs,
    reportFrequencyMs: config.statusReportFrequencyMs,
    backoff: options.backoff,
    onNodeMissing() {
      if (!registered) return;
      logger.warn({ node: nodeName }, 'Node object is gone, registering again');
      registered = false;
      uid = undefined;
      scheduleRegister(0);
    },
  });

  const lease = createLeaseHeartbeat({
    client,
    nodeName,
    clock,
    logger,
    leaseDurationSeconds: config.leaseDurationSeconds,
    renewIntervalMs: config.leaseRenewIntervalMs,
    nodeUid: () => uid,
    backoff: options.backoff,
  });

  let rotation: CertificateRotation | undefined;
  if (options.clientCertificate) {
    rotation = createCertificateRotation({
      client,
      nodeName,
      certPath: options.clientCertificate.path,
      clock,
      logger,
      approvalTimeoutMs: options.clientCertificate.approvalTimeoutMs,
      pollIntervalMs: options.clientCertificate.pollIntervalMs,
      onRotated: (credentials) => client.setCredentials(credentials),
    });
  }

  async function register(): Promise<void> {
    system ??= host.systemInfo();
    let existing: Node | undefined;
    try {
      existing = await client.get(Resources.nodes, nodeName);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!existing) {
      const observed = await observe();
      try {
        const created = await client.create(Resources.nodes, newNode(identity, system, observed.status));
        uid = created.metadata?.uid;
        logger.info({ node: nodeName, uid }, 'node registered');
        return;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        existing = await client.get(Resources.nodes, nodeName);
      }
    }
    uid = existing.metadata?.uid;
    // Adopt: make sure the labels keelson owns are there; leave taints and everything else to the admin.
    const want = defaultLabels(identity, system);
    const have = existing.metadata?.labels ?? {};
    const missing = Object.fromEntries(Object.entries(want).filter(([k, v]) => have[k] !== v));
    if (Object.keys(missing).length) {
      await client.patch(Resources.nodes, nodeName, { metadata: { labels: missing } }, { type: 'strategic' });
    }
    logger.info({ node: nodeName, uid, labelsUpdated: Object.keys(missing).length }, 'existing node adopted');
  }

  function scheduleRegister(ms: number): void {
    if (!running) return;
    registerTimer = clock.setTimeout(() => {
      registerTimer = undefined;
      registering = (async () => {
        try {
          await register();
          registered = true;
          registrationError = undefined;
          registerBackoff.succeeded();
          if (reporterStarted) reporter.syncNow();
          else {
            reporterStarted = true;
            reporter.start();
          }
        } catch (err) {
          const message = errorMessage(err);
          if (message !== registrationError) logger.warn({ err, node: nodeName }, 'node registration failed, retrying with backoff');
          registrationError = message;
          scheduleRegister(registerBackoff.next());
        }
      })().finally(() => (registering = undefined));
    }, ms);
  }

  return {
    name: 'node',
    async start() {
      if (running) return;
      running = true;
      scheduleRegister(0);
      lease.start();
      rotation?.start();
    },
    async stop() {
      running = false;
      if (registerTimer !== undefined) clock.clearTimeout(registerTimer);
      registerTimer = undefined;
      await registering;
      await Promise.all([reporter.stop(), lease.stop(), rotation?.stop()]);
    },
    health(): ComponentHealth {
      const l = lease.health();
      const s = reporter.healthy();
      const c = rotation?.health();
      const ready = reporter.conditions().find((x) => x.type === 'Ready');
      const healthy = registered && l.healthy && s.healthy && (c?.healthy ?? true);
      const message = !registered
        ? `not registered${registrationError ? `: ${registrationError}` : ''}`
        : [`lease ${l.message}`, s.message, ready ? `Ready=${ready.status}${ready.status === 'True' ? '' : ` (${ready.message})`}` : '', c ? `certificate ${c.message}` : '']
            .filter(Boolean)
            .join('; ');
      return {
        name: 'node',
        healthy,
        message,
        ...(l.lastSyncTime ? { lastSyncTime: l.lastSyncTime } : {}),
        details: { registered, uid, conditions: reporter.conditions() },
      };
    },
    nodeUid: () => uid,
    conditions: () => reporter.conditions(),
  };
}
