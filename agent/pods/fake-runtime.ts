/**
 * An in-memory CRI runtime for unit tests of agent/pods: sandboxes, containers and images kept in
 * maps, with time from the injected clock. Tests make containers exit with exitContainer() and
 * inspect calls; the feature tests in test/pods use the real containerd instead.
 */
import type { Clock } from './clock';
import type {
  Container, ContainerConfig, ContainerStatus, ExecResult, ImageInfo, PodRuntime, PodSandbox, PodSandboxConfig, PodSandboxStatus,
  RuntimeContainerEvent, RuntimeFilter, RuntimeStatus,
} from './runtime';

interface FakeContainer extends ContainerStatus {
  config: ContainerConfig;
}

interface FakeSandbox extends PodSandboxStatus {
  config: PodSandboxConfig;
}

export interface FakeRuntime extends PodRuntime {
  sandboxes: Map<string, FakeSandbox>;
  containers: Map<string, FakeContainer>;
  images: Set<string>;
  /** Every call as `method id-or-name`, in order. */
  calls: string[];
  /** The process of container id exits with code. */
  exitContainer(id: string, exitCode: number): void;
  /** The next call of method fails with message. */
  failNext(method: keyof PodRuntime, message: string): void;
  /** Images whose pull fails. */
  unpullable: Set<string>;
  /** Answers execSync (default: exit 0, no output); may throw or never resolve. */
  execHandler: (id: string, cmd: string[], timeoutSeconds: number) => ExecResult | Promise<ExecResult>;
  /** Image sizes in bytes (default 1000). */
  imageSizes: Map<string, number>;
  /** What status() answers. */
  runtimeStatus: RuntimeStatus;
  /** Whether containerEvents() streams events (false: it fails as Unimplemented, like containerd 1.6). */
  eventsSupported: boolean;
}

function matches(labels: Record<string, string>, filter?: RuntimeFilter): boolean {
  return Object.entries(filter?.labels ?? {}).every(([k, v]) => labels[k] === v);
}

