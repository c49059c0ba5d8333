/**
 * Pod spec → CRI configs (kubelet's generatePodSandboxConfig / generateContainerConfig): sandbox
 * metadata, hostname, DNS, port mappings, namespaces and log folder; per container the image,
 * command, env, working dir, cgroup resources, security context, log path and the labels and
 * annotations that let a restarted keelson recognise the container.
 */
import type { Container as ApiContainer, EnvVar, Pod } from 'kubernetes-types/core/v1';
import {
  ANNOTATION_CONTAINER_HASH, ANNOTATION_GRACE_PERIOD, ANNOTATION_RESTART_COUNT, containerLabels, containerSpecHash, podLabels,
} from './labels';
import { containerLogPath, podLogDir } from './log-paths';
import { bytes, milliCpu } from './quantity';
import { podHostnameAndDomain } from './dns';
import { terminationMessageAnnotations } from './termination-message';
import type { ContainerConfig, DnsConfig, LinuxContainerResources, Mount, NamespaceOptions, PodSandboxConfig, Protocol, SecurityProfile } from './runtime';

export const CPU_PERIOD_US = 100_000;
const MIN_SHARES = 2;

export function isHostNetwork(pod: Pod): boolean {
  return pod.spec?.hostNetwork === true;
}

function namespaceOptions(pod: Pod): NamespaceOptions {
  return { network: isHostNetwork(pod) ? 'node' : 'pod', pid: 'container', ipc: 'pod' };
}

export interface SandboxContext {
  podLogsDir: string;
  /** DNS for pods that do not use the host network; undefined leaves the runtime's default. */
  dnsConfig?: DnsConfig;
  /** For spec.subdomain and setHostnameAsFQDN. */
  clusterDomain?: string;
  /** The sandbox's seccomp profile (seccomp.ts); unset leaves the runtime's choice. */
  seccomp?: SecurityProfile;
}

/** The sandbox hostname: '' on the host network, else spec.hostname or the pod name (the FQDN with setHostnameAsFQDN). */
export function sandboxHostname(pod: Pod, clusterDomain = ''): string {
  if (isHostNetwork(pod)) return '';
  const { hostname, domain } = podHostnameAndDomain(pod, clusterDomain);
  return pod.spec?.setHostnameAsFQDN && domain ? `${hostname}.${domain}`.slice(0, 64) : hostname;
}

export function makeSandboxConfig(pod: Pod, attempt: number, ctx: SandboxContext): PodSandboxConfig {
  const { name, namespace, uid } = pod.metadata as { name: string; namespace: string; uid: string };
  const spec = pod.spec!;
  const portMappings = spec.containers.flatMap((c) =>
    (c.ports ?? [])
      .filter((p) => (p.hostPort ?? 0) > 0)
      .map((p) => ({ protocol: (p.protocol ?? 'TCP') as Protocol, containerPort: p.containerPort, hostPort: p.hostPort!, hostIp: p.hostIP ?? '' })),
  );
  const config: PodSandboxConfig = {
    metadata: { name, namespace, uid, attempt },
    hostname: sandboxHostname(pod, ctx.clusterDomain),
    logDirectory: podLogDir(ctx.podLogsDir, namespace, name, uid),
    portMappings,
    labels: podLabels(pod),
    annotations: { ...(pod.metadata?.annotations ?? {}) },
    linux: {
      securityContext: {
        namespaceOptions: namespaceOptions(pod),
        privileged: spec.containers.some((c) => c.securityContext?.privileged === true),
        ...(ctx.seccomp ? { seccomp: ctx.seccomp } : {}),
      },
    },
  };
  if (ctx.dnsConfig) config.dnsConfig = ctx.dnsConfig;
  return config;
}

export function containerResources(c: ApiContainer): LinuxContainerResources {
  const limits = c.resources?.limits ?? {};
  const requests = c.resources?.requests ?? {};
  const cpuLimit = limits.cpu === undefined ? 0 : (milliCpu(limits.cpu) ?? 0);
  const cpuRequest = requests.cpu === undefined ? cpuLimit : (milliCpu(requests.cpu) ?? 0);
  return {
    cpuShares: Math.max(MIN_SHARES, Math.floor((cpuRequest * 1024) / 1000)),
    cpuQuota: cpuLimit > 0 ? Math.floor((cpuLimit * CPU_PERIOD_US) / 1000) : 0,
    cpuPeriod: CPU_PERIOD_US,
    memoryLimitInBytes: limits.memory === undefined ? 0 : (bytes(limits.memory) ?? 0),
  };
}

export interface ContainerContext {
  podIP: string;
  hostIP: string;
  /** The resolved environment (env.ts); without it only literal values and simple fieldRefs are used. */
  envs?: { key: string; value: string }[];
  /** command and args after $(VAR) expansion. */
  command?: string[];
  args?: string[];
  mounts?: Mount[];
  /** The container's seccomp profile (seccomp.ts); unset leaves the runtime's choice. */
  seccomp?: SecurityProfile;
}

