/**
 * Wires agent/pods together: pod sources → one worker per pod → CRI runtime, with the PLEG waking
 * workers on runtime changes and the status manager holding every pod's status. In standalone mode
 * the only source is the static pod folder (createStaticPodsComponent); issue 4 adds the apiserver
 * source through the same PodSource contract.
 */
import { readFile } from 'node:fs/promises';
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { CriClient } from '../../cri/client';
import type { Component, ComponentHealth } from '../component';
import { createBackoff, type BackoffOptions } from './backoff';
import { realClock, type Clock } from './clock';
import { createCriRuntime } from './cri-runtime';
import { parseResolvConf } from './dns';
import { canonicalJson } from './labels';
import { createImagePuller } from './images';
import { createPleg } from './pleg';
import type { ManifestProblem, PodSource } from './pod-source';
import { createPodWorker, type PodWorker, type PodWorkerDeps } from './pod-worker';
import { createRuntimeManager } from './runtime-manager';
import type { DnsConfig, PodRuntime } from './runtime';
import { createRuntimeStateReader } from './runtime-state';
import { createStaticPodSource } from './static-pod-source';
import { createStatusManager, type PodStatusSnapshot, type StatusManager } from './status-manager';

const STOP_WAIT_MS = 2000;

export interface KubeletConfig {
  staticPodPath: string;
  /** Base of container logs (kubelet's podLogsDir, default /var/log/pods). */
  podLogsDir: string;
  rootDir: string;
  nodeName: string;
  /** Reported as hostIP, and as podIP of host-network pods. */
  nodeIP?: string;
  /** Host resolv.conf given to pods in standalone mode (default /etc/resolv.conf). */
  resolvConf?: string;
  /** Crash-loop backoff (default 10 s doubling to 5 min, reset after 10 min running). */
  backoff?: BackoffOptions;
  /** PLEG relist period (default 1 s). */
  relistPeriodMs?: number;
  /** Static pod folder full rescan period (default 20 s). */
  fileCheckFrequencyMs?: number;
  /** Per-pod periodic resync (default 30 s). */
  resyncMs?: number;
}

export interface KubeletOptions {
  /** The CRI client (cri/client.ts); or pass `runtime` directly (unit tests use fake-runtime.ts). */
  cri?: CriClient;
  runtime?: PodRuntime;
  config: KubeletConfig;
  logger: Logger;
  clock?: Clock;
}

export interface KubeletComponent extends Component {
  /** Status of every pod keelson runs, for `keelson status`. */
  pods(): PodStatusSnapshot[];
  /** Bad manifests: file, document, field and reason. */
  manifestProblems(): ManifestProblem[];
  readonly statusManager: StatusManager;
}

interface Deps {
  sources: PodSource[];
}

