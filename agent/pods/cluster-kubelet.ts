/**
 * The kubelet in cluster mode: static pods plus the pods the control plane binds to this node.
 * Wires, around createKubelet:
 *   informer (pods spec.nodeName=<node>) → api-pod-source.ts → admission.ts → workers
 *   status manager → status-patcher.ts → PATCH pods/status (mirror pod for static pods, mirror-pods.ts)
 *   recordEvent() → events.ts → Events;   admitted pods + their ConfigMaps/Secrets → checkpoint.ts
 */
import { join } from 'node:path';
import { arch } from 'node:os';
import type { TokenRequest } from 'kubernetes-types/authentication/v1';
import type { Node, Pod } from 'kubernetes-types/core/v1';
import type { KubeClient } from '../kube/client';
import type { InformerFactory } from '../kube/informer-factory';
import { Resources } from '../kube/resources';
import { admitPod } from './admission';
import { createApiPodSource, isMirrorPod } from './api-pod-source';
import { createConfigObjectStore, createPodCheckpoint, referencedConfigObjects, type ConfigObjectStore } from './checkpoint';
import { realClock, type ClockTimer } from './clock';
import type { PodDataLookup } from './pod-data';
import { createEventRecorder, registerEventSink, type EventRecorder } from './events';
import { createKubelet, type KubeletComponent, type KubeletOptions } from './kubelet';
import { canonicalJson } from './labels';
import { createMirrorPodManager } from './mirror-pods';
import { createStaticPodSource } from './static-pod-source';
import { createStatusPatcher, type StatusPatcher } from './status-patcher';

export interface ClusterKubeletOptions extends KubeletOptions {
  client: Pick<KubeClient, 'get' | 'create' | 'patch' | 'delete'>;
  informers: InformerFactory;
  /** Node labels from the config, for admission until the Node object is known. */
  nodeLabels?: Record<string, string>;
  maxPods?: number;
  /** How long start-up waits for the apiserver before running the checkpointed pods (default 3 s). */
  apiSyncTimeoutMs?: number;
  /** Status patch retry backoff (tests shorten it). */
  statusRetry?: { initialMs?: number; maxMs?: number };
}

export interface ClusterKubeletComponent extends KubeletComponent {
  readonly events: EventRecorder;
  readonly statusPatcher: StatusPatcher;
  /** ConfigMaps and Secrets for pods, from the apiserver or, offline, the checkpoint. */
  readonly configObjects: ConfigObjectStore;
}

const isTerminal = (p: Pod | undefined) => p?.status?.phase === 'Succeeded' || p?.status?.phase === 'Failed';

