/**
 * TypeScript shapes of the CRI runtime.v1 messages in cri/proto/api.proto, as keelson's codec
 * (cri/codec.ts, loaded by cri/proto.ts) hands them over:
 * - field names are the proto's own snake_case names (keepCase);
 * - 64-bit integers (`int64`, `uint64`) arrive as decimal strings, because nanosecond timestamps
 *   do not fit a JS number exactly; in requests a number or a string is accepted (`Int64In`);
 * - enums are their names as strings (`'CONTAINER_RUNNING'`), in requests and responses;
 * - responses carry every scalar, repeated and map field with its default (`''`, `0`, `[]`, `{}`),
 *   while an unset message field is `null`;
 * - `bytes` are Buffers.
 * Request types mark everything optional that the runtime accepts as unset.
 */

/** A 64-bit integer in a request: a JS number (when it is safe) or a decimal string. */
export type Int64In = number | string;
/** A 64-bit integer in a response: always a decimal string. */
export type Int64 = string;

export type StringMap = Record<string, string>;

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
export type SupplementalGroupsPolicy = 'Merge' | 'Strict';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type ContainerEventType =
  | 'CONTAINER_CREATED_EVENT'
  | 'CONTAINER_STARTED_EVENT'
  | 'CONTAINER_STOPPED_EVENT'
  | 'CONTAINER_DELETED_EVENT';
export type ProfileType = 'RuntimeDefault' | 'Unconfined' | 'Localhost';

// ---- shared ----------------------------------------------------------------------------------

export interface Int64ValueIn {
  value: Int64In;
}
export interface Int64Value {
  value: Int64;
}
export interface UInt64Value {
  value: Int64;
}
export interface KeyValue {
  key: string;
  value: string;
}
export interface IDMapping {
  host_id: number;
  container_id: number;
  length: number;
}
export interface UserNamespace {
  mode?: NamespaceMode;
  uids?: IDMapping[];
  gids?: IDMapping[];
}
export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  target_id?: string;
  userns_options?: UserNamespace | null;
}
export interface SELinuxOption {
  user?: string;
  role?: string;
  type?: string;
  level?: string;
}
export interface SecurityProfile {
  profile_type?: ProfileType;
  localhost_ref?: string;
}
export interface ImageSpec {
  image: string;
  annotations?: StringMap;
  user_specified_image?: string;
  runtime_handler?: string;
}

// ---- version and status ------------------------------------------------------------------------

export interface VersionRequest {
  version?: string;
}
export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}
export interface StatusRequest {
  verbose?: boolean;
}
export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}
export interface StatusResponse {
  status: { conditions: RuntimeCondition[] } | null;
  info: StringMap;
  runtime_handlers: { name: string; features: { recursive_read_only_mounts: boolean; user_namespaces: boolean } | null }[];
  features: { supplemental_groups_policy: boolean } | null;
}
export interface UpdateRuntimeConfigRequest {
  runtime_config: { network_config: { pod_cidr: string } };
}
export type Empty = Record<string, never>;

// ---- pod sandboxes ---------------------------------------------------------------------------

export interface DNSConfig {
  servers?: string[];
  searches?: string[];
  options?: string[];
}
export interface PortMapping {
  protocol?: Protocol;
  container_port?: number;
  host_port?: number;
  host_ip?: string;
}
export interface LinuxSandboxSecurityContext {
  namespace_options?: NamespaceOption;
  selinux_options?: SELinuxOption;
  run_as_user?: Int64ValueIn;
  run_as_group?: Int64ValueIn;
  readonly_rootfs?: boolean;
  supplemental_groups?: Int64In[];
  supplemental_groups_policy?: SupplementalGroupsPolicy;
  privileged?: boolean;
  seccomp?: SecurityProfile;
  apparmor?: SecurityProfile;
}
export interface LinuxPodSandboxConfig {
  cgroup_parent?: string;
  security_context?: LinuxSandboxSecurityContext;
  sysctls?: StringMap;
  overhead?: LinuxContainerResourcesIn;
  resources?: LinuxContainerResourcesIn;
}
export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}
export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  log_directory?: string;
  dns_config?: DNSConfig;
  port_mappings?: PortMapping[];
  labels?: StringMap;
  annotations?: StringMap;
  linux?: LinuxPodSandboxConfig;
}
export interface RunPodSandboxRequest {
  config: PodSandboxConfig;
  runtime_handler?: string;
}
export interface RunPodSandboxResponse {
  pod_sandbox_id: string;
}
export interface PodSandboxIdRequest {
  pod_sandbox_id: string;
}
export interface PodSandboxStatusRequest {
  pod_sandbox_id: string;
  verbose?: boolean;
}
export interface PodSandboxStatus {
  id: string;
  metadata: Required<PodSandboxMetadata> | null;
  state: PodSandboxState;
  created_at: Int64;
  network: { ip: string; additional_ips: { ip: string }[] } | null;
  linux: { namespaces: { options: Required<NamespaceOption> | null } | null } | null;
  labels: StringMap;
  annotations: StringMap;
  runtime_handler: string;
}
export interface PodSandboxStatusResponse {
  status: PodSandboxStatus | null;
  info: StringMap;
  containers_statuses: ContainerStatus[];
  timestamp: Int64;
}
export interface PodSandboxFilter {
  id?: string;
  state?: { state: PodSandboxState };
  label_selector?: StringMap;
}
export interface ListPodSandboxRequest {
  filter?: PodSandboxFilter;
}
export interface PodSandbox {
  id: string;
  metadata: Required<PodSandboxMetadata> | null;
  state: PodSandboxState;
  created_at: Int64;
  labels: StringMap;
  annotations: StringMap;
  runtime_handler: string;
}
export interface ListPodSandboxResponse {
  items: PodSandbox[];
}

