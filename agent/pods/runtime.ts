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
    securityContext: { namespaceOptions: NamespaceOptions; privileged: boolean; seccomp?: SecurityProfile };
  };
}

/** A seccomp profile (CRI SecurityProfile); localhostRef is the profile file's absolute path. */
export interface SecurityProfile {
  type: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostRef?: string;
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
    securityContext: { privileged: boolean; runAsUser?: number; namespaceOptions: NamespaceOptions } & ContainerSecurityExtras;
  };
  /** Volumes, /etc/hosts (agent/pods/volumes). */
  mounts?: Mount[];
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
  /** The container's mounts as the runtime reports them (the termination message file is one). */
  mounts?: Mount[];
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

// ---- health and lifecycle (probes, hooks, GC, PLEG events, CNI) ----

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

export interface RuntimeImage extends ImageInfo {
  /** Bytes on disk as the runtime reports them. */
  size: number;
  /** The runtime never garbage-collects it (e.g. the sandbox image on containerd ≥ 1.7). */
  pinned: boolean;
}

export interface RuntimeStatus {
  conditions: { type: string; status: boolean; reason: string; message: string }[];
  /** The sandbox (pause) image the runtime uses, when it tells (containerd's verbose info). */
  sandboxImage?: string;
  /** The CNI config folder and plugin folder the runtime uses, when it tells (containerd's verbose info). */
  cniConfDir?: string;
  cniBinDir?: string;
}

export type ContainerEventKind = 'created' | 'started' | 'stopped' | 'deleted';

export interface RuntimeContainerEvent {
  containerId: string;
  kind: ContainerEventKind;
}

/** Optional runtime calls used by probes, hooks, GC, the PLEG and the CNI bootstrap. */
export interface PodRuntime {
  /** Runs cmd in the container; rejects when the timeout (seconds, 0 = none) passes. */
  execSync?(id: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult>;
  status?(): Promise<RuntimeStatus>;
  listImages?(): Promise<RuntimeImage[]>;
  removeImage?(image: string): Promise<void>;
  /** Mount point of the image filesystem, when the runtime reports one. */
  imageFsMountpoint?(): Promise<string | undefined>;
  /**
   * Subscribes to the runtime's container events. onError is called once when the stream ends
   * (`unimplemented: true` when the runtime has no events, e.g. containerd 1.6). Returns a cancel.
   */
  containerEvents?(onEvent: (event: RuntimeContainerEvent) => void, onError: (err: Error & { unimplemented?: boolean }) => void): () => void;
}

// ---- pod spec features (security context, mounts, registry auth, image user) ----

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  /** Default private. */
  propagation?: 'private' | 'hostToContainer' | 'bidirectional';
}

/** The rest of the container security context (runAsGroup, capabilities, read-only root…). */
export interface ContainerSecurityExtras {
  runAsGroup?: number;
  supplementalGroups?: number[];
  readonlyRootfs?: boolean;
  /** Names without the CAP_ prefix as in the API (`NET_ADMIN`, `ALL`). */
  capabilities?: { add: string[]; drop: string[] };
  noNewPrivs?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  seccomp?: SecurityProfile;
}

/** Credentials for one registry (CRI AuthConfig). */
export interface RegistryAuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface ImageInfo {
  /** The image's numeric user, when its config names one. */
  uid?: number;
  /** The image's user name, when its config names a non-numeric user. */
  username?: string;
}

export interface PodRuntime {
  /** pullImage with registry credentials (CRI PullImageRequest.auth). */
  pullImageWithAuth?(image: string, auth: RegistryAuthConfig, sandboxConfig?: PodSandboxConfig): Promise<string>;
}
