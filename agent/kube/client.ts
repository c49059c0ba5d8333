/**
 * A thin, typed Kubernetes REST client over node:https with one keep-alive agent: CRUD calls by
 * resource descriptor, and streaming watches. No client library: keelson's memory budget does not
 * allow one (see ARCHITECTURE.md).
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DeleteOptions, ListMeta, Status } from 'kubernetes-types/meta/v1';
import { ErrorCodes, KeelsonError, errorMessage } from '../errors';
import { ApiStatusError, statusFromResponse } from './api-error';
import type { KubeConfig, KubeCredentials } from './kubeconfig';
import { apiVersionOf, describeObject, resourcePath } from './resources';
import type { KubeObject, ResourceDescriptor } from './resources';
import { createJsonLineDecoder } from './watch-stream';

export interface KubeClientOptions {
  logger: Logger;
  userAgent?: string;
  /** Per-request deadline; for watches, the deadline until response headers. Default 30 s. */
  timeoutMs?: number;
  /** How long a token read from a tokenFile is used before reading the file again. Default 60 s. */
  tokenFileRefreshMs?: number;
}

export interface ObjectTarget {
  /** Defaults to the object's own metadata.namespace for create/update. */
  namespace?: string;
}

export interface ListOptions extends ObjectTarget {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan';
  timeoutMs?: number;
  /** Cancels the request (the promise rejects with KEELSON_ERR_API_UNREACHABLE). */
  signal?: AbortSignal;
}

export interface ListResult<T> {
  items: T[];
  metadata: ListMeta;
}

export interface WriteOptions extends ObjectTarget {
  subresource?: string;
  fieldManager?: string;
  dryRun?: boolean;
  timeoutMs?: number;
}

export type PatchType = 'merge' | 'strategic' | 'json';

export interface PatchOptions extends WriteOptions {
  type: PatchType;
}

