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
import { createLifecycleHooks } from './hooks';
import { createProber } from './probes/prober';
import { createPleg } from './pleg';
import { ensureCniConfig } from './cni-config';
import { createGarbageCollector, type FsUsageReader, type ImageGcPolicy } from './gc';
import type { ManifestProblem, PodSource } from './pod-source';
import { createPodWorker, type PodWorker, type PodWorkerDeps, type TerminateOptions, type WorkerPhase } from './pod-worker';
import { rejectedStatus, type AdmitResult } from './admission';
import { recordEvent } from './events';
import { qosClass } from './pod-status';
import { createRuntimeManager } from './runtime-manager';
import { shutdownPods, type NodeShutdownOptions } from './node-shutdown';
import { standalonePodData, type PodDataLookup } from './pod-data';
import { createPodSpecSupport } from './run-container-options';
import type { Mounter } from './volumes';
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
  /** Container GC period (default 1 min) and image GC thresholds and period (gc.ts; default 85 %/80 %, 2 min min age, 5 min). */
  containerGCPeriodMs?: number;
  /** The node's pod CIDR: with no CNI config in cniConfDir, a bridge config for it is written at start (cni-config.ts). */
  podCIDR?: string;
  /** The runtime's CNI config folder (default: what the runtime reports, else /etc/cni/net.d). */
  cniConfDir?: string;
  imageGC?: Partial<ImageGcPolicy> & { periodMs?: number };
  /** Static pod folder full rescan period (default 20 s). */
  fileCheckFrequencyMs?: number;
  /** Per-pod periodic resync (default 30 s). */
  resyncMs?: number;
  /** Cluster DNS server addresses for dnsPolicy ClusterFirst (kubelet's clusterDNS); none: pods use the host's resolver. */
  clusterDNS?: string[];
  /** Cluster domain (kubelet's clusterDomain, e.g. cluster.local). */
  clusterDomain?: string;
  /** kubelet's seccompDefault: pods that set no seccomp profile get RuntimeDefault instead of Unconfined. */
  seccompDefault?: boolean;
}

export interface KubeletOptions {
  /** The CRI client (cri/client.ts); or pass `runtime` directly (unit tests use fake-runtime.ts). */
  cri?: CriClient;
  runtime?: PodRuntime;
  config: KubeletConfig;
  logger: Logger;
  clock?: Clock;
  /** ConfigMaps, Secrets, tokens and Services pods reference (cluster mode); default: standalone, none. */
  podData?: PodDataLookup;
  /** tmpfs mounts for volumes (default: mount(8)); unit tests pass a fake. */
  mounter?: Mounter;
  /** Image filesystem usage for image GC (default: statfs of the runtime's image fs). */
  imageFsUsage?: FsUsageReader;
}

export interface KubeletComponent extends Component {
  /** The lifecycle phase of a pod's worker (undefined when the kubelet has none for this UID). */
  workerPhase(uid: string): WorkerPhase | undefined;
  /** Status of every pod keelson runs, for `keelson status`. */
  pods(): PodStatusSnapshot[];
  /** Bad manifests: file, document, field and reason. */
  manifestProblems(): ManifestProblem[];
  readonly statusManager: StatusManager;
  /**
   * Graceful node shutdown (node-shutdown.ts): stops every pod, critical ones last, within the
   * grace periods, and starts no new pod. Called on a host shutdown, before stop().
   */
  shutdownPods(options: NodeShutdownOptions): Promise<void>;
}

/**
 * What cluster mode adds to the pod lifecycle (cluster-kubelet.ts fills it): admission of new pods,
 * and a view of the set of pods being run, for checkpoints, mirror pods and status.
 */
export interface KubeletHooks {
  /** Decides whether a new pod may run beside the pods already admitted (not terminal). */
  admit?(pod: Pod, admitted: Pod[]): AdmitResult;
  /** The pods admitted and run, after every change of the sources' sets. */
  onPods?(running: Pod[], all: Map<string, Pod[]>): void;
  /** Called after every runtime relist (about once a second). */
  onTick?(): void;
}

interface Deps {
  sources: PodSource[];
  hooks?: KubeletHooks;
}