export function createKubelet(options: KubeletOptions, deps: Deps): KubeletComponent {
  const { config } = options;
  const logger = options.logger.child({ component: 'kubelet' });
  const clock = options.clock ?? realClock;
  const runtime = options.runtime ?? (options.cri ? createCriRuntime(options.cri) : undefined);
  if (!runtime) throw new Error('createKubelet: pass cri or runtime');
  const backoff = createBackoff(clock, config.backoff);
  const statusManager = createStatusManager();
  const reader = createRuntimeStateReader(runtime);
  let runtimeName = '';
  let dnsConfig: DnsConfig | undefined;
  const workers = new Map<string, PodWorker>();
  const pendingStarts = new Map<string, Pod>();
  /** UIDs whose worker was asked to stop and remove the pod. */
  const removing = new Set<string>();
  const sourcePods = new Map<string, Pod[]>();
  let sourcesReady = false;
  let started = false;
  let workerDeps: PodWorkerDeps | undefined;

  async function resolveRuntimeName() {
    if (runtimeName) return;
    try {
      runtimeName = (await runtime!.version()).runtimeName;
    } catch {
      // reported through the relist's health; retried on the next relist
    }
  }

  function podsChanged(source: string, pods: Pod[]) {
    sourcePods.set(source, pods);
    const desired = new Map<string, Pod>();
    for (const list of sourcePods.values()) for (const p of list) desired.set(p.metadata!.uid!, p);
    for (const [uid, worker] of workers) {
      if (desired.has(uid) || removing.has(uid)) continue;
      removing.add(uid);
      worker.terminate({ remove: true });
    }
    for (const uid of pendingStarts.keys()) if (!desired.has(uid)) pendingStarts.delete(uid);
    for (const [uid, pod] of desired) {
      if (pendingStarts.has(uid)) continue;
      const worker = workers.get(uid);
      if (worker && !removing.has(uid)) {
        if (worker.pod() !== pod && canonicalJson(worker.pod()) !== canonicalJson(pod)) worker.update(pod);
        continue;
      }
      startWhenFree(pod);
    }
  }

  function track(worker: PodWorker) {
    workers.set(worker.uid, worker);
    void worker.terminated.then(() => {
      if (workers.get(worker.uid) !== worker) return;
      workers.delete(worker.uid);
      removing.delete(worker.uid);
    });
  }

  /**
   * A pod starts once any worker of the same name is gone: a static pod replacing an older version
   * of itself waits for the old one to stop (as kubelet does), and a pod removed and added back
   * waits for its removal to finish.
   */
  function startWhenFree(pod: Pod) {
    const uid = pod.metadata!.uid!;
    const ref = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    const previous = workers.get(uid) ?? [...workers.values()].find((w) => w.ref === ref);
    if (!previous) {
      track(createPodWorker(pod, workerDeps!));
      return;
    }
    pendingStarts.set(uid, pod);
    void previous.terminated.then(() => {
      if (!started || pendingStarts.get(uid) !== pod) return;
      pendingStarts.delete(uid);
      startWhenFree(pod);
    });
  }

  /** Sandboxes and containers keelson made for pods no source wants any more (e.g. removed while keelson was down). */
  function cleanupOrphans(runtimePods: { uid: string; name: string; namespace: string }[]) {
    // never after stop(), nor before every source delivered a complete set: every pod would look unwanted
    if (!started || !sourcesReady || !deps.sources.every((src) => sourcePods.has(src.name))) return;
    for (const p of runtimePods) {
      if (workers.has(p.uid) || pendingStarts.has(p.uid)) continue;
      const pod: Pod = { metadata: { uid: p.uid, name: p.name, namespace: p.namespace }, spec: { containers: [] } };
      logger.info({ pod: `${p.namespace}/${p.name}`, uid: p.uid }, 'removing pod no source wants');
      removing.add(p.uid);
      track(createPodWorker(pod, workerDeps!, { remove: true }));
    }
  }

  const pleg = createPleg({
    runtime,
    clock,
    logger,
    periodMs: config.relistPeriodMs,
    onEvent: (event) => workers.get(event.uid)?.wake(),
    onRelist: () => {
      void resolveRuntimeName();
      cleanupOrphans(pleg.runtimePods());
    },
  });

  return {
    name: 'kubelet',
    statusManager,
    async start() {
      started = true;
      try {
        dnsConfig = parseResolvConf(await readFile(config.resolvConf ?? '/etc/resolv.conf', 'utf8'));
      } catch (err) {
        logger.warn({ err, file: config.resolvConf ?? '/etc/resolv.conf' }, 'cannot read resolv.conf; pods get the runtime default DNS');
      }
      await resolveRuntimeName();
      const manager = createRuntimeManager({
        runtime: runtime!,
        images: createImagePuller(runtime!, backoff, clock),
        backoff,
        logger,
        podLogsDir: config.podLogsDir,
        hostIP: config.nodeIP ?? '',
        dnsConfig,
      });
      workerDeps = {
        manager, reader, backoff, clock, logger, statusManager,
        runtimeName: () => runtimeName || 'cri',
        hostIP: config.nodeIP ?? '',
        podLogsDir: config.podLogsDir,
        resyncMs: config.resyncMs,
      };
      for (const source of deps.sources) await source.start((pods) => podsChanged(source.name, pods));
      sourcesReady = true;
      pleg.start();
      logger.info({ staticPodPath: config.staticPodPath, podLogsDir: config.podLogsDir }, 'kubelet started');
    },
    async stop() {
      started = false;
      sourcesReady = false;
      for (const source of deps.sources) source.stop();
      pleg.stop();
      for (const worker of workers.values()) worker.stop();
      // let in-flight CRI calls finish, but do not wait out a grace period (a kill goes on in the runtime)
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...workers.values()].map((w) => w.idle())),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS))),
      ]);
      clearTimeout(timer);
      workers.clear();
      pendingStarts.clear();
      removing.clear();
    },
    health(): ComponentHealth {
      const p = pleg.healthy();
      const pods = statusManager.snapshot();
      const problems = deps.sources.flatMap((s) => s.problems());
      const running = pods.filter((s) => s.phase === 'Running').length;
      return {
        name: 'kubelet',
        healthy: started && p.healthy,
        message: !started ? 'not started' : p.healthy ? `${pods.length} pods, ${running} running${problems.length ? `, ${problems.length} manifest problems` : ''}` : p.message,
        ...(p.lastRelist ? { lastSyncTime: new Date(p.lastRelist).toISOString() } : {}),
        details: { pods: pods.length, running, manifestProblems: problems },
      };
    },
    pods: () => statusManager.snapshot(),
    manifestProblems: () => deps.sources.flatMap((s) => s.problems()),
  };
}

/** Standalone mode: static pods from config.staticPodPath, no apiserver. */
export function createStaticPodsComponent(options: KubeletOptions): KubeletComponent {
  const clock = options.clock ?? realClock;
  const source = createStaticPodSource({
    staticPodPath: options.config.staticPodPath,
    nodeName: options.config.nodeName,
    logger: options.logger.child({ component: 'kubelet' }),
    clock,
    rescanMs: options.config.fileCheckFrequencyMs,
  });
  return createKubelet({ ...options, clock }, { sources: [source] });
}
