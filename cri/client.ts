/**
 * Typed CRI runtime.v1 client over @grpc/grpc-js on a unix socket (containerd ≥ 1.6, CRI-O).
 *
 * Usage:
 *
 *   import { createCriClient } from '../cri/client';
 *   const cri = createCriClient({ endpoint: 'unix:///run/containerd/containerd.sock', logger });
 *   const v = await cri.version();                 // throws KEELSON_ERR_CRI_UNSUPPORTED_VERSION if not v1
 *   const { pod_sandbox_id } = await cri.runPodSandbox({ config: sandboxConfig });
 *   const { container_id } = await cri.createContainer({ pod_sandbox_id, config, sandbox_config: sandboxConfig });
 *   await cri.startContainer({ container_id });
 *   const { status } = await cri.containerStatus({ container_id });   // status.state === 'CONTAINER_RUNNING'
 *   const r = await cri.execSync({ container_id, cmd: ['echo', 'hi'], timeout: 5 }); // r.stdout: Buffer
 *   await cri.stopContainer({ container_id, timeout: 30 }, { timeoutMs: 45_000 }); // per-call deadline
 *   const cancel = cri.containerEvents((ev) => ..., (err) => ...); // isUnimplemented(err) on containerd 1.6
 *   cri.close();
 *
 * Messages use the proto's snake_case field names; int64 values come back as decimal strings and
 * enums as their names; absent fields come back as their defaults ('' / 0 / [] / {}), absent
 * messages as null (see cri/types.ts). Encoding is keelson's own codec (cri/codec.ts) driven by
 * cri/proto/api.proto; @grpc/proto-loader is not used (it costs ~15 MB of RSS).
 *
 * Every failure is a CriError (cri/errors.ts) with a stable code and the object concerned
 * (`container=<id>`, `socket=<path>`): KEELSON_ERR_CRI_UNAVAILABLE (socket missing or refused,
 * runtime down), _DEADLINE, _UNSUPPORTED_VERSION, _CALL_FAILED (with `grpcCode`; `isNotFound(err)`
 * for NOT_FOUND).
 *
 * Deadlines, overridable per call with `{ timeoutMs }`:
 * - `timeoutMs` (default 10 s): reads and quick calls (version, status, list, stats, exec URLs, ...);
 * - `slowTimeoutMs` (default 2 min, kubelet's runtime-request-timeout): pullImage, runPodSandbox,
 *   stop/removePodSandbox, create/start/removeContainer, removeImage, updateContainerResources;
 * - stopContainer and execSync: their own `timeout` seconds plus `slowTimeoutMs` (execSync without a
 *   timeout: `slowTimeoutMs`).
 *
 * Reconnection: calls never wait for the runtime (no waitForReady), so while it is down they fail
 * at once with KEELSON_ERR_CRI_UNAVAILABLE. After such a failure the channel is replaced by a fresh
 * one for the next call, so the first call after the runtime is back connects at once instead of
 * waiting out gRPC's reconnect backoff.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CriError, CriErrorCodes, toCriError } from './errors';
import { methodDef, type MethodDef } from './proto';
import type * as T from './types';

export interface CriClientOptions {
  /** `unix:///run/containerd/containerd.sock` or a plain socket path. */
  endpoint: string;
  /** Deadline of quick calls in ms (default 10 000). */
  timeoutMs?: number;
  /** Deadline of slow calls (pulls, sandbox and container lifecycle) in ms (default 120 000). */
  slowTimeoutMs?: number;
  /** Logs one line when the runtime becomes unavailable and one when it is back. */
  logger?: Logger;
}

export interface CallOptions {
  /** Deadline of this call in ms, replacing the default. */
  timeoutMs?: number;
  /** Cancels the call (it then fails with KEELSON_ERR_CRI_CALL_FAILED, grpc code CANCELLED). */
  signal?: AbortSignal;
}

export type ContainerEventHandler = (event: T.ContainerEvent) => void;
export type StreamErrorHandler = (err: CriError) => void;

export interface CriClient {
  /** The socket path the client talks to. */
  readonly socket: string;
  version(req?: T.VersionRequest, opts?: CallOptions): Promise<T.VersionResponse>;
  status(req?: T.StatusRequest, opts?: CallOptions): Promise<T.StatusResponse>;
  updateRuntimeConfig(req: T.UpdateRuntimeConfigRequest, opts?: CallOptions): Promise<T.Empty>;