/** What the runtime masks and makes read-only in /proc and /sys unless privileged (procMount Default). */
export const DEFAULT_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Container securityContext over the pod's (container fields win), as the runtime gets it. */
export function effectiveSecurityContext(pod: Pod, c: ApiContainer): ContainerConfig['linux']['securityContext'] {
  const podSc = pod.spec?.securityContext ?? {};
  const sc = c.securityContext ?? {};
  const privileged = sc.privileged === true;
  const runAsUser = sc.runAsUser ?? podSc.runAsUser;
  const runAsGroup = sc.runAsGroup ?? podSc.runAsGroup;
  const groups = [...(podSc.supplementalGroups ?? []), ...(podSc.fsGroup === undefined ? [] : [podSc.fsGroup])];
  const out: ContainerConfig['linux']['securityContext'] = { privileged, namespaceOptions: namespaceOptions(pod) };
  if (runAsUser !== undefined) out.runAsUser = runAsUser;
  if (runAsGroup !== undefined) out.runAsGroup = runAsGroup;
  if (groups.length) out.supplementalGroups = [...new Set(groups)];
  if (sc.readOnlyRootFilesystem) out.readonlyRootfs = true;
  if (sc.capabilities) out.capabilities = { add: sc.capabilities.add ?? [], drop: sc.capabilities.drop ?? [] };
  // allowPrivilegeEscalation: false sets no_new_privs; privileged containers may always escalate
  if (!privileged && sc.allowPrivilegeEscalation === false) out.noNewPrivs = true;
  if (!privileged && sc.procMount !== 'Unmasked') {
    out.maskedPaths = DEFAULT_MASKED_PATHS;
    out.readonlyPaths = DEFAULT_READONLY_PATHS;
  }
  return out;
}

/** runAsNonRoot (container or pod) against the user the container will run as; the message is kubelet's. */
export function verifyRunAsNonRoot(pod: Pod, c: ApiContainer, image: { uid?: number; username?: string } | undefined): string | undefined {
  const nonRoot = c.securityContext?.runAsNonRoot ?? pod.spec?.securityContext?.runAsNonRoot;
  if (!nonRoot) return undefined;
  const who = `(pod: "${pod.metadata!.name}_${pod.metadata!.namespace}(${pod.metadata!.uid})", container: ${c.name})`;
  const runAsUser = c.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
  if (runAsUser !== undefined) return runAsUser === 0 ? `container's runAsUser breaks non-root policy ${who}` : undefined;
  if (image?.uid !== undefined) return image.uid === 0 ? `container has runAsNonRoot and image will run as root ${who}` : undefined;
  if (image?.username) return `container has runAsNonRoot and image has non-numeric user (${image.username}), cannot verify user is non-root ${who}`;
  return `container has runAsNonRoot and image will run as root ${who}`;
}

function envValue(pod: Pod, e: EnvVar, ctx: ContainerContext): string {
  const path = e.valueFrom?.fieldRef?.fieldPath;
  if (!path) return e.value ?? '';
  switch (path) {
    case 'metadata.name': return pod.metadata!.name!;
    case 'metadata.namespace': return pod.metadata!.namespace!;
    case 'metadata.uid': return pod.metadata!.uid!;
    case 'spec.nodeName': return pod.spec!.nodeName ?? '';
    case 'spec.serviceAccountName': return pod.spec!.serviceAccountName ?? '';
    case 'status.podIP': return ctx.podIP;
    case 'status.hostIP': return ctx.hostIP;
    default: return '';
  }
}

export function makeContainerConfig(pod: Pod, c: ApiContainer, restartCount: number, ctx: ContainerContext): ContainerConfig {
  return {
    metadata: { name: c.name, attempt: restartCount },
    image: c.image!,
    command: ctx.command ?? c.command ?? [],
    args: ctx.args ?? c.args ?? [],
    workingDir: c.workingDir ?? '',
    envs: ctx.envs ?? (c.env ?? []).map((e) => ({ key: e.name, value: envValue(pod, e, ctx) })),
    labels: containerLabels(pod, c),
    annotations: {
      [ANNOTATION_CONTAINER_HASH]: containerSpecHash(c),
      [ANNOTATION_RESTART_COUNT]: String(restartCount),
      [ANNOTATION_GRACE_PERIOD]: String(pod.spec!.terminationGracePeriodSeconds ?? 30),
      ...terminationMessageAnnotations(c),
    },
    logPath: containerLogPath(c.name, restartCount),
    linux: {
      resources: containerResources(c),
      securityContext: { ...effectiveSecurityContext(pod, c), ...(ctx.seccomp ? { seccomp: ctx.seccomp } : {}) },
    },
    ...(ctx.mounts ? { mounts: ctx.mounts } : {}),
  };
}
