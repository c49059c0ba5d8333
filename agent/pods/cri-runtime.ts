/** Adapts the CRI client (cri/client.ts: snake_case, int64 strings, enum names) to runtime.ts. */
import type { CriClient } from '../../cri/client';
import { isUnimplemented } from '../../cri/errors';
import type * as T from '../../cri/types';
import type {
  Container, ContainerConfig, ContainerEventKind, ContainerSecurityExtras, ContainerState, ContainerStatus, Mount, NamespaceMode, NamespaceOptions,
  PodRuntime, PodSandbox, PodSandboxConfig, RuntimeFilter, SandboxState, SecurityProfile,
} from './runtime';

const EVENT_KIND: Record<T.ContainerEventType, ContainerEventKind> = {
  CONTAINER_CREATED_EVENT: 'created', CONTAINER_STARTED_EVENT: 'started', CONTAINER_STOPPED_EVENT: 'stopped', CONTAINER_DELETED_EVENT: 'deleted',
};

const nsToMs = (ns: string | number | undefined): number => (ns ? Math.floor(Number(ns) / 1e6) : 0);

const NS_MODE: Record<NamespaceMode, T.NamespaceMode> = { pod: 'POD', container: 'CONTAINER', node: 'NODE' };

function namespaceOptions(o: NamespaceOptions): T.NamespaceOption {
  return { network: NS_MODE[o.network], pid: NS_MODE[o.pid], ipc: NS_MODE[o.ipc] };
}

function sandboxConfig(c: PodSandboxConfig): T.PodSandboxConfig {
  return {
    metadata: c.metadata,
    hostname: c.hostname,
    log_directory: c.logDirectory,
    dns_config: c.dnsConfig,
    port_mappings: c.portMappings.map((p) => ({ protocol: p.protocol, container_port: p.containerPort, host_port: p.hostPort, host_ip: p.hostIp })),
    labels: c.labels,
    annotations: c.annotations,
    linux: {
      security_context: {
        namespace_options: namespaceOptions(c.linux.securityContext.namespaceOptions),
        privileged: c.linux.securityContext.privileged,
        ...(c.linux.securityContext.seccomp ? { seccomp: securityProfile(c.linux.securityContext.seccomp) } : {}),
      },
    },
  };
}

function containerConfig(c: ContainerConfig): T.ContainerConfig {
  const r = c.linux.resources;
  const sc = c.linux.securityContext;
  return {
    metadata: c.metadata,
    image: { image: c.image },
    command: c.command,
    args: c.args,
    working_dir: c.workingDir,
    envs: c.envs,
    labels: c.labels,
    annotations: c.annotations,
    log_path: c.logPath,
    linux: {
      resources: { cpu_shares: r.cpuShares, cpu_quota: r.cpuQuota, cpu_period: r.cpuPeriod, memory_limit_in_bytes: r.memoryLimitInBytes },
      security_context: {
        privileged: sc.privileged,
        namespace_options: namespaceOptions(sc.namespaceOptions),
        ...(sc.runAsUser === undefined ? {} : { run_as_user: { value: sc.runAsUser } }),
        ...securityExtras(sc),
      },
    },
    ...(c.mounts ? { mounts: c.mounts.map(mount) } : {}),
  };
}

const PROPAGATION: Record<NonNullable<Mount['propagation']>, T.MountPropagation> = {
  private: 'PROPAGATION_PRIVATE', hostToContainer: 'PROPAGATION_HOST_TO_CONTAINER', bidirectional: 'PROPAGATION_BIDIRECTIONAL',
};

function mount(m: Mount): T.Mount {
  return { container_path: m.containerPath, host_path: m.hostPath, readonly: m.readonly, propagation: PROPAGATION[m.propagation ?? 'private'] };
}

/** RuntimeDefault is the proto3 zero value: the message is still sent (an empty SecurityProfile), which is what selects it. */
function securityProfile(p: SecurityProfile): T.SecurityProfile {
  return { profile_type: p.type, ...(p.localhostRef ? { localhost_ref: p.localhostRef } : {}) };
}

function securityExtras(sc: ContainerSecurityExtras): Partial<T.LinuxContainerSecurityContext> {
  const out: Partial<T.LinuxContainerSecurityContext> = {};
  if (sc.runAsGroup !== undefined) out.run_as_group = { value: sc.runAsGroup };
  if (sc.supplementalGroups?.length) out.supplemental_groups = sc.supplementalGroups;
  if (sc.readonlyRootfs) out.readonly_rootfs = true;
  if (sc.capabilities) out.capabilities = { add_capabilities: sc.capabilities.add, drop_capabilities: sc.capabilities.drop };
  if (sc.noNewPrivs) out.no_new_privs = true;
  if (sc.maskedPaths) out.masked_paths = sc.maskedPaths;
  if (sc.readonlyPaths) out.readonly_paths = sc.readonlyPaths;
  if (sc.seccomp) out.seccomp = securityProfile(sc.seccomp);
  return out;
}

const SANDBOX_STATE: Record<T.PodSandboxState, SandboxState> = { SANDBOX_READY: 'ready', SANDBOX_NOTREADY: 'notready' };
const CONTAINER_STATE: Record<T.ContainerState, ContainerState> = {
  CONTAINER_CREATED: 'created', CONTAINER_RUNNING: 'running', CONTAINER_EXITED: 'exited', CONTAINER_UNKNOWN: 'unknown',
};

function sandbox(s: T.PodSandbox | T.PodSandboxStatus): PodSandbox {
  return {
    id: s.id,
    metadata: { name: s.metadata?.name ?? '', uid: s.metadata?.uid ?? '', namespace: s.metadata?.namespace ?? '', attempt: s.metadata?.attempt ?? 0 },
    state: SANDBOX_STATE[s.state] ?? 'notready',
    createdAt: nsToMs(s.created_at),
    labels: s.labels ?? {},
    annotations: s.annotations ?? {},
  };
}

