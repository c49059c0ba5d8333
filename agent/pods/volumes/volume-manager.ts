/**
 * A pod's volumes on the node (kubelet's volume manager, for the volume types keelson supports):
 * set up before the pod's containers are created and again on every sync, so ConfigMap, Secret,
 * downward API and token changes reach running containers through the atomic `..data` swap; turned
 * into CRI mounts per container; unmounted and deleted when the pod is removed.
 *
 *   <rootDir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>     disk, or tmpfs for medium: Memory
 *   <rootDir>/pods/<uid>/volumes/kubernetes.io~configmap/<name>     disk
 *   <rootDir>/pods/<uid>/volumes/kubernetes.io~secret/<name>        tmpfs
 *   <rootDir>/pods/<uid>/volumes/kubernetes.io~downward-api/<name>  disk
 *   <rootDir>/pods/<uid>/volumes/kubernetes.io~projected/<name>     tmpfs
 *   hostPath volumes are the node's path itself.
 * With the pod's `securityContext.fsGroup`, every volume but hostPath is group-owned by it (see
 * volume-ownership.ts): API volumes at every content change, emptyDir when this process first sets
 * it up (`fsGroupChangePolicy: OnRootMismatch` skips the walk when the root is already right).
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Container, Pod, Volume } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { writeAtomic, type Payload } from './atomic-writer';
import { configMapValues, keyedPayload } from './configmap';
import { downwardApiPayload } from './downward-api';
import { VolumeError } from './errors';
import { HOST_PATH_TYPES, setUpHostPath } from './host-path';
import type { Mounter } from './mounter';
import { projectedPayload } from './projected';
import { secretValues } from './secret';
import { setVolumeOwnership } from './volume-ownership';
import { createTokenManager, type TokenManager } from './service-account-token';
import type { Clock } from '../clock';
import type { DownwardContext } from '../downward-api';
import type { PodDataLookup } from '../pod-data';
import { bytes } from '../quantity';
import type { Mount } from '../runtime';
import { errorMessage } from '../../errors';

export const SUPPORTED_VOLUME_TYPES = ['emptyDir', 'hostPath', 'configMap', 'secret', 'downwardAPI', 'projected'];

const PLUGIN_DIR: Record<string, string> = {
  emptyDir: 'kubernetes.io~empty-dir',
  configMap: 'kubernetes.io~configmap',
  secret: 'kubernetes.io~secret',
  downwardAPI: 'kubernetes.io~downward-api',
  projected: 'kubernetes.io~projected',
};

/** API volumes (their content comes from the API) are always mounted read-only, as kubelet does. */
const API_VOLUMES = new Set(['configMap', 'secret', 'downwardAPI', 'projected']);

export function volumeType(v: Volume): string | undefined {
  const fields = v as unknown as Record<string, unknown>;
  return SUPPORTED_VOLUME_TYPES.find((t) => fields[t] !== undefined && fields[t] !== null);
}

export interface VolumeManagerOptions {
  rootDir: string;
  data: PodDataLookup;
  mounter: Mounter;
  clock: Clock;
  logger: Logger;
}

export interface VolumeManager {
  /** Sets up (or refreshes) every volume of the pod; throws a VolumeError naming the volume. */
  setUp(pod: Pod, downward: DownwardContext): Promise<void>;
  /** Creates the missing subPath folders of the container's emptyDir and hostPath mounts (subPathExpr already expanded). */
  ensureSubPaths(pod: Pod, container: Container): Promise<void>;
  /** The CRI mounts of one container; throws a VolumeError for a bad volumeMount. */
  mounts(pod: Pod, container: Container): Mount[];
  /** `<rootDir>/pods/<uid>`: the pod's own folder (volumes, etc-hosts). */
  podDir(uid: string): string;
  /** Unmounts and deletes everything of the pod under rootDir. */
  tearDown(uid: string): Promise<void>;
  /** When a token of the pod should be refreshed next (ms since epoch). */
  nextRefresh(uid: string): number | undefined;
}