export function createFakeRuntime(clock: Clock, options: { images?: string[] } = {}): FakeRuntime {
  const sandboxes = new Map<string, FakeSandbox>();
  const containers = new Map<string, FakeContainer>();
  const images = new Set(options.images ?? []);
  const unpullable = new Set<string>();
  const calls: string[] = [];
  const failures = new Map<string, string>();
  let seq = 0;
  let ipSeq = 1;
  const subscribers = new Set<(e: RuntimeContainerEvent) => void>();
  const emit = (containerId: string, kind: RuntimeContainerEvent['kind']) => {
    for (const s of subscribers) s({ containerId, kind });
  };

  function call(method: keyof PodRuntime, arg: string) {
    calls.push(`${method} ${arg}`);
    const failure = failures.get(method);
    if (failure !== undefined) {
      failures.delete(method);
      throw new Error(failure);
    }
  }

  function mustSandbox(id: string) {
    const s = sandboxes.get(id);
    if (!s) throw Object.assign(new Error(`sandbox ${id} not found`), { notFound: true });
    return s;
  }

  function mustContainer(id: string) {
    const c = containers.get(id);
    if (!c) throw Object.assign(new Error(`container ${id} not found`), { notFound: true });
    return c;
  }

  const strip = <T extends { config: unknown }>({ config: _c, ...rest }: T) => rest;

  return {
    sandboxes,
    containers,
    images,
    calls,
    unpullable,
    exitContainer(id, exitCode) {
      const c = mustContainer(id);
      if (c.state !== 'running') return;
      c.state = 'exited';
      c.exitCode = exitCode;
      c.finishedAt = clock.now();
      c.reason = exitCode === 0 ? 'Completed' : 'Error';
      emit(id, 'stopped');
    },
    execHandler: () => ({ stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: 0 }),
    imageSizes: new Map(),
    runtimeStatus: { conditions: [{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: true, reason: '', message: '' }] },
    eventsSupported: false,
    failNext(method, message) {
      failures.set(method, message);
    },
    async version() {
      call('version', '');
      return { runtimeName: 'fake', runtimeVersion: '1.0' };
    },
    async runPodSandbox(config) {
      call('runPodSandbox', config.metadata.name);
      const id = `sb${++seq}`;
      const network = config.linux.securityContext.namespaceOptions.network;
      sandboxes.set(id, {
        id, config, metadata: { ...config.metadata }, state: 'ready', createdAt: clock.now() + seq / 1000,
        labels: { ...config.labels }, annotations: { ...config.annotations }, ip: network === 'node' ? '' : `10.88.0.${++ipSeq}`,
      });
      return id;
    },
    async stopPodSandbox(id) {
      call('stopPodSandbox', id);
      const s = mustSandbox(id);
      for (const c of containers.values()) {
        if (c.podSandboxId === id && c.state === 'running') {
          c.state = 'exited';
          c.exitCode = 137;
          c.finishedAt = clock.now();
          emit(c.id, 'stopped');
        }
      }
      s.state = 'notready';
    },
    async removePodSandbox(id) {
      call('removePodSandbox', id);
      for (const c of [...containers.values()]) if (c.podSandboxId === id) containers.delete(c.id);
      sandboxes.delete(id);
    },
    async podSandboxStatus(id) {
      call('podSandboxStatus', id);
      return strip(mustSandbox(id));
    },
    async listPodSandboxes(filter) {
      call('listPodSandboxes', '');
      return [...sandboxes.values()].filter((s) => matches(s.labels, filter)).map((s): PodSandbox => {
        const { ip: _ip, ...rest } = strip(s);
        return rest;
      });
    },
    async createContainer(sandboxId, config) {
      call('createContainer', config.metadata.name);
      const sb = mustSandbox(sandboxId);
      if (sb.state !== 'ready') throw new Error(`sandbox ${sandboxId} is not ready`);
      if (!images.has(config.image)) throw new Error(`image ${config.image} not found`);
      const id = `c${++seq}`;
      containers.set(id, {
        id, config, podSandboxId: sandboxId, metadata: { ...config.metadata }, image: config.image, imageRef: `sha256:${config.image}`,
        state: 'created', createdAt: clock.now() + seq / 1000, labels: { ...config.labels }, annotations: { ...config.annotations },
        startedAt: 0, finishedAt: 0, exitCode: 0, reason: '', message: '', logPath: `${sb.config.logDirectory}/${config.logPath}`,
      });
      return id;
    },
    async startContainer(id) {
      call('startContainer', id);
      const c = mustContainer(id);
      if (c.state !== 'created') throw new Error(`container ${id} is in state ${c.state}`);
      c.state = 'running';
      c.startedAt = clock.now();
      emit(id, 'started');
    },
    async stopContainer(id, timeoutSeconds) {
      call('stopContainer', `${id} ${timeoutSeconds}`);
      const c = mustContainer(id);
      if (c.state !== 'running') return;
      c.state = 'exited';
      c.exitCode = 143;
      c.finishedAt = clock.now();
      c.reason = 'Error';
      emit(id, 'stopped');
    },
    async removeContainer(id) {
      call('removeContainer', id);
      const c = containers.get(id);
      if (c?.state === 'running') throw new Error(`container ${id} is running`);
      containers.delete(id);
    },
    async listContainers(filter) {
      call('listContainers', '');
      return [...containers.values()].filter((c) => matches(c.labels, filter)).map((c): Container => {
        const { startedAt: _s, finishedAt: _f, exitCode: _e, reason: _r, message: _m, logPath: _l, ...rest } = strip(c);
        return rest;
      });
    },
    async containerStatus(id) {
      call('containerStatus', id);
      const c = mustContainer(id);
      return { ...strip(c), mounts: [...(c.config.mounts ?? [])] };
    },
    async imageStatus(image): Promise<ImageInfo | undefined> {
      call('imageStatus', image);
      return images.has(image) ? { id: `sha256:${image}`, repoTags: [image] } : undefined;
    },
    async execSync(id, cmd, timeoutSeconds) {
      call('execSync', `${id} ${cmd.join(' ')}`);
      const c = mustContainer(id);
      if (c.state !== 'running') throw new Error(`container ${id} is not running`);
      return this.execHandler(id, cmd, timeoutSeconds);
    },
    async status() {
      call('status', '');
      return this.runtimeStatus;
    },
    async listImages() {
      call('listImages', '');
      return [...images].map((i) => ({ id: `sha256:${i}`, repoTags: [i], size: this.imageSizes.get(i) ?? 1000, pinned: false }));
    },
    async removeImage(image) {
      call('removeImage', image);
      images.delete(image.startsWith('sha256:') ? image.slice(7) : image);
    },
    async imageFsMountpoint() {
      return '/var/lib/fake';
    },
    containerEvents(onEvent, onError) {
      if (!this.eventsSupported) {
        queueMicrotask(() => onError(Object.assign(new Error('unknown method GetContainerEvents'), { unimplemented: true })));
        return () => {};
      }
      subscribers.add(onEvent);
      return () => void subscribers.delete(onEvent);
    },
    async pullImage(image) {
      call('pullImage', image);
      if (unpullable.has(image)) throw new Error(`pull access denied for ${image}`);
      images.add(image);
      return `sha256:${image}`;
    },
  };
}