export interface DeleteCallOptions extends ObjectTarget {
  options?: DeleteOptions;
  timeoutMs?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export type WatchEvent<T> = { type: WatchEventType; object: T } | { type: 'ERROR'; object: Status };

export interface WatchOptions extends ObjectTarget {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  /** Server-side duration of the watch; the server then ends the response normally. */
  timeoutSeconds?: number;
  /** Default true. */
  allowWatchBookmarks?: boolean;
  /** Called when the server accepted the watch (response headers with 200). */
  onOpen?(): void;
  /** Called for every chunk of bytes received, so callers can detect a stalled stream. */
  onProgress?(bytes: number): void;
}

/** How a watch ended without an error. */
export type WatchEnd = 'closed' | 'aborted';

export interface WatchHandle {
  /** Ends the watch. With a reason, `done` rejects with it; otherwise it resolves with 'aborted'. */
  abort(reason?: Error): void;
  /**
   * Resolves 'closed' when the server ended the response normally, 'aborted' after abort();
   * rejects with ApiStatusError (non-200 answer), KEELSON_ERR_API_UNREACHABLE (connection failed or
   * dropped mid-stream) or a decoding error.
   */
  readonly done: Promise<WatchEnd>;
}

export interface KubeClient {
  readonly server: string;
  get<T>(res: ResourceDescriptor<T>, name: string, options?: ObjectTarget & { subresource?: string; timeoutMs?: number }): Promise<T>;
  list<T>(res: ResourceDescriptor<T>, options?: ListOptions): Promise<ListResult<T>>;
  create<T>(res: ResourceDescriptor<T>, obj: T, options?: WriteOptions): Promise<T>;
  update<T>(res: ResourceDescriptor<T>, obj: T, options?: WriteOptions): Promise<T>;
  updateStatus<T>(res: ResourceDescriptor<T>, obj: T, options?: WriteOptions): Promise<T>;
  patch<T>(res: ResourceDescriptor<T>, name: string, patch: unknown, options: PatchOptions): Promise<T>;
  /** Returns the object (graceful deletion, or finalizers pending) or the server's Status. */
  delete<T>(res: ResourceDescriptor<T>, name: string, options?: DeleteCallOptions): Promise<T | Status>;
  watch<T>(res: ResourceDescriptor<T>, options: WatchOptions, onEvent: (event: WatchEvent<T>) => void): WatchHandle;
  /**
   * Replaces the client credentials (certificate rotation, a new token). New requests use them;
   * open watches keep their connection until they end, so informers need not be recreated.
   */
  setCredentials(credentials: KubeCredentials): void;
  /** Closes idle connections and stops accepting requests. */
  close(): void;
}

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

interface RequestSpec {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  object: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Transport {
  agent: http.Agent;
  credentials: KubeCredentials;
}

function unreachable(server: string, spec: { method: string; object: string }, err: unknown): KeelsonError {
  if (err instanceof KeelsonError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  return new KeelsonError(
    ErrorCodes.API_UNREACHABLE,
    `${spec.method} ${spec.object}: apiserver ${server} unreachable: ${errorMessage(err)}${code && !errorMessage(err).includes(code) ? ` (${code})` : ''}`,
    { object: server, cause: err },
  );
}

/** Wraps the error of a request sent on a reused connection the server had already closed. */
class StaleConnection {
  constructor(readonly error: KeelsonError) {}
}

function isStaleConnection(req: http.ClientRequest, err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE');
}

function queryString(query: RequestSpec['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

function namespaceOf(obj: unknown, options?: ObjectTarget): string | undefined {
  return options?.namespace ?? (obj as KubeObject | undefined)?.metadata?.namespace;
}

export function createKubeClient(config: KubeConfig, options: KubeClientOptions): KubeClient {
  const logger = options.logger;
  const userAgent = options.userAgent ?? 'keelson';
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;
  const tokenFileRefreshMs = options.tokenFileRefreshMs ?? 60_000;
  const base = new URL(config.server);
  const secure = base.protocol === 'https:';
  const hostname = base.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literals come bracketed
  const basePath = base.pathname.replace(/\/+$/, '');
  const server = config.server;
  let closed = false;

  function makeAgent(credentials: KubeCredentials): http.Agent {
    const common = { keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: 4, scheduling: 'lifo' as const };
    if (!secure) return new http.Agent(common);
    return new https.Agent({
      ...common,
      ca: config.certificateAuthority,
      cert: credentials.clientCertificate,
      key: credentials.clientKey,
      rejectUnauthorized: !config.insecureSkipTLSVerify,
      servername: config.tlsServerName,
    });
  }

  let transport: Transport = { agent: makeAgent(config.credentials), credentials: config.credentials };
  let fileToken: { value: string; readAt: number; path: string; failing: boolean } | undefined;

  async function bearerToken(credentials: KubeCredentials): Promise<string | undefined> {
    const path = credentials.tokenFile;
    if (!path) return credentials.token;
    const now = Date.now();
    if (fileToken && fileToken.path === path && now - fileToken.readAt < tokenFileRefreshMs) return fileToken.value;
    try {
      fileToken = { value: (await readFile(path, 'utf8')).trim(), readAt: now, path, failing: false };
    } catch (err) {
      if (!fileToken || fileToken.path !== path) {
        throw new KeelsonError(ErrorCodes.KUBECONFIG_INVALID, `cannot read token file ${path}: ${errorMessage(err)}`, { object: path, cause: err });
      }
      // Keep using the last token read (the file may be in the middle of a rotation); try again
      // after the refresh interval, and say so once.
      if (!fileToken.failing) logger.warn({ err, file: path }, 'token file unreadable, using the last token read');
      fileToken = { ...fileToken, readAt: now, failing: true };
    }
    return fileToken.value;
  }

  async function start(spec: RequestSpec): Promise<http.ClientRequest> {
    if (closed) throw new KeelsonError(ErrorCodes.API_UNREACHABLE, `${spec.method} ${spec.object}: client closed`, { object: server });
    const current = transport;
    const headers: http.OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': userAgent };
    const token = await bearerToken(current.credentials);
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload: Buffer | undefined;
    if (spec.body !== undefined) {
      payload = Buffer.from(JSON.stringify(spec.body));
      headers['Content-Type'] = spec.contentType ?? 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const req = (secure ? https : http).request({
      protocol: base.protocol,
      hostname,
      port: base.port || (secure ? 443 : 80),
      method: spec.method,
      path: basePath + spec.path + queryString(spec.query),
      headers,
      agent: current.agent,
    });
    req.end(payload);
    return req;
  }

  /**
   * One request/response with a deadline; resolves with the parsed JSON body of a 2xx answer.
   * A GET that fails because the server had just closed the idle keep-alive connection it was
   * sent on (the request never reached the server) is sent once more on a fresh connection.
   */
  async function call<R>(spec: RequestSpec): Promise<R> {
    try {
      return await callOnce<R>(spec);
    } catch (err) {
      if (err instanceof StaleConnection && spec.method === 'GET') return callOnce<R>(spec);
      throw err instanceof StaleConnection ? err.error : err;
    }
  }

  async function callOnce<R>(spec: RequestSpec): Promise<R> {
    const req = await start(spec);
    const timeoutMs = spec.timeoutMs ?? defaultTimeoutMs;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        req.destroy(new KeelsonError(ErrorCodes.API_UNREACHABLE, `${spec.method} ${spec.object}: no answer from ${server} within ${timeoutMs} ms`, { object: server }));
      }, timeoutMs);
      const onAbort = () => req.destroy(new KeelsonError(ErrorCodes.API_UNREACHABLE, `${spec.method} ${spec.object}: cancelled`, { object: server }));
      const fail = (err: unknown) => {
        clearTimeout(timer);
        spec.signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      if (spec.signal?.aborted) onAbort();
      else spec.signal?.addEventListener('abort', onAbort, { once: true });
      let answered = false;
      req.on('error', (err) => {
        const error = unreachable(server, spec, err);
        fail(!answered && isStaleConnection(req, err) ? new StaleConnection(error) : error);
      });
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => fail(unreachable(server, spec, err)));
        res.on('close', () => {
          if (!res.complete) fail(unreachable(server, spec, new Error('connection closed before the response ended')));
        });
        res.on('end', () => {
          clearTimeout(timer);
          spec.signal?.removeEventListener('abort', onAbort);
          const body = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code >= 300) {
            reject(new ApiStatusError(statusFromResponse(code, body), spec.object, spec.method));
            return;
          }
          try {
            resolve((body === '' ? undefined : JSON.parse(body)) as R);
          } catch (err) {
            reject(new KeelsonError(ErrorCodes.API_STATUS, `${spec.method} ${spec.object}: response is not JSON: ${errorMessage(err)}`, { object: spec.object, cause: err }));
          }
        });
      });
    });
  }

  function watch<T>(res: ResourceDescriptor<T>, opts: WatchOptions, onEvent: (event: WatchEvent<T>) => void): WatchHandle {
    const spec: RequestSpec = {
      method: 'WATCH',
      path: resourcePath(res, { namespace: opts.namespace }),
      query: {
        watch: 'true',
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        resourceVersion: opts.resourceVersion,
        timeoutSeconds: opts.timeoutSeconds,
        allowWatchBookmarks: opts.allowWatchBookmarks ?? true,
      },
      object: describeObject(res, opts.namespace, undefined),
    };
    let settled = false;
    let req: http.ClientRequest | undefined;
    let abortReason: Error | null | undefined; // undefined: not aborted; null: aborted without error
    let resolveDone!: (end: WatchEnd) => void;
    let rejectDone!: (err: unknown) => void;
    const done = new Promise<WatchEnd>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    let timer: NodeJS.Timeout | undefined;
    const settle = (err: unknown, end?: WatchEnd) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      req?.destroy();
      if (err) rejectDone(err);
      else resolveDone(end ?? 'aborted');
    };

    const run = async (attempt: number): Promise<void> => {
      req = await start({ ...spec, method: 'GET' });
      if (settled || abortReason !== undefined) {
        req.destroy();
        return settle(abortReason, 'aborted');
      }
      const sent = req;
      let answered = false;
      const timeoutMs = defaultTimeoutMs;
      timer = setTimeout(() => {
        settle(new KeelsonError(ErrorCodes.API_UNREACHABLE, `WATCH ${spec.object}: no answer from ${server} within ${timeoutMs} ms`, { object: server }));
      }, timeoutMs);
      sent.on('error', (err) => {
        if (settled || sent !== req) return;
        if (!answered && attempt === 0 && isStaleConnection(sent, err)) {
          if (timer) clearTimeout(timer);
          run(1).catch((e) => settle(e));
          return;
        }
        settle(unreachable(server, spec, err));
      });
      sent.on('response', (response) => {
        answered = true;
        const code = response.statusCode ?? 0;
        if (code !== 200) {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => settle(new ApiStatusError(statusFromResponse(code, Buffer.concat(chunks).toString('utf8')), spec.object, 'WATCH')));
          response.on('error', (err) => settle(unreachable(server, spec, err)));
          return;
        }
        if (timer) clearTimeout(timer);
        timer = undefined;
        opts.onOpen?.();
        const decoder = createJsonLineDecoder((value) => {
          if (settled) return;
          const event = value as WatchEvent<T>;
          if (!event || typeof event !== 'object' || typeof event.type !== 'string' || typeof event.object !== 'object') {
            throw new SyntaxError(`watch stream: not a watch event: ${JSON.stringify(value).slice(0, 200)}`);
          }
          onEvent(event);
        });
        response.on('data', (chunk: Buffer) => {
          if (settled) return;
          opts.onProgress?.(chunk.length);
          try {
            decoder.push(chunk);
          } catch (err) {
            settle(new KeelsonError(ErrorCodes.API_STATUS, `WATCH ${spec.object}: ${errorMessage(err)}`, { object: spec.object, cause: err }));
          }
        });
        response.on('end', () => {
          if (settled) return;
          try {
            decoder.end();
          } catch (err) {
            return settle(new KeelsonError(ErrorCodes.API_STATUS, `WATCH ${spec.object}: ${errorMessage(err)}`, { object: spec.object, cause: err }));
          }
          settle(undefined, 'closed');
        });
        response.on('error', (err) => settle(unreachable(server, spec, err)));
        response.on('close', () => {
          if (!response.complete) settle(unreachable(server, spec, new Error('watch stream closed before its end')));
        });
      });
    };
    run(0).catch((err) => settle(err));

    return {
      abort(reason?: Error) {
        if (settled) return;
        abortReason = reason ?? null;
        if (req) settle(reason, 'aborted');
      },
      done,
    };
  }

  function withKind<T>(res: ResourceDescriptor<T>, obj: T): T {
    const o = obj as KubeObject;
    if (o && typeof o === 'object' && (!o.kind || !o.apiVersion)) return { ...o, kind: o.kind ?? res.kind, apiVersion: o.apiVersion ?? apiVersionOf(res) } as T;
    return obj;
  }

  return {
    server,
    get(res, name, opts) {
      return call({
        method: 'GET',
        path: resourcePath(res, { namespace: opts?.namespace, name, subresource: opts?.subresource }),
        object: describeObject(res, opts?.namespace, name),
        timeoutMs: opts?.timeoutMs,
      });
    },
    async list(res, opts) {
      const result = await call<{ items?: unknown[]; metadata?: ListMeta }>({
        method: 'GET',
        path: resourcePath(res, { namespace: opts?.namespace }),
        query: {
          labelSelector: opts?.labelSelector,
          fieldSelector: opts?.fieldSelector,
          limit: opts?.limit,
          continue: opts?.continue,
          resourceVersion: opts?.resourceVersion,
          resourceVersionMatch: opts?.resourceVersionMatch,
        },
        object: describeObject(res, opts?.namespace, undefined),
        timeoutMs: opts?.timeoutMs,
        signal: opts?.signal,
      });
      // List items carry no kind/apiVersion on the wire; fill them so consumers see whole objects.
      const items = (result?.items ?? []).map((item) => withKind(res, item as never));
      return { items, metadata: result?.metadata ?? {} };
    },
    create(res, obj, opts) {
      const namespace = namespaceOf(obj, opts);
      return call({
        method: 'POST',
        path: resourcePath(res, { namespace }),
        query: { fieldManager: opts?.fieldManager, dryRun: opts?.dryRun ? 'All' : undefined },
        body: withKind(res, obj),
        object: describeObject(res, namespace, (obj as KubeObject).metadata?.name ?? (obj as KubeObject).metadata?.generateName),
        timeoutMs: opts?.timeoutMs,
      });
    },
    update(res, obj, opts) {
      const namespace = namespaceOf(obj, opts);
      const name = (obj as KubeObject).metadata?.name;
      if (!name) return Promise.reject(new KeelsonError(ErrorCodes.API_STATUS, `PUT ${res.kind}: object has no metadata.name`, { object: res.kind }));
      return call({
        method: 'PUT',
        path: resourcePath(res, { namespace, name, subresource: opts?.subresource }),
        query: { fieldManager: opts?.fieldManager, dryRun: opts?.dryRun ? 'All' : undefined },
        body: withKind(res, obj),
        object: describeObject(res, namespace, name),
        timeoutMs: opts?.timeoutMs,
      });
    },
    updateStatus(res, obj, opts) {
      return this.update(res, obj, { ...opts, subresource: 'status' });
    },
    patch(res, name, patch, opts) {
      return call({
        method: 'PATCH',
        path: resourcePath(res, { namespace: opts.namespace, name, subresource: opts.subresource }),
        query: { fieldManager: opts.fieldManager, dryRun: opts.dryRun ? 'All' : undefined },
        body: patch,
        contentType: PATCH_CONTENT_TYPES[opts.type],
        object: describeObject(res, opts.namespace, name),
        timeoutMs: opts.timeoutMs,
      });
    },
    delete(res, name, opts) {
      return call({
        method: 'DELETE',
        path: resourcePath(res, { namespace: opts?.namespace, name }),
        body: opts?.options ? { kind: 'DeleteOptions', apiVersion: 'v1', ...opts.options } : undefined,
        object: describeObject(res, opts?.namespace, name),
        timeoutMs: opts?.timeoutMs,
      });
    },
    watch,
    setCredentials(credentials) {
      const old = transport.agent;
      transport = { agent: makeAgent(credentials), credentials };
      fileToken = undefined;
      // Idle connections still speak with the old certificate: close them. Busy ones (watches)
      // finish on their own, at the latest when the server ends the watch.
      for (const sockets of Object.values(old.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
      old.on('free', (socket: import('node:net').Socket) => socket.destroy());
      logger.info({ server }, 'apiserver client credentials replaced');
    },
    close() {
      closed = true;
      transport.agent.destroy();
    },
  };
}