const isTerminalPhase = (phase: string | undefined) => phase === 'Succeeded' || phase === 'Failed';

/** What of a pod a worker acts on: metadata and spec; status and resourceVersion changes alone are not updates. */
function workerKey(pod: Pod): string {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = pod.metadata ?? {};
  return canonicalJson({ metadata, spec: pod.spec });
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
  /** Set by shutdownPods(): pods that arrive now are not started. */
  let nodeShuttingDown = false;
  let workerDeps: PodWorkerDeps | undefined;

  async function resolveRuntimeName() {
    if (runtimeName) return;
    try {
      runtimeName = (await runtime!.version()).runtimeName;
    } catch {
      // reported through the relist's health; retried on the next relist
    }
  }

  /** Pods admitted (by UID); the pod last given to the worker. */
  const admitted = new Set<string>();
  /** Pods refused by admission (by UID), so they are judged once. */
  const rejected = new Set<string>();

  function activePods(): Pod[] {
    const out: Pod[] = [];
    for (const w of workers.values()) if (w.phase() !== 'terminated' && !removing.has(w.uid)) out.push(w.pod());
    for (const p of pendingStarts.values()) out.push(p);
    return out;
  }

  function admit(pod: Pod): boolean {
    const uid = pod.metadata!.uid!;
    if (admitted.has(uid)) return true;
    if (rejected.has(uid)) return false;
    const result = deps.hooks?.admit?.(pod, activePods()) ?? { admit: true };
    if (result.admit) {
      admitted.add(uid);
      return true;
    }
    rejected.add(uid);
    logger.warn({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, reason: result.reason }, `pod rejected: ${result.message}`);
    statusManager.setPodStatus(pod, { ...rejectedStatus(result), qosClass: qosClass(pod) });
    recordEvent(pod, 'Warning', result.reason, result.message);
    return false;
  }

  function podsChanged(source: string, pods: Pod[]) {
    sourcePods.set(source, pods);
    const desired = new Map<string, Pod>();
    for (const list of sourcePods.values()) {
      for (const p of list) {
        const uid = p.metadata!.uid!;
        // a pod already finished (or refused) in the apiserver is not run again, unless a worker still holds it
        if (!workers.has(uid) && !pendingStarts.has(uid) && (isTerminalPhase(p.status?.phase) || rejected.has(uid))) continue;
        desired.set(uid, p);
      }
    }
    for (const [uid, worker] of workers) {
      if (desired.has(uid) || removing.has(uid)) continue;
      removing.add(uid);
      worker.terminate({ remove: true });
    }
    for (const uid of pendingStarts.keys()) if (!desired.has(uid)) pendingStarts.delete(uid);
    const known = new Set<string>();
    for (const list of sourcePods.values()) for (const p of list) known.add(p.metadata!.uid!);
    for (const uid of rejected) {
      if (known.has(uid)) continue;
      rejected.delete(uid);
      if (!workers.has(uid)) statusManager.removePod(uid);
    }
    for (const uid of admitted) if (!known.has(uid)) admitted.delete(uid);
    // new pods are admitted oldest first, as kubelet does
    const ordered = [...desired.values()].sort((a, b) => (a.metadata!.creationTimestamp ?? '').localeCompare(b.metadata!.creationTimestamp ?? ''));
    for (const pod of ordered) {
      const uid = pod.metadata!.uid!;
      if (pendingStarts.has(uid)) continue;
      const deleting = pod.metadata!.deletionTimestamp ? { remove: false, gracePeriodSeconds: pod.metadata!.deletionGracePeriodSeconds ?? undefined } : undefined;
      const worker = workers.get(uid);
      if (worker && !removing.has(uid)) {
        if (worker.pod() !== pod && workerKey(worker.pod()) !== workerKey(pod)) worker.update(pod);
        if (deleting && worker.phase() === 'syncing') worker.terminate(deleting);
        continue;
      }
      if (nodeShuttingDown) continue;
      if (!deleting && !admit(pod)) {
        desired.delete(uid);
        continue;
      }
      startWhenFree(pod, deleting);
    }
    deps.hooks?.onPods?.([...desired.values()], sourcePods);
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
  function startWhenFree(pod: Pod, terminateAtOnce?: TerminateOptions) {
    const uid = pod.metadata!.uid!;
    const ref = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    const previous = workers.get(uid) ?? [...workers.values()].find((w) => w.ref === ref);
    if (!previous) {
      // a pod deleted before keelson ran it (or while keelson was down): only stop what may run
      logger.debug({ pod: ref, uid }, 'pod worker started');
      track(createPodWorker(pod, workerDeps!, terminateAtOnce));
      return;
    }
    pendingStarts.set(uid, pod);
    void previous.terminated.then(() => {
      if (!started || pendingStarts.get(uid) !== pod) return;
      pendingStarts.delete(uid);
      startWhenFree(pod, terminateAtOnce);
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

  const gc = createGarbageCollector({
    runtime,
    clock,
    logger,
    // until every source delivered its pods, every pod counts as wanted
    isPodActive: (uid) => !sourcesReady || workers.has(uid) || pendingStarts.has(uid),
    ...(options.imageFsUsage ? { fsUsage: options.imageFsUsage } : {}),
    ...(config.containerGCPeriodMs ? { containerPeriodMs: config.containerGCPeriodMs } : {}),
    ...(config.imageGC ? { imageGC: config.imageGC } : {}),
  });

  const pleg = createPleg({
    runtime,
    clock,
    logger,
    periodMs: config.relistPeriodMs,
    cache: reader,
    onEvent: (event) => workers.get(event.uid)?.wake(),
    onRelist: () => {
      void resolveRuntimeName();
      cleanupOrphans(pleg.runtimePods());
      deps.hooks?.onTick?.();
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
      if (config.podCIDR) {
        await ensureCniConfig({ podCIDR: config.podCIDR, confDir: config.cniConfDir, runtime: runtime!, logger }).catch((err) =>
          logger.error({ err, confDir: config.cniConfDir }, 'cannot write the CNI config'));
      }
      const prober = createProber(runtime!);
      const manager = createRuntimeManager({
        hooks: createLifecycleHooks({ prober, clock, logger }),
        runtime: runtime!,
        images: createImagePuller(runtime!, backoff, clock),
        backoff,
        logger,
        podLogsDir: config.podLogsDir,
        hostIP: config.nodeIP ?? '',
        dnsConfig,
        spec: createPodSpecSupport({
          rootDir: config.rootDir,
          seccompDefault: config.seccompDefault,
          dns: { clusterDNS: config.clusterDNS ?? [], clusterDomain: config.clusterDomain ?? '', host: dnsConfig },
          data: options.podData ?? standalonePodData(),
          runtime: runtime!,
          logger,
          clock,
          ...(options.mounter ? { mounter: options.mounter } : {}),
        }),
      });
      workerDeps = {
        manager, reader, backoff, clock, logger, statusManager,
        runtimeName: () => runtimeName || 'cri',
        hostIP: config.nodeIP ?? '',
        podLogsDir: config.podLogsDir,
        resyncMs: config.resyncMs,
        prober,
      };
      for (const source of deps.sources) await source.start((pods) => podsChanged(source.name, pods));
      sourcesReady = true;
      pleg.start();
      gc.start();
      logger.info({ staticPodPath: config.staticPodPath, podLogsDir: config.podLogsDir }, 'kubelet started');
    },
    async stop() {
      started = false;
      sourcesReady = false;
      for (const source of deps.sources) source.stop();
      pleg.stop();
      gc.stop();
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
      admitted.clear();
      rejected.clear();
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
    workerPhase: (uid) => (pendingStarts.has(uid) ? 'syncing' : workers.get(uid)?.phase()),
    manifestProblems: () => deps.sources.flatMap((s) => s.problems()),
    async shutdownPods(options) {
      nodeShuttingDown = true;
      pendingStarts.clear();
      const targets = [...workers.values()].filter((w) => w.phase() !== 'terminated' && !removing.has(w.uid));
      await shutdownPods({ workers: targets, statusManager, clock, logger }, options);
    },
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