  runPodSandbox(req: T.RunPodSandboxRequest, opts?: CallOptions): Promise<T.RunPodSandboxResponse>;
  stopPodSandbox(req: T.PodSandboxIdRequest, opts?: CallOptions): Promise<T.Empty>;
  removePodSandbox(req: T.PodSandboxIdRequest, opts?: CallOptions): Promise<T.Empty>;
  podSandboxStatus(req: T.PodSandboxStatusRequest, opts?: CallOptions): Promise<T.PodSandboxStatusResponse>;
  listPodSandbox(req?: T.ListPodSandboxRequest, opts?: CallOptions): Promise<T.ListPodSandboxResponse>;

  createContainer(req: T.CreateContainerRequest, opts?: CallOptions): Promise<T.CreateContainerResponse>;
  startContainer(req: T.ContainerIdRequest, opts?: CallOptions): Promise<T.Empty>;
  stopContainer(req: T.StopContainerRequest, opts?: CallOptions): Promise<T.Empty>;
  removeContainer(req: T.ContainerIdRequest, opts?: CallOptions): Promise<T.Empty>;
  listContainers(req?: T.ListContainersRequest, opts?: CallOptions): Promise<T.ListContainersResponse>;
  containerStatus(req: T.ContainerStatusRequest, opts?: CallOptions): Promise<T.ContainerStatusResponse>;
  updateContainerResources(req: T.UpdateContainerResourcesRequest, opts?: CallOptions): Promise<T.Empty>;
  reopenContainerLog(req: T.ContainerIdRequest, opts?: CallOptions): Promise<T.Empty>;

  execSync(req: T.ExecSyncRequest, opts?: CallOptions): Promise<T.ExecSyncResponse>;
  exec(req: T.ExecRequest, opts?: CallOptions): Promise<T.UrlResponse>;
  attach(req: T.AttachRequest, opts?: CallOptions): Promise<T.UrlResponse>;
  portForward(req: T.PortForwardRequest, opts?: CallOptions): Promise<T.UrlResponse>;

  containerStats(req: T.ContainerIdRequest, opts?: CallOptions): Promise<T.ContainerStatsResponse>;
  listContainerStats(req?: T.ListContainerStatsRequest, opts?: CallOptions): Promise<T.ListContainerStatsResponse>;
  podSandboxStats(req: T.PodSandboxIdRequest, opts?: CallOptions): Promise<T.PodSandboxStatsResponse>;
  listPodSandboxStats(req?: T.ListPodSandboxStatsRequest, opts?: CallOptions): Promise<T.ListPodSandboxStatsResponse>;

  listImages(req?: T.ListImagesRequest, opts?: CallOptions): Promise<T.ListImagesResponse>;
  imageStatus(req: T.ImageStatusRequest, opts?: CallOptions): Promise<T.ImageStatusResponse>;
  pullImage(req: T.PullImageRequest, opts?: CallOptions): Promise<T.PullImageResponse>;
  removeImage(req: T.RemoveImageRequest, opts?: CallOptions): Promise<T.Empty>;
  imageFsInfo(opts?: CallOptions): Promise<T.ImageFsInfoResponse>;

  /**
   * Subscribes to GetContainerEvents. Events go to onEvent; when the stream ends with an error
   * (runtime restarted, or Unimplemented on containerd 1.6 — test with `isUnimplemented(err)`)
   * onError is called once and the subscription is over: subscribe again to resume. Returns a
   * function that cancels the subscription (no onError call then).
   */
  containerEvents(onEvent: ContainerEventHandler, onError?: StreamErrorHandler): () => void;

  /** Closes the channel; later calls fail with KEELSON_ERR_CRI_UNAVAILABLE. */
  close(): void;
}

/** `unix:///a/b.sock`, `unix:/a/b.sock` or `/a/b.sock` → `/a/b.sock`. */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('unix:')) return endpoint.slice('unix:'.length);
  if (endpoint.startsWith('/')) return endpoint;
  throw new TypeError(`CRI endpoint must be a unix socket (unix:///path or /path), got ${JSON.stringify(endpoint)}`);
}

type Service = 'RuntimeService' | 'ImageService';
type TimeoutKind = 'quick' | 'slow' | 'stop' | 'exec';

interface Rpc {
  service: Service;
  rpc: string;
  timeout: TimeoutKind;
  object?: (req: Record<string, unknown>) => string | undefined;
}