export function createClusterKubeletComponent(options: ClusterKubeletOptions): ClusterKubeletComponent {
  const { client, informers, config } = options;
  const clock = options.clock ?? realClock;
  const logger = options.logger.child({ component: 'kubelet' });
  const nodeName = config.nodeName;
  const podInformer = informers.forResource(Resources.pods, { fieldSelector: `spec.nodeName=${nodeName}` });
  const nodeInformer = informers.forResource(Resources.nodes, { fieldSelector: `metadata.name=${nodeName}` });
  const checkpoint = createPodCheckpoint(join(config.rootDir, 'checkpoints'), logger);
  const configObjects = createConfigObjectStore(client, checkpoint, logger);
  const events = createEventRecorder({ client, nodeName, logger, clock });

  /** UIDs of the pods checkpointed when keelson started: admitted before, not judged again. */
  const preAdmitted = new Set((checkpoint.loadPods() ?? []).map((p) => p.metadata!.uid!));
  const staticSource = createStaticPodSource({ staticPodPath: config.staticPodPath, nodeName, logger, clock, rescanMs: config.fileCheckFrequencyMs });
  const apiSource = createApiPodSource({ pods: podInformer, logger, clock, checkpoint, syncTimeoutMs: options.apiSyncTimeoutMs });
  const mirrors = createMirrorPodManager({ client, pods: podInformer, node: () => nodeInformer.get(undefined, nodeName), nodeName, logger, clock });

  /** Apiserver pods by UID (mirror pods left out). */
  const apiPods = new Map<string, Pod>();
  const staticPods = new Map<string, Pod>();
  let lastRefs = '';

  /** What pods reference (env, volumes, tokens, service links), for spec features (pod-data.ts). */
  function clusterPodData(): PodDataLookup {
    const services = informers.forResource(Resources.services);
    return {
      getConfigMap: (ns, name) => configObjects.getConfigMap(ns, name),
      getSecret: (ns, name) => configObjects.getSecret(ns, name),
      async requestToken(ns, serviceAccount, opts) {
        // POST serviceaccounts/<name>/token: the subresource path rides on the resource name
        const res = { group: '', version: 'v1', resource: `serviceaccounts/${encodeURIComponent(serviceAccount)}/token`, namespaced: true, kind: 'TokenRequest' } as const;
        const body: TokenRequest = {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: opts.audiences, expirationSeconds: opts.expirationSeconds, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: opts.boundPod.name, uid: opts.boundPod.uid } },
        };
        const out = await client.create<TokenRequest>(res, body, { namespace: ns });
        return { token: out.status!.token, expirationTimestamp: out.status!.expirationTimestamp };
      },
      async listServices(ns) {
        // the shared Service informer (started here when neither proxy nor DNS runs); a short wait for its first list
        services.start();
        let timer: ClockTimer | undefined;
        await Promise.race([services.waitForSync(), new Promise<void>((resolve) => (timer = clock.setTimer(2000, resolve)))]);
        timer?.cancel();
        return services.list().filter((s) => s.metadata?.namespace === ns);
      },
    };
  }

  function fallbackNode(): Node {
    return {
      metadata: {
        name: nodeName,
        labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': arch() === 'x64' ? 'amd64' : arch(), ...(options.nodeLabels ?? {}) },
      },
      status: options.maxPods ? { allocatable: { pods: String(options.maxPods) } } : {},
    };
  }

  const kubelet = createKubelet({ ...options, clock, podData: options.podData ?? clusterPodData() }, {
    sources: [staticSource, apiSource],
    hooks: {
      admit(pod, admitted) {
        // static pods are the node's own: counted, never refused
        if (pod.metadata?.annotations?.['kubernetes.io/config.source'] === 'file') return { admit: true };
        if (preAdmitted.has(pod.metadata!.uid!)) return { admit: true };
        return admitPod(pod, nodeInformer.get(undefined, nodeName) ?? fallbackNode(), admitted);
      },
      onPods(running, all) {
        staticPods.clear();
        for (const p of all.get('file') ?? []) staticPods.set(p.metadata!.uid!, p);
        mirrors.setStaticPods([...staticPods.values()]);
        // until the api source delivered its first set, what runs is not the whole story: keep the checkpoint
        if (!all.has('api')) return;
        const fromApi = running.filter((p) => !staticPods.has(p.metadata!.uid!));
        try {
          checkpoint.savePods(fromApi);
        } catch (err) {
          logger.error({ err, dir: join(config.rootDir, 'checkpoints') }, 'cannot write the pod checkpoint');
        }
        const refs = canonicalJson(fromApi.map(referencedConfigObjects));
        if (apiSource.live() && refs !== lastRefs) {
          lastRefs = refs;
          configObjects.refresh(fromApi).catch((err: unknown) => logger.warn({ err }, 'cannot checkpoint ConfigMaps/Secrets of pods'));
        }
      },
      onTick() {
        for (const [uid, p] of apiPods) if (p.metadata?.deletionTimestamp && deletable(uid)) patcher.sync(uid);
      },
    },
  });

  function deletable(uid: string): boolean {
    const phase = kubelet.workerPhase(uid);
    if (phase === 'terminated') return true;
    // no worker: only a pod that is finished (or was refused) may go at once
    return phase === undefined && (isTerminal(apiPods.get(uid)) || kubelet.statusManager.getPodStatus(uid)?.phase === 'Failed');
  }

  const patcher = createStatusPatcher({
    client,
    statusManager: kubelet.statusManager,
    logger,
    clock,
    retry: options.statusRetry,
    target(uid) {
      const sp = staticPods.get(uid);
      return sp ? mirrors.mirrorOf(sp) : apiPods.get(uid);
    },
    deletable: (uid) => !staticPods.has(uid) && deletable(uid),
  });

  const unsubscribeStatus = kubelet.statusManager.onChange((pod) => patcher.sync(pod.metadata!.uid!));

  function seen(p: Pod) {
    if (isMirrorPod(p)) {
      mirrors.sync();
      const uid = mirrors.staticUidOf(p);
      if (uid) patcher.sync(uid);
      return;
    }
    apiPods.set(p.metadata!.uid!, p);
    patcher.sync(p.metadata!.uid!);
  }
  let unsubscribePods: (() => void) | undefined;
  let unregisterSink: (() => void) | undefined;

  return {
    ...kubelet,
    name: 'kubelet',
    events,
    statusPatcher: patcher,
    configObjects,
    async start() {
      unregisterSink = registerEventSink({
        owns: (uid) => kubelet.workerPhase(uid) !== undefined || kubelet.statusManager.getPodStatus(uid) !== undefined || apiPods.has(uid),
        record: events.record,
      });
      unsubscribePods = podInformer.subscribe({
        onAdd: seen,
        onUpdate: (_old, p) => seen(p),
        onDelete(p) {
          if (isMirrorPod(p)) {
            mirrors.sync();
            return;
          }
          apiPods.delete(p.metadata!.uid!);
          patcher.forget(p.metadata!.uid!);
        },
      });
      nodeInformer.start();
      podInformer.start();
      await kubelet.start();
    },
    async stop() {
      unsubscribePods?.();
      unregisterSink?.();
      unsubscribeStatus();
      mirrors.stop();
      patcher.stop();
      events.stop();
      await kubelet.stop();
    },
    health() {
      const h = kubelet.health();
      const s = patcher.stats();
      return {
        ...h,
        ...(s.failing ? { message: `${h.message}; pod status updates failing: ${s.lastError ?? ''}` } : {}),
        details: { ...(h.details ?? {}), statusPatches: s.patches, podDeletes: s.deletes, events: events.stats(), apiserverPods: apiSource.live() ? 'live' : 'checkpoint' },
      };
    },
  };
}
