/**
 * What a container needs beyond its spec before it can be created (kubelet's
 * GenerateRunContainerOptions and the volume manager's WaitForAttachAndMount), in one object the
 * runtime manager calls: the pod's volumes set up (and refreshed on every sync), the sandbox DNS
 * and hostname, the resolved environment and $(VAR)-expanded command, the mounts (volumes and the
 * managed /etc/hosts), the runAsNonRoot check, and registry credentials from imagePullSecrets.
 * Problems of one container are a CreateContainerConfigError for that container only.
 */
import { readFile, statfs, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Container, Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Clock } from './clock';
import { podDnsConfig, renderEtcHosts, type ClusterDnsSettings } from './dns';
import type { DownwardContext } from './downward-api';
import { CONFIG_ERROR, expandCommandAndArgs, expandSubPathExprs, makeEnvironmentVariables } from './env';
import { matchCredentials, pullSecretConfigs } from './image-secrets';
import { ContainerStartError } from './images';
import type { PodDataLookup } from './pod-data';
import type { DnsConfig, Mount, PodRuntime, RegistryAuthConfig, SecurityProfile } from './runtime';
import { containerSeccompProfile, sandboxSeccompProfile, seccompProfileProblem, type SeccompSettings } from './seccomp';
import { isHostNetwork, verifyRunAsNonRoot, type ContainerContext } from './runtime-config';
import { terminationMessageMount } from './termination-message';
import { createSystemMounter, createVolumeManager, VolumeError, type Mounter, type VolumeManager } from './volumes';
import { errorMessage } from '../errors';

export interface PodSpecSupportOptions {
  rootDir: string;
  dns: ClusterDnsSettings;
  data: PodDataLookup;
  runtime: PodRuntime;
  logger: Logger;
  clock: Clock;
  /** Default: the real mount(8)/umount(8). */
  mounter?: Mounter;
  /** kubelet's seccompDefault: RuntimeDefault for pods that set no seccomp profile (default false: Unconfined). */
  seccompDefault?: boolean;
  /** For resourceFieldRef of unset limits; default: this host's CPUs, memory and rootDir's file system. */
  nodeAllocatable?: DownwardContext['nodeAllocatable'];
}

export interface PodSpecSupport {
  readonly volumes: VolumeManager;
  /** The sandbox DNS config (dnsPolicy, clusterDNS, dnsConfig). */
  sandboxDns(pod: Pod): DnsConfig | undefined;
  /** The sandbox's seccomp profile (the pod's, else the node default). */
  sandboxSeccomp(pod: Pod): SecurityProfile;
  readonly clusterDomain: string;
  /** Sets up or refreshes the pod's volumes; throws (the pod waits in ContainerCreating). */
  prepareVolumes(pod: Pod, hostIP: string): Promise<void>;
  /** Env, command/args, mounts for one container; throws ContainerStartError(CreateContainerConfigError). */
  runContainerOptions(pod: Pod, c: Container, ips: { podIP: string; hostIP: string; image: string }): Promise<Omit<ContainerContext, 'podIP' | 'hostIP'>>;
  /** Registry credentials for the image from the pod's imagePullSecrets, most specific first. */
  pullCredentials(pod: Pod, image: string): Promise<RegistryAuthConfig[]>;
  /** Unmounts and deletes the pod's volumes and files. */
  cleanupPod(uid: string): Promise<void>;
}

function defaultAllocatable(rootDir: string): Promise<DownwardContext['nodeAllocatable']> {
  return statfs(rootDir)
    .catch(() => undefined)
    .then((fs) => ({ cpuMilli: os.availableParallelism() * 1000, memoryBytes: os.totalmem(), ephemeralStorageBytes: fs ? fs.blocks * fs.bsize : 0 }));
}