const byContainer = (req: Record<string, unknown>) => (req.container_id ? `container=${String(req.container_id)}` : undefined);
const bySandbox = (req: Record<string, unknown>) => (req.pod_sandbox_id ? `podSandbox=${String(req.pod_sandbox_id)}` : undefined);
const byImage = (req: Record<string, unknown>) => {
  const image = (req.image as { image?: string } | undefined)?.image;
  return image ? `image=${image}` : undefined;
};
const byPodConfig = (req: Record<string, unknown>) => {
  const md = (req.config as { metadata?: { namespace?: string; name?: string } } | undefined)?.metadata;
  return md ? `pod=${md.namespace ?? ''}/${md.name ?? ''}` : undefined;
};
const byContainerConfig = (req: Record<string, unknown>) => {
  const name = (req.config as { metadata?: { name?: string } } | undefined)?.metadata?.name;
  const sandbox = req.pod_sandbox_id ? String(req.pod_sandbox_id) : '';
  return name ? `container=${name} podSandbox=${sandbox}` : bySandbox(req);
};

const RPCS = {
  version: { service: 'RuntimeService', rpc: 'Version', timeout: 'quick' },
  status: { service: 'RuntimeService', rpc: 'Status', timeout: 'quick' },
  updateRuntimeConfig: { service: 'RuntimeService', rpc: 'UpdateRuntimeConfig', timeout: 'quick' },
  runPodSandbox: { service: 'RuntimeService', rpc: 'RunPodSandbox', timeout: 'slow', object: byPodConfig },
  stopPodSandbox: { service: 'RuntimeService', rpc: 'StopPodSandbox', timeout: 'slow', object: bySandbox },
  removePodSandbox: { service: 'RuntimeService', rpc: 'RemovePodSandbox', timeout: 'slow', object: bySandbox },
  podSandboxStatus: { service: 'RuntimeService', rpc: 'PodSandboxStatus', timeout: 'quick', object: bySandbox },
  listPodSandbox: { service: 'RuntimeService', rpc: 'ListPodSandbox', timeout: 'quick' },
  createContainer: { service: 'RuntimeService', rpc: 'CreateContainer', timeout: 'slow', object: byContainerConfig },
  startContainer: { service: 'RuntimeService', rpc: 'StartContainer', timeout: 'slow', object: byContainer },
  stopContainer: { service: 'RuntimeService', rpc: 'StopContainer', timeout: 'stop', object: byContainer },
  removeContainer: { service: 'RuntimeService', rpc: 'RemoveContainer', timeout: 'slow', object: byContainer },
  listContainers: { service: 'RuntimeService', rpc: 'ListContainers', timeout: 'quick' },
  containerStatus: { service: 'RuntimeService', rpc: 'ContainerStatus', timeout: 'quick', object: byContainer },
  updateContainerResources: { service: 'RuntimeService', rpc: 'UpdateContainerResources', timeout: 'slow', object: byContainer },
  reopenContainerLog: { service: 'RuntimeService', rpc: 'ReopenContainerLog', timeout: 'quick', object: byContainer },
  execSync: { service: 'RuntimeService', rpc: 'ExecSync', timeout: 'exec', object: byContainer },
  exec: { service: 'RuntimeService', rpc: 'Exec', timeout: 'quick', object: byContainer },
  attach: { service: 'RuntimeService', rpc: 'Attach', timeout: 'quick', object: byContainer },
  portForward: { service: 'RuntimeService', rpc: 'PortForward', timeout: 'quick', object: bySandbox },
  containerStats: { service: 'RuntimeService', rpc: 'ContainerStats', timeout: 'quick', object: byContainer },
  listContainerStats: { service: 'RuntimeService', rpc: 'ListContainerStats', timeout: 'quick' },
  podSandboxStats: { service: 'RuntimeService', rpc: 'PodSandboxStats', timeout: 'quick', object: bySandbox },
  listPodSandboxStats: { service: 'RuntimeService', rpc: 'ListPodSandboxStats', timeout: 'quick' },
  listImages: { service: 'ImageService', rpc: 'ListImages', timeout: 'quick' },
  imageStatus: { service: 'ImageService', rpc: 'ImageStatus', timeout: 'quick', object: byImage },
  pullImage: { service: 'ImageService', rpc: 'PullImage', timeout: 'slow', object: byImage },
  removeImage: { service: 'ImageService', rpc: 'RemoveImage', timeout: 'slow', object: byImage },
  imageFsInfo: { service: 'ImageService', rpc: 'ImageFsInfo', timeout: 'quick' },
} as const satisfies Record<string, Rpc>;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // kubelet's limit; ExecSync output and big lists fit.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
  // A private subchannel per channel, so replacing the channel also drops its reconnect backoff.
  'grpc.use_local_subchannel_pool': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  // Calls are not retried by grpc-js: the caller (a sync loop) decides.
  'grpc.enable_retries': 0,
};

