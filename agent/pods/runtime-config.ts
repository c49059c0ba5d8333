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
import type { ContainerConfig, DnsConfig, LinuxContainerResources, NamespaceOptions, PodSandboxConfig, Protocol } from './runtime';

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
    hostname: isHostNetwork(pod) ? '' : (spec.hostname ?? name).slice(0, 63).replace(/-+$/, ''),
    logDirectory: podLogDir(ctx.podLogsDir, namespace, name, uid),
    portMappings,
    labels: podLabels(pod),
    annotations: { ...(pod.metadata?.annotations ?? {}) },
    linux: {
      securityContext: {
        namespaceOptions: namespaceOptions(pod),
        privileged: spec.containers.some((c) => c.securityContext?.privileged === true),
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
  const sc = c.securityContext ?? {};
  return {
    metadata: { name: c.name, attempt: restartCount },
    image: c.image!,
    command: c.command ?? [],
    args: c.args ?? [],
    workingDir: c.workingDir ?? '',
    envs: (c.env ?? []).map((e) => ({ key: e.name, value: envValue(pod, e, ctx) })),
    labels: containerLabels(pod, c),
    annotations: {
      [ANNOTATION_CONTAINER_HASH]: containerSpecHash(c),
      [ANNOTATION_RESTART_COUNT]: String(restartCount),
      [ANNOTATION_GRACE_PERIOD]: String(pod.spec!.terminationGracePeriodSeconds ?? 30),
    },
    logPath: containerLogPath(c.name, restartCount),
    linux: {
      resources: containerResources(c),
      securityContext: {
        privileged: sc.privileged === true,
        namespaceOptions: namespaceOptions(pod),
        ...(sc.runAsUser === undefined ? {} : { runAsUser: sc.runAsUser }),
      },
    },
  };
}