// ---- containers ----------------------------------------------------------------------------------

export interface Mount {
  container_path: string;
  host_path?: string;
  readonly?: boolean;
  selinux_relabel?: boolean;
  propagation?: MountPropagation;
  uidMappings?: IDMapping[];
  gidMappings?: IDMapping[];
  recursive_read_only?: boolean;
  image?: ImageSpec | null;
}
export interface Device {
  container_path: string;
  host_path: string;
  permissions: string;
}
export interface HugepageLimit {
  page_size: string;
  limit: Int64In;
}
export interface LinuxContainerResourcesIn {
  cpu_period?: Int64In;
  cpu_quota?: Int64In;
  cpu_shares?: Int64In;
  memory_limit_in_bytes?: Int64In;
  oom_score_adj?: Int64In;
  cpuset_cpus?: string;
  cpuset_mems?: string;
  hugepage_limits?: HugepageLimit[];
  unified?: StringMap;
  memory_swap_limit_in_bytes?: Int64In;
}
export interface LinuxContainerResources {
  cpu_period: Int64;
  cpu_quota: Int64;
  cpu_shares: Int64;
  memory_limit_in_bytes: Int64;
  oom_score_adj: Int64;
  cpuset_cpus: string;
  cpuset_mems: string;
  hugepage_limits: { page_size: string; limit: Int64 }[];
  unified: StringMap;
  memory_swap_limit_in_bytes: Int64;
}
export interface Capability {
  add_capabilities?: string[];
  drop_capabilities?: string[];
  add_ambient_capabilities?: string[];
}
export interface LinuxContainerSecurityContext {
  capabilities?: Capability;
  privileged?: boolean;
  namespace_options?: NamespaceOption;
  selinux_options?: SELinuxOption;
  run_as_user?: Int64ValueIn;
  run_as_group?: Int64ValueIn;
  run_as_username?: string;
  readonly_rootfs?: boolean;
  supplemental_groups?: Int64In[];
  supplemental_groups_policy?: SupplementalGroupsPolicy;
  no_new_privs?: boolean;
  masked_paths?: string[];
  readonly_paths?: string[];
  seccomp?: SecurityProfile;
  apparmor?: SecurityProfile;
}
export interface LinuxContainerConfig {
  resources?: LinuxContainerResourcesIn;
  security_context?: LinuxContainerSecurityContext;
}
export interface ContainerMetadata {
  name: string;
  attempt?: number;
}
export interface ContainerConfig {
  metadata: ContainerMetadata;
  image: ImageSpec;
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: KeyValue[];
  mounts?: Mount[];
  devices?: Device[];
  labels?: StringMap;
  annotations?: StringMap;
  /** Relative to the sandbox's log_directory, e.g. `<container>/<restartCount>.log`. */
  log_path?: string;
  stdin?: boolean;
  stdin_once?: boolean;
  tty?: boolean;
  linux?: LinuxContainerConfig;
  CDI_devices?: { name: string }[];
}
export interface CreateContainerRequest {
  pod_sandbox_id: string;
  config: ContainerConfig;
  sandbox_config: PodSandboxConfig;
}
export interface CreateContainerResponse {
  container_id: string;
}
export interface ContainerIdRequest {
  container_id: string;
}
export interface StopContainerRequest {
  container_id: string;
  /** Grace period in seconds before the runtime kills the container. */
  timeout?: Int64In;
}
export interface ContainerFilter {
  id?: string;
  state?: { state: ContainerState };
  pod_sandbox_id?: string;
  label_selector?: StringMap;
}
export interface ListContainersRequest {
  filter?: ContainerFilter;
}
export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: Required<ContainerMetadata> | null;
  image: Required<ImageSpec> | null;
  image_ref: string;
  state: ContainerState;
  created_at: Int64;
  labels: StringMap;
  annotations: StringMap;
  image_id: string;
}
export interface ListContainersResponse {
  containers: Container[];
}
export interface ContainerStatusRequest {
  container_id: string;
  verbose?: boolean;
}
export interface ContainerStatus {
  id: string;
  metadata: Required<ContainerMetadata> | null;
  state: ContainerState;
  created_at: Int64;
  started_at: Int64;
  finished_at: Int64;
  exit_code: number;
  image: Required<ImageSpec> | null;
  image_ref: string;
  reason: string;
  message: string;
  labels: StringMap;
  annotations: StringMap;
  mounts: Mount[];
  log_path: string;
  resources: { linux: LinuxContainerResources | null } | null;
  image_id: string;
  user: { linux: { uid: Int64; gid: Int64; supplemental_groups: Int64[] } | null } | null;
  image_source: string;
}
export interface ContainerStatusResponse {
  status: ContainerStatus | null;
  info: StringMap;
}
export interface UpdateContainerResourcesRequest {
  container_id: string;
  linux?: LinuxContainerResourcesIn;
  annotations?: StringMap;
}