export function createPodSpecSupport(options: PodSpecSupportOptions): PodSpecSupport {
  const { data, runtime, logger } = options;
  const volumes = createVolumeManager({ rootDir: options.rootDir, data, mounter: options.mounter ?? createSystemMounter(), clock: options.clock, logger });
  let allocatable: Promise<DownwardContext['nodeAllocatable']> | undefined;
  const nodeAllocatable = () => (allocatable ??= options.nodeAllocatable ? Promise.resolve(options.nodeAllocatable) : defaultAllocatable(options.rootDir));
  const warned = new Set<string>();
  const seccomp: SeccompSettings = { profileRoot: path.join(options.rootDir, 'seccomp'), defaultToRuntimeDefault: options.seccompDefault === true };

  const downward = async (hostIP: string, podIP: string): Promise<DownwardContext> => ({
    podIPs: podIP ? [podIP] : [], hostIPs: hostIP ? [hostIP] : [], nodeAllocatable: await nodeAllocatable(),
  });

  /** kubelet's managed /etc/hosts, for pod-network containers that do not mount their own. */
  async function etcHostsMount(pod: Pod, c: Container, podIP: string, mounts: Mount[]): Promise<Mount[]> {
    if (isHostNetwork(pod) || mounts.some((m) => m.containerPath === '/etc/hosts')) return [];
    const file = path.join(volumes.podDir(pod.metadata!.uid!), 'etc-hosts');
    const text = renderEtcHosts(pod, podIP ? [podIP] : [], options.dns.clusterDomain);
    if ((await readFile(file, 'utf8').catch(() => '')) !== text) {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
      await writeFile(file, text, { mode: 0o644 });
    }
    return [{ containerPath: '/etc/hosts', hostPath: file, readonly: false }];
  }

  return {
    volumes,
    clusterDomain: options.dns.clusterDomain,
    sandboxDns: (pod) => podDnsConfig(pod, options.dns),
    sandboxSeccomp: (pod) => sandboxSeccompProfile(pod, seccomp),

    async prepareVolumes(pod, hostIP) {
      await volumes.setUp(pod, await downward(hostIP, ''));
    },

    async runContainerOptions(pod, c, ips) {
      const fail = (message: string) => new ContainerStartError(CONFIG_ERROR, message);
      const profile = containerSeccompProfile(pod, c, seccomp);
      // a missing Localhost profile: the runtime would refuse the container; say which file, for this container only
      const profileProblem = await seccompProfileProblem(profile);
      if (profileProblem) throw new ContainerStartError('CreateContainerError', profileProblem);
      const nonRoot = c.securityContext?.runAsNonRoot ?? pod.spec?.securityContext?.runAsNonRoot;
      const runAsUser = c.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
      if (nonRoot) {
        const image = runAsUser === undefined ? await runtime.imageStatus(ips.image) : undefined;
        const problem = verifyRunAsNonRoot(pod, c, image);
        if (problem) throw fail(problem);
      }
      const envs = await makeEnvironmentVariables(pod, c, { ...(await downward(ips.hostIP, ips.podIP)), data });
      const { command, args } = expandCommandAndArgs(c, envs);
      let mounts: Mount[];
      const expanded = expandSubPathExprs(c, envs);
      try {
        if (expanded !== c) await volumes.ensureSubPaths(pod, expanded);
        mounts = volumes.mounts(pod, expanded);
      } catch (err) {
        throw fail(err instanceof VolumeError ? err.message : errorMessage(err));
      }
      mounts.push(...(await etcHostsMount(pod, c, ips.podIP, mounts)));
      const termination = await terminationMessageMount(volumes.podDir(pod.metadata!.uid!), c);
      if (termination) mounts.push(termination);
      return { envs, command, args, mounts, seccomp: profile };
    },

    async pullCredentials(pod, image) {
      const ref = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
      const configs = await pullSecretConfigs(pod.metadata!.namespace!, pod.spec?.imagePullSecrets, data, (secret, message) => {
        const key = `${pod.metadata!.uid}/${secret}/${message}`;
        if (warned.has(key)) return;
        warned.add(key);
        logger.warn({ pod: ref, secret, reason: 'FailedToRetrieveImagePullSecret' }, message);
      });
      return matchCredentials(image, configs);
    },

    async cleanupPod(uid) {
      await volumes.tearDown(uid);
      for (const key of warned) if (key.startsWith(`${uid}/`)) warned.delete(key);
    },
  };
}