export function createVolumeManager(options: VolumeManagerOptions): VolumeManager {
  const { rootDir, data, mounter, logger } = options;
  const tokens: TokenManager = createTokenManager(data, options.clock);
  /** uid → volumes set up once already (a later change is logged as an update). */
  const ready = new Map<string, Set<string>>();
  const podDir = (uid: string) => path.join(rootDir, 'pods', uid);

  function volumePath(uid: string, v: Volume): string {
    const type = volumeType(v);
    if (type === 'hostPath') return v.hostPath!.path;
    return path.join(podDir(uid), 'volumes', PLUGIN_DIR[type!], v.name);
  }

  async function payloadOf(pod: Pod, v: Volume, downward: DownwardContext): Promise<Payload> {
    const ns = pod.metadata!.namespace!;
    if (v.configMap) return keyedPayload(configMapValues(await data.getConfigMap(ns, v.configMap.name ?? '')), v.configMap, v.configMap.defaultMode, 'configmap');
    if (v.secret) {
      const source = { ...v.secret, name: v.secret.secretName };
      return keyedPayload(secretValues(await data.getSecret(ns, v.secret.secretName ?? '')), source, v.secret.defaultMode, 'secret');
    }
    if (v.downwardAPI) return downwardApiPayload(pod, v.downwardAPI.items ?? [], v.downwardAPI.defaultMode, downward);
    return projectedPayload(pod, v.projected!, { data, tokens, downward, fsGroup: pod.spec?.securityContext?.fsGroup });
  }

  async function setUpVolume(pod: Pod, v: Volume, downward: DownwardContext, first: boolean): Promise<boolean> {
    const uid = pod.metadata!.uid!;
    const fsGroup = pod.spec?.securityContext?.fsGroup ?? undefined;
    const type = volumeType(v);
    if (!type) throw new VolumeError('volume type is not supported');
    if (type === 'hostPath') {
      await setUpHostPath(v.hostPath!);
      return false;
    }
    const dir = volumePath(uid, v);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    if (type === 'emptyDir') {
      if (v.emptyDir!.medium === 'Memory') {
        const size = v.emptyDir!.sizeLimit === undefined ? 0 : (bytes(v.emptyDir!.sizeLimit) ?? 0);
        await mounter.mountTmpfs(dir, size);
      }
      // scratch space every container user may write to, as kubelet makes it (setgid once fsGroup owns it)
      await chmod(dir, fsGroup === undefined ? 0o777 : 0o2777);
      if (fsGroup !== undefined && first) {
        const walked = await setVolumeOwnership(dir, { fsGroup, readOnly: false }, pod.spec?.securityContext?.fsGroupChangePolicy);
        if (!walked) logger.debug({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, volume: v.name }, 'volume ownership already right (OnRootMismatch)');
      }
      return false;
    }
    // secrets and projected tokens never touch the disk
    if (type === 'secret' || type === 'projected') await mounter.mountTmpfs(dir, 0);
    return writeAtomic(dir, await payloadOf(pod, v, downward), new Date(options.clock.now()), fsGroup);
  }

  /** Creates missing subPath folders of writable volumes (emptyDir, hostPath), as kubelet does. */
  async function ensureSubPaths(pod: Pod, container: Container): Promise<void> {
    const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const m of container.volumeMounts ?? []) {
      const v = volumes.get(m.name);
      if (!m.subPath || !v || (volumeType(v) !== 'emptyDir' && volumeType(v) !== 'hostPath')) continue;
      if (path.isAbsolute(m.subPath) || m.subPath.split('/').includes('..')) continue; // reported by mounts()
      await mkdir(path.join(volumePath(pod.metadata!.uid!, v), m.subPath), { recursive: true, mode: 0o755 });
    }
  }

  return {
    async setUp(pod, downward) {
      const uid = pod.metadata!.uid!;
      const ref = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
      const done = ready.get(uid) ?? new Set<string>();
      ready.set(uid, done);
      for (const v of pod.spec?.volumes ?? []) {
        let changed: boolean;
        try {
          changed = await setUpVolume(pod, v, downward, !done.has(v.name));
        } catch (err) {
          throw new VolumeError(`MountVolume.SetUp failed for volume "${v.name}" : ${errorMessage(err)}`);
        }
        if (!done.has(v.name)) {
          done.add(v.name);
          logger.debug({ pod: ref, volume: v.name, type: volumeType(v) }, 'volume set up');
        } else if (changed) {
          logger.info({ pod: ref, volume: v.name, type: volumeType(v) }, 'volume content updated');
        }
      }
      // subPaths (subPathExpr ones are made per container once expanded: ensureSubPaths)
      for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) await ensureSubPaths(pod, c);
    },

    ensureSubPaths,

    mounts(pod, container) {
      const uid = pod.metadata!.uid!;
      const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
      return (container.volumeMounts ?? []).map((m) => {
        const v = volumes.get(m.name);
        if (!v) throw new VolumeError(`volumeMount ${JSON.stringify(m.name)}: no volume of that name in the pod`);
        let hostPath = volumePath(uid, v);
        if (m.subPath) {
          if (path.isAbsolute(m.subPath) || m.subPath.split('/').includes('..')) throw new VolumeError(`volumeMount ${m.name}: invalid subPath ${JSON.stringify(m.subPath)}`);
          hostPath = path.join(hostPath, m.subPath);
        }
        const mount: Mount = {
          containerPath: m.mountPath,
          hostPath,
          readonly: m.readOnly === true || API_VOLUMES.has(volumeType(v)!),
        };
        if (m.mountPropagation === 'HostToContainer') mount.propagation = 'hostToContainer';
        else if (m.mountPropagation === 'Bidirectional') mount.propagation = 'bidirectional';
        return mount;
      });
    },

    podDir,

    async tearDown(uid) {
      const dir = podDir(uid);
      await mounter.unmountUnder(dir);
      await rm(dir, { recursive: true, force: true });
      tokens.forgetPod(uid);
      ready.delete(uid);
    },

    nextRefresh: (uid) => tokens.nextRefresh(uid),
  };
}

export { HOST_PATH_TYPES };
