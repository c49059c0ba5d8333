/**
 * Carries out a pod's actions on the CRI runtime (kubelet's kuberuntime manager): kill, create the
 * sandbox, pull images, create and start containers, and clean up dead instances. Start failures
 * are returned per container (ErrImagePull, CreateContainerError…), not thrown, so that one bad
 * container never blocks its siblings.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Backoff } from './backoff';
import { containerFieldPath, recordEvent } from './events';
import type { LifecycleHooks } from './hooks';
import { ANNOTATION_GRACE_PERIOD } from './labels';
import { ContainerStartError, type ImagePuller } from './images';
import { podLogDir } from './log-paths';
import { backoffKey, type PodActions, type Waiting } from './pod-actions';
import type { DnsConfig, PodRuntime } from './runtime';
import { makeContainerConfig, makeSandboxConfig } from './runtime-config';
import type { RuntimePodState } from './runtime-state';
import type { PodSpecSupport } from './run-container-options';
import { errorMessage } from '../errors';

const IMAGE_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull']);

export interface RuntimeManagerOptions {
  runtime: PodRuntime;
  images: ImagePuller;
  backoff: Backoff;
  logger: Logger;
  podLogsDir: string;
  hostIP: string;
  /** DNS for sandboxes that do not use the host network. */
  dnsConfig?: DnsConfig;
  /** Pod spec features (volumes, env sources, DNS policy, pull secrets); when set, its DNS replaces dnsConfig. */
  spec?: PodSpecSupport;
  /** postStart / preStop hooks (hooks.ts); without it hooks are not run. */
  hooks?: LifecycleHooks;
}

export interface RuntimeManager {
  syncPod(pod: Pod, state: RuntimePodState, actions: PodActions): Promise<Map<string, Waiting>>;
  /**
   * Stops every running container (SIGTERM, SIGKILL after the grace period) and every sandbox.
   * Without gracePeriodSeconds each container gets the grace period recorded on it at creation.
   * With the pod, containers with a preStop hook run it first (its time counts against the grace period).
   */
  killPod(podRef: string, state: RuntimePodState, gracePeriodSeconds?: number, pod?: Pod): Promise<void>;
  /** Removes the stopped containers and sandboxes of a pod, and its log folder. */
  removePod(podRef: string, state: RuntimePodState, logDir?: string): Promise<void>;
  /** Removes dead container instances beyond the newest exited one per container, and old sandboxes. */
  garbageCollect(state: RuntimePodState): Promise<string[]>;
}

export function podRef(pod: Pod): string {
  return `${pod.metadata!.namespace}/${pod.metadata!.name}`;
}