// ---- exec, attach, port-forward -------------------------------------------------------------

export interface ExecSyncRequest {
  container_id: string;
  cmd: string[];
  /** Seconds; 0 or unset means no limit on the runtime side (the client still has a deadline). */
  timeout?: Int64In;
}
export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exit_code: number;
}
export interface ExecRequest {
  container_id: string;
  cmd: string[];
  tty?: boolean;
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}
export interface AttachRequest {
  container_id: string;
  stdin?: boolean;
  tty?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}
export interface PortForwardRequest {
  pod_sandbox_id: string;
  port?: number[];
}
export interface UrlResponse {
  url: string;
}

// ---- stats -------------------------------------------------------------------------------------

export interface FilesystemUsage {
  timestamp: Int64;
  fs_id: { mountpoint: string } | null;
  used_bytes: UInt64Value | null;
  inodes_used: UInt64Value | null;
}
export interface CpuUsage {
  timestamp: Int64;
  usage_core_nano_seconds: UInt64Value | null;
  usage_nano_cores: UInt64Value | null;
}
export interface MemoryUsage {
  timestamp: Int64;
  working_set_bytes: UInt64Value | null;
  available_bytes: UInt64Value | null;
  usage_bytes: UInt64Value | null;
  rss_bytes: UInt64Value | null;
  page_faults: UInt64Value | null;
  major_page_faults: UInt64Value | null;
}
export interface ContainerStats {
  attributes: { id: string; metadata: Required<ContainerMetadata> | null; labels: StringMap; annotations: StringMap } | null;
  cpu: CpuUsage | null;
  memory: MemoryUsage | null;
  writable_layer: FilesystemUsage | null;
  swap: { timestamp: Int64; swap_available_bytes: UInt64Value | null; swap_usage_bytes: UInt64Value | null } | null;
}
export interface ContainerStatsResponse {
  stats: ContainerStats | null;
}
export interface ListContainerStatsRequest {
  filter?: { id?: string; pod_sandbox_id?: string; label_selector?: StringMap };
}
export interface ListContainerStatsResponse {
  stats: ContainerStats[];
}
export interface NetworkInterfaceUsage {
  name: string;
  rx_bytes: UInt64Value | null;
  rx_errors: UInt64Value | null;
  tx_bytes: UInt64Value | null;
  tx_errors: UInt64Value | null;
}
export interface PodSandboxStats {
  attributes: { id: string; metadata: Required<PodSandboxMetadata> | null; labels: StringMap; annotations: StringMap } | null;
  linux: {
    cpu: CpuUsage | null;
    memory: MemoryUsage | null;
    network: { timestamp: Int64; default_interface: NetworkInterfaceUsage | null; interfaces: NetworkInterfaceUsage[] } | null;
    process: { timestamp: Int64; process_count: UInt64Value | null } | null;
    containers: ContainerStats[];
  } | null;
}
export interface PodSandboxStatsResponse {
  stats: PodSandboxStats | null;
}
export interface ListPodSandboxStatsRequest {
  filter?: { id?: string; label_selector?: StringMap };
}
export interface ListPodSandboxStatsResponse {
  stats: PodSandboxStats[];
}

// ---- events --------------------------------------------------------------------------------------

export interface ContainerEvent {
  container_id: string;
  container_event_type: ContainerEventType;
  created_at: Int64;
  pod_sandbox_status: PodSandboxStatus | null;
  containers_statuses: ContainerStatus[];
}

// ---- images ------------------------------------------------------------------------------------

export interface Image {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: Int64;
  uid: Int64Value | null;
  username: string;
  spec: Required<ImageSpec> | null;
  pinned: boolean;
  image_source: string;
}
export interface ListImagesRequest {
  filter?: { image?: ImageSpec };
}
export interface ListImagesResponse {
  images: Image[];
}
export interface ImageStatusRequest {
  image: ImageSpec;
  verbose?: boolean;
}
export interface ImageStatusResponse {
  /** null when the runtime does not have the image. */
  image: Image | null;
  info: StringMap;
}
export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  server_address?: string;
  identity_token?: string;
  registry_token?: string;
}
export interface PullImageRequest {
  image: ImageSpec;
  auth?: AuthConfig;
  sandbox_config?: PodSandboxConfig;
}
export interface PullImageResponse {
  image_ref: string;
}
export interface RemoveImageRequest {
  image: ImageSpec;
}
export interface ImageFsInfoResponse {
  image_filesystems: FilesystemUsage[];
  container_filesystems: FilesystemUsage[];
}