function container(c: T.Container | T.ContainerStatus, podSandboxId: string): Container {
  return {
    id: c.id,
    podSandboxId,
    metadata: { name: c.metadata?.name ?? '', attempt: c.metadata?.attempt ?? 0 },
    image: c.image?.image ?? '',
    imageRef: c.image_ref,
    state: CONTAINER_STATE[c.state] ?? 'unknown',
    createdAt: nsToMs(c.created_at),
    labels: c.labels ?? {},
    annotations: c.annotations ?? {},
  };
}

function filter(f?: RuntimeFilter) {
  return f?.labels ? { filter: { label_selector: f.labels } } : {};
}

export function createCriRuntime(cri: CriClient): PodRuntime {
  return {
    async version() {
      const v = await cri.version();
      return { runtimeName: v.runtime_name, runtimeVersion: v.runtime_version };
    },
    async runPodSandbox(config) {
      return (await cri.runPodSandbox({ config: sandboxConfig(config) })).pod_sandbox_id;
    },
    async stopPodSandbox(id) {
      await cri.stopPodSandbox({ pod_sandbox_id: id });
    },
    async removePodSandbox(id) {
      await cri.removePodSandbox({ pod_sandbox_id: id });
    },
    async podSandboxStatus(id) {
      const { status } = await cri.podSandboxStatus({ pod_sandbox_id: id });
      if (!status) throw new Error(`sandbox ${id}: runtime returned no status`);
      return { ...sandbox(status), ip: status.network?.ip ?? '' };
    },
    async listPodSandboxes(f) {
      return (await cri.listPodSandbox(filter(f))).items.map(sandbox);
    },
    async createContainer(sandboxId, config, sbConfig) {
      const res = await cri.createContainer({ pod_sandbox_id: sandboxId, config: containerConfig(config), sandbox_config: sandboxConfig(sbConfig) });
      return res.container_id;
    },
    async startContainer(id) {
      await cri.startContainer({ container_id: id });
    },
    async stopContainer(id, timeoutSeconds) {
      await cri.stopContainer({ container_id: id, timeout: timeoutSeconds });
    },
    async removeContainer(id) {
      await cri.removeContainer({ container_id: id });
    },
    async listContainers(f) {
      return (await cri.listContainers(filter(f))).containers.map((c) => container(c, c.pod_sandbox_id));
    },
    async containerStatus(id): Promise<ContainerStatus> {
      const { status } = await cri.containerStatus({ container_id: id });
      if (!status) throw new Error(`container ${id}: runtime returned no status`);
      return {
        ...container(status, ''),
        startedAt: nsToMs(status.started_at),
        finishedAt: nsToMs(status.finished_at),
        exitCode: status.exit_code,
        reason: status.reason,
        message: status.message,
        logPath: status.log_path,
        mounts: (status.mounts ?? []).map((m) => ({ containerPath: m.container_path, hostPath: m.host_path ?? '', readonly: m.readonly === true })),
      };
    },
    async imageStatus(image) {
      const { image: img } = await cri.imageStatus({ image: { image } });
      if (!img) return undefined;
      return { id: img.id, repoTags: img.repo_tags, ...(img.uid ? { uid: Number(img.uid.value) } : {}), ...(img.username ? { username: img.username } : {}) };
    },
    async pullImage(image, sbConfig) {
      const res = await cri.pullImage({ image: { image }, ...(sbConfig ? { sandbox_config: sandboxConfig(sbConfig) } : {}) });
      return res.image_ref;
    },
    async pullImageWithAuth(image, auth, sbConfig) {
      const criAuth: T.AuthConfig = {
        username: auth.username, password: auth.password, auth: auth.auth, server_address: auth.serverAddress,
        identity_token: auth.identityToken, registry_token: auth.registryToken,
      };
      const res = await cri.pullImage({ image: { image }, auth: criAuth, ...(sbConfig ? { sandbox_config: sandboxConfig(sbConfig) } : {}) });
      return res.image_ref;
    },
    async execSync(id, cmd, timeoutSeconds) {
      const res = await cri.execSync({ container_id: id, cmd, timeout: timeoutSeconds });
      return { stdout: res.stdout, stderr: res.stderr, exitCode: res.exit_code };
    },
    async status() {
      const res = await cri.status({ verbose: true });
      let config: { sandboxImage?: string; cni?: { confDir?: string; binDir?: string } } = {};
      try {
        config = JSON.parse(res.info?.config ?? '{}');
      } catch {
        // not containerd's verbose format
      }
      return {
        conditions: res.status?.conditions ?? [],
        ...(config.sandboxImage ? { sandboxImage: config.sandboxImage } : {}),
        ...(config.cni?.confDir ? { cniConfDir: config.cni.confDir } : {}),
        ...(config.cni?.binDir ? { cniBinDir: config.cni.binDir } : {}),
      };
    },
    async listImages() {
      return (await cri.listImages()).images.map((i) => ({ id: i.id, repoTags: i.repo_tags, size: Number(i.size) || 0, pinned: i.pinned }));
    },
    async removeImage(image) {
      await cri.removeImage({ image: { image } });
    },
    async imageFsMountpoint() {
      const res = await cri.imageFsInfo();
      return res.image_filesystems[0]?.fs_id?.mountpoint || undefined;
    },
    containerEvents(onEvent, onError) {
      return cri.containerEvents(
        (e) => onEvent({ containerId: e.container_id, kind: EVENT_KIND[e.container_event_type] ?? 'stopped' }),
        (err) => onError(Object.assign(err, { unimplemented: isUnimplemented(err) })),
      );
    },
  };
}
