/**
 * The part of the CRI runtime that agent/pods uses, in keelson's own terms: camelCase fields,
 * times in Unix milliseconds, enums as strings. cri-runtime.ts adapts the real CRI client to it;
 * fake-runtime.ts is an in-memory stand-in for unit tests.
 */
export type SandboxState = 'ready' | 'notready';
export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';
export type NamespaceMode = 'pod' | 'container' | 'node';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface SandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface PortMapping {
  protocol: Protocol;
  containerPort: number;
  hostPort: number;
  hostIp: string;
}

export interface DnsConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface NamespaceOptions {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
}

export interface PodSandboxConfig {
  metadata: SandboxMetadata;
  hostname: string;
  logDirectory: string;
  dnsConfig?: DnsConfig;
  portMappings: PortMapping[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  linux: {
    securityContext: { namespaceOptions: NamespaceOptions; privileged: boolean };
  };
}

export interface PodSandbox {
  id: string;
  metadata: SandboxMetadata;
  state: SandboxState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodSandboxStatus extends PodSandbox {
  /** Primary pod IP ('' for host-network sandboxes or when the runtime reports none). */
  ip: string;
}

export interface LinuxContainerResources {
  cpuShares: number;
  cpuQuota: number;
  cpuPeriod: number;
  memoryLimitInBytes: number;
}

export interface ContainerConfig {
  metadata: { name: string; attempt: number };
  image: string;
  command: string[];
  args: string[];
  workingDir: string;
  envs: { key: string; value: string }[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Relative to the sandbox's logDirectory. */
  logPath: string;
  linux: {
    resources: LinuxContainerResources;
    securityContext: { privileged: boolean; runAsUser?: number; namespaceOptions: NamespaceOptions };
  };
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number };
  image: string;
  imageRef: string;
  state: ContainerState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface ContainerStatus extends Container {
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  reason: string;
  message: string;
  logPath: string;
}

export interface ImageInfo {
  id: string;
  repoTags: string[];
}

export interface RuntimeFilter {
  labels?: Record<string, string>;
}

export interface PodRuntime {
  version(): Promise<{ runtimeName: string; runtimeVersion: string }>;
  runPodSandbox(config: PodSandboxConfig): Promise<string>;
  stopPodSandbox(id: string): Promise<void>;
  removePodSandbox(id: string): Promise<void>;
  podSandboxStatus(id: string): Promise<PodSandboxStatus>;
  listPodSandboxes(filter?: RuntimeFilter): Promise<PodSandbox[]>;
  createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Sends SIGTERM, then SIGKILL after timeoutSeconds; resolves when the container has exited. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  listContainers(filter?: RuntimeFilter): Promise<Container[]>;
  containerStatus(id: string): Promise<ContainerStatus>;
  /** undefined when the image is not present. */
  imageStatus(image: string): Promise<ImageInfo | undefined>;
  /** Returns the image reference the runtime resolved. */
  pullImage(image: string, sandboxConfig?: PodSandboxConfig): Promise<string>;
}