interface Channel {
  client: grpc.Client;
  inFlight: number;
  retired: boolean;
}

function secondsOf(value: T.Int64In | undefined): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export function createCriClient(options: CriClientOptions): CriClient {
  const socket = socketPathOf(options.endpoint);
  const address = `unix://${socket}`;
  const quickMs = options.timeoutMs ?? 10_000;
  const slowMs = options.slowTimeoutMs ?? 120_000;
  const log = options.logger;
  let current: Channel | undefined;
  let closed = false;
  let available = true;

  function channel(): Channel {
    if (!current) current = { client: new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS), inFlight: 0, retired: false };
    return current;
  }

  function release(ch: Channel): void {
    ch.inFlight--;
    if (ch.retired && ch.inFlight === 0) ch.client.close();
  }

  /** After an UNAVAILABLE failure: the next call gets a fresh channel that connects at once. */
  function retire(ch: Channel): void {
    if (current !== ch) return;
    current = undefined;
    ch.retired = true;
    if (ch.inFlight === 0) ch.client.close();
  }

  function noteOutcome(err: CriError | undefined, method: string): void {
    const down = err?.code === CriErrorCodes.UNAVAILABLE;
    if (down && available) {
      available = false;
      log?.warn({ socket, method, err: err.message }, 'CRI runtime unavailable');
    } else if (!down && err?.code !== CriErrorCodes.DEADLINE && !available) {
      available = true;
      log?.info({ socket }, 'CRI runtime available again');
    }
  }

  function deadlineMs(spec: Rpc, req: Record<string, unknown>, opts: CallOptions | undefined): number {
    if (opts?.timeoutMs !== undefined) return opts.timeoutMs;
    switch (spec.timeout) {
      case 'quick':
        return quickMs;
      case 'slow':
        return slowMs;
      case 'stop':
        return secondsOf(req.timeout as T.Int64In | undefined) * 1000 + slowMs;
      case 'exec': {
        const s = secondsOf(req.timeout as T.Int64In | undefined);
        return s > 0 ? s * 1000 + slowMs : slowMs;
      }
    }
  }

  const defs = new Map<string, MethodDef>();
  function def(spec: Rpc): MethodDef {
    const key = `${spec.service}/${spec.rpc}`;
    let d = defs.get(key);
    if (!d) {
      d = methodDef(spec.service, spec.rpc);
      defs.set(key, d);
    }
    return d;
  }

  function unary<Res>(spec: Rpc, req: object, opts?: CallOptions): Promise<Res> {
    const method = `${spec.service}/${spec.rpc}`;
    const request = req as Record<string, unknown>;
    const object = spec.object?.(request);
    const timeoutMs = deadlineMs(spec, request, opts);
    if (closed) {
      return Promise.reject(
        new CriError(CriErrorCodes.UNAVAILABLE, `CRI client for ${socket} is closed [${method}]`, { object: `socket=${socket}`, method }),
      );
    }
    const d = def(spec);
    const ch = channel();
    ch.inFlight++;
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = ch.client.makeUnaryRequest<unknown, Res>(
        d.path,
        d.requestSerialize,
        d.responseDeserialize as (b: Buffer) => Res,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => {
          opts?.signal?.removeEventListener('abort', onAbort);
          release(ch);
          if (err) {
            const mapped = toCriError(err, { method, object, socket, timeoutMs });
            if (mapped.code === CriErrorCodes.UNAVAILABLE) retire(ch);
            noteOutcome(mapped, method);
            reject(mapped);
            return;
          }
          noteOutcome(undefined, method);
          resolve(value as Res);
        },
      );
      if (opts?.signal) {
        if (opts.signal.aborted) call.cancel();
        else opts.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  const call =
    <Req extends object, Res>(spec: Rpc) =>
    (req?: Req, opts?: CallOptions): Promise<Res> =>
      unary<Res>(spec, req ?? {}, opts);

  return {
    socket,
    async version(req, opts) {
      const res = await unary<T.VersionResponse>(RPCS.version, { version: 'v1', ...req }, opts);
      // A runtime that routes runtime.v1 but reports an older API is not usable either.
      if (res.runtime_api_version && !/^v1($|\.)/.test(res.runtime_api_version)) {
        throw new CriError(
          CriErrorCodes.UNSUPPORTED_VERSION,
          `CRI runtime at ${socket} reports API ${res.runtime_api_version}, keelson needs runtime.v1`,
          { object: `socket=${socket}`, method: 'RuntimeService/Version' },
        );
      }
      return res;
    },
    status: call(RPCS.status),
    updateRuntimeConfig: call(RPCS.updateRuntimeConfig),
    runPodSandbox: call(RPCS.runPodSandbox),
    stopPodSandbox: call(RPCS.stopPodSandbox),
    removePodSandbox: call(RPCS.removePodSandbox),
    podSandboxStatus: call(RPCS.podSandboxStatus),
    listPodSandbox: call(RPCS.listPodSandbox),
    createContainer: call(RPCS.createContainer),
    startContainer: call(RPCS.startContainer),
    stopContainer: call(RPCS.stopContainer),
    removeContainer: call(RPCS.removeContainer),
    listContainers: call(RPCS.listContainers),
    containerStatus: call(RPCS.containerStatus),
    updateContainerResources: call(RPCS.updateContainerResources),
    reopenContainerLog: call(RPCS.reopenContainerLog),
    execSync: call(RPCS.execSync),
    exec: call(RPCS.exec),
    attach: call(RPCS.attach),
    portForward: call(RPCS.portForward),
    containerStats: call(RPCS.containerStats),
    listContainerStats: call(RPCS.listContainerStats),
    podSandboxStats: call(RPCS.podSandboxStats),
    listPodSandboxStats: call(RPCS.listPodSandboxStats),
    listImages: call(RPCS.listImages),
    imageStatus: call(RPCS.imageStatus),
    pullImage: call(RPCS.pullImage),
    removeImage: call(RPCS.removeImage),
    imageFsInfo: (opts?: CallOptions) => unary<T.ImageFsInfoResponse>(RPCS.imageFsInfo, {}, opts),

    containerEvents(onEvent, onError) {
      const method = 'RuntimeService/GetContainerEvents';
      if (closed) {
        queueMicrotask(() =>
          onError?.(new CriError(CriErrorCodes.UNAVAILABLE, `CRI client for ${socket} is closed [${method}]`, { object: `socket=${socket}`, method })),
        );
        return () => {};
      }
      const d = methodDef('RuntimeService', 'GetContainerEvents');
      const ch = channel();
      ch.inFlight++;
      let cancelled = false;
      let done = false;
      const finish = (err?: grpc.ServiceError) => {
        if (done) return;
        done = true;
        release(ch);
        if (cancelled || !err) return;
        const mapped = toCriError(err, { method, socket, timeoutMs: 0 });
        if (mapped.code === CriErrorCodes.UNAVAILABLE) retire(ch);
        noteOutcome(mapped, method);
        onError?.(mapped);
      };
      const stream = ch.client.makeServerStreamRequest<unknown, T.ContainerEvent>(
        d.path,
        d.requestSerialize,
        d.responseDeserialize as (b: Buffer) => T.ContainerEvent,
        {},
        new grpc.Metadata(),
        {},
      );
      stream.on('data', (event: T.ContainerEvent) => onEvent(event));
      stream.on('error', (err: grpc.ServiceError) => finish(err));
      stream.on('end', () => {
        // A stream the runtime ends without a status error still ends the subscription.
        if (!done && !cancelled) {
          finish(Object.assign(new Error('event stream ended'), { code: grpc.status.UNAVAILABLE, details: 'event stream ended', metadata: new grpc.Metadata() }));
        }
      });
      return () => {
        if (done || cancelled) return;
        cancelled = true;
        stream.cancel();
        // 'error' (CANCELLED) follows and releases the channel; guard in case it does not.
        setImmediate(() => finish());
      };
    },

    close() {
      closed = true;
      if (current) retire(current);
    },
  };
}

/** A CRI nanosecond timestamp (decimal string) as a JS Date (millisecond precision); null for 0. */
export function nanosToDate(nanos: T.Int64 | number | undefined): Date | null {
  if (nanos === undefined || nanos === '' || nanos === 0 || nanos === '0') return null;
  return new Date(Number(BigInt(nanos) / 1_000_000n));
}