export function createRuntimeManager(options: RuntimeManagerOptions): RuntimeManager {
  const { runtime, images, backoff, logger, podLogsDir, hostIP } = options;

  async function stopContainer(ref: string, id: string, name: string, grace: number, reason: string, pod?: Pod, podIP = '') {
    const spec = pod?.spec?.containers.find((c) => c.name === name);
    if (options.hooks && pod && spec?.lifecycle?.preStop) grace = await options.hooks.preStop(pod, spec, id, podIP || hostIP, grace);
    logger.info({ pod: ref, container: name, containerId: id, gracePeriod: grace, reason }, 'killing container');
    if (pod) recordEvent(pod, 'Normal', 'Killing', /probe/.test(reason) ? reason : `Stopping container ${name}`, { fieldPath: containerFieldPath(name) });
    await runtime.stopContainer(id, grace);
  }

  async function killPod(ref: string, state: RuntimePodState, grace?: number, pod?: Pod) {
    const graceOf = (annotations: Record<string, string>) => {
      const recorded = Number(annotations[ANNOTATION_GRACE_PERIOD]);
      return grace ?? (Number.isInteger(recorded) && recorded >= 0 ? recorded : 30);
    };
    await Promise.all(
      state.containers
        .filter((c) => c.state === 'running' || c.state === 'unknown')
        .map((c) => stopContainer(ref, c.id, c.name, graceOf(c.annotations), 'pod stopping', pod, state.sandboxes[0]?.ip)),
    );
    for (const s of state.sandboxes) {
      if (s.state === 'ready') {
        await runtime.stopPodSandbox(s.id);
        logger.info({ pod: ref, sandbox: s.id }, 'stopped pod sandbox');
      }
    }
  }

  return {
    async syncPod(pod, state, actions) {
      const ref = podRef(pod);
      const uid = pod.metadata!.uid!;
      const grace = pod.spec!.terminationGracePeriodSeconds ?? 30;
      const errors = new Map<string, Waiting>();
      if (actions.killPod) await killPod(ref, state, grace, pod);
      for (const k of actions.containersToKill) await stopContainer(ref, k.id, k.name, k.gracePeriodSeconds ?? grace, k.reason, pod, state.sandboxes[0]?.ip);

      const logDir = podLogDir(podLogsDir, pod.metadata!.namespace!, pod.metadata!.name!, uid);
      const spec = options.spec;
      // volumes are set up (and refreshed: ConfigMap/Secret/token changes) on every sync, before containers start
      if (spec) await spec.prepareVolumes(pod, hostIP);
      const dnsConfig = spec ? spec.sandboxDns(pod) : pod.spec!.hostNetwork ? undefined : options.dnsConfig;
      const sandboxConfig = makeSandboxConfig(pod, actions.attempt, { podLogsDir, dnsConfig, clusterDomain: spec?.clusterDomain, seccomp: spec?.sandboxSeccomp(pod) });
      let sandboxId = actions.sandboxId;
      let podIP = state.sandboxes[0]?.ip ?? '';
      if (actions.createSandbox) {
        await mkdir(logDir, { recursive: true, mode: 0o755 });
        try {
          sandboxId = await runtime.runPodSandbox(sandboxConfig);
        } catch (err) {
          recordEvent(pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${errorMessage(err)}`);
          throw err;
        }
        podIP = (await runtime.podSandboxStatus(sandboxId)).ip;
        logger.info({ pod: ref, sandbox: sandboxId, attempt: actions.attempt, podIP: podIP || undefined }, 'created pod sandbox');
      } else {
        // use the sandbox's own config for attempt/metadata consistency
        sandboxConfig.metadata.attempt = state.sandboxes[0]?.metadata.attempt ?? 0;
      }
      if (!sandboxId) return errors;

      for (const start of actions.containersToStart) {
        const c = start.container;
        if (start.previous) backoff.next(backoffKey(uid, c.name), start.previous.finishedAt);
        try {
          const image = await images.ensureImage(backoffKey(uid, c.name), c, sandboxConfig, spec ? () => spec.pullCredentials(pod, c.image!) : undefined, pod);
          await mkdir(join(logDir, c.name), { recursive: true, mode: 0o755 });
          const extra = spec ? await spec.runContainerOptions(pod, c, { podIP: podIP || hostIP, hostIP, image }) : {};
          const config = makeContainerConfig(pod, { ...c, image }, start.restartCount, { podIP: podIP || hostIP, hostIP, ...extra });
          let id: string;
          const fieldPath = containerFieldPath(c.name);
          try {
            id = await runtime.createContainer(sandboxId, config, sandboxConfig);
          } catch (err) {
            throw new ContainerStartError('CreateContainerError', errorMessage(err));
          }
          recordEvent(pod, 'Normal', 'Created', `Created container ${c.name}`, { fieldPath });
          try {
            await runtime.startContainer(id);
          } catch (err) {
            throw new ContainerStartError('RunContainerError', errorMessage(err));
          }
          recordEvent(pod, 'Normal', 'Started', `Started container ${c.name}`, { fieldPath });
          logger.info({ pod: ref, container: c.name, containerId: id, restartCount: start.restartCount, reason: start.reason }, 'started container');
          if (options.hooks && c.lifecycle?.postStart) {
            try {
              await options.hooks.postStart(pod, c, id, podIP || hostIP);
            } catch (err) {
              await stopContainer(ref, id, c.name, grace, 'FailedPostStartHook');
              throw new ContainerStartError('PostStartHookError', errorMessage(err));
            }
          }
        } catch (err) {
          const reason = err instanceof ContainerStartError ? err.reason : 'RunContainerError';
          errors.set(c.name, { reason, message: errorMessage(err) });
          // as kubelet words it: image problems by their reason (the pull Events carry the detail), others by their message
          const detail = IMAGE_REASONS.has(reason) ? reason : errorMessage(err);
          recordEvent(pod, 'Warning', 'Failed', `Error: ${detail}`, { fieldPath: containerFieldPath(c.name) });
        }
      }
      return errors;
    },

    killPod,

    async removePod(ref, state, logDir) {
      for (const c of state.containers) await runtime.removeContainer(c.id);
      for (const s of state.sandboxes) await runtime.removePodSandbox(s.id);
      if (logDir) await rm(logDir, { recursive: true, force: true });
      await options.spec?.cleanupPod(state.uid);
      if (state.sandboxes.length) logger.info({ pod: ref }, 'removed pod sandbox and containers');
    },

    async garbageCollect(state) {
      const removed: string[] = [];
      const keptExited = new Set<string>();
      const newest = new Set<string>();
      for (const c of state.containers) {
        // containers are sorted newest first
        if (!newest.has(c.name)) {
          newest.add(c.name);
          if (c.state === 'exited') keptExited.add(c.name);
          continue;
        }
        if (c.state !== 'exited') continue;
        if (!keptExited.has(c.name)) {
          keptExited.add(c.name);
          continue;
        }
        await runtime.removeContainer(c.id);
        removed.push(c.id);
      }
      const inUse = new Set(state.containers.filter((c) => !removed.includes(c.id)).map((c) => c.podSandboxId));
      for (const s of state.sandboxes.slice(1)) {
        if (s.state === 'notready' && !inUse.has(s.id)) await runtime.removePodSandbox(s.id);
      }
      return removed;
    },
  };
}
