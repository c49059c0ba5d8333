/**
 * The kubelet API on HTTPS address:port (default 0.0.0.0:10250), what `kubectl logs/exec/attach/
 * port-forward` reach through the apiserver and what metrics-server scrapes:
 *
 *   GET  /healthz                                 ok
 *   GET  /pods                                    PodList of the pods this kubelet runs
 *   GET  /metrics                                 Prometheus text (metrics.ts)
 *   GET  /stats/summary                           stats.k8s.io Summary (stats.ts)
 *   GET  /containerLogs/<ns>/<pod>/<container>    container-logs.ts
 *   GET|POST /exec/<ns>/<pod>[/<uid>]/<container>?command=…&stdin&stdout&stderr&tty   (upgrade)
 *   GET|POST /attach/<ns>/<pod>[/<uid>]/<container>?stdin&stdout&stderr&tty           (upgrade)
 *   GET|POST /portForward/<ns>/<pod>[/<uid>]                                           (upgrade)
 *
 * Every request is authenticated and authorized first (auth.ts). Upgrades are proxied to the CRI
 * runtime's streaming server (streaming.ts). The serving certificate is the given one or a
 * self-signed one under <rootDir>/pki (self-signed.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { CriClient } from '../../cri/client';
import type * as T from '../../cri/types';
import type { Component, ComponentHealth } from '../component';
import { ErrorCodes, errorMessage, KeelsonError } from '../errors';
import { authenticate, requestAttributes, type ApiReviewer, type UserInfo } from './auth';
import { writeContainerLog, type LogOptions } from '../pods/container-logs';
import { createKubeletMetrics } from './metrics';
import { ensureSelfSignedCertificate } from './self-signed';
import { findPod, podContainerNames, type KubeletApiSource } from './source';
import { createStatsProvider } from './stats';
import { dialTcp, proxyUpgrade, writeError, type StreamDialer } from './streaming';

export interface KubeletServerOptions {
  nodeName: string;
  /** KubeletConfiguration address/port. */
  address: string;
  port: number;
  /** The serving certificate's names besides nodeName and localhost (the node's IPs). */
  nodeIPs?: string[];
  rootDir: string;
  podLogsDir: string;
  /** PEM bundle that signs client certificates (the cluster CA); none: certificates are not accepted. */
  clientCA?: string | Buffer;
  /** TokenReview/SubjectAccessReview; none: bearer tokens are refused and nothing is authorized. */
  reviewer?: ApiReviewer;
  /** A serving certificate to use instead of the self-signed one. */
  tls?: { certPem: string | Buffer; keyPem: string | Buffer };
  cri: CriClient;
  source: KubeletApiSource;
  logger: Logger;
  /** How to reach the runtime's streaming server (default: TCP to the URL's host and port). */
  dialStream?: StreamDialer;
}

export interface KubeletServer extends Component {
  /** The bound port (useful with port 0). */
  port(): number;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const truthy = (v: string | null) => v === 'true' || v === '1';

function intParam(query: URLSearchParams, name: string, min: number): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new HttpError(400, `invalid ${name} ${JSON.stringify(raw)}: must be an integer >= ${min}`);
  return n;
}

export function parseLogOptions(query: URLSearchParams, now: number): LogOptions & { previous: boolean } {
  const sinceSeconds = intParam(query, 'sinceSeconds', 1);
  const sinceTime = query.get('sinceTime');
  if (sinceSeconds !== undefined && sinceTime) throw new HttpError(400, 'at most one of sinceTime or sinceSeconds may be specified');
  let sinceMs: number | undefined;
  if (sinceSeconds !== undefined) sinceMs = now - sinceSeconds * 1000;
  else if (sinceTime) {
    sinceMs = Date.parse(sinceTime);
    if (Number.isNaN(sinceMs)) throw new HttpError(400, `invalid sinceTime ${JSON.stringify(sinceTime)}: must be RFC 3339`);
  }
  const tailLines = intParam(query, 'tailLines', 0);
  const limitBytes = intParam(query, 'limitBytes', 1);
  return {
    follow: truthy(query.get('follow')),
    previous: truthy(query.get('previous')),
    timestamps: truthy(query.get('timestamps')),
    ...(tailLines !== undefined ? { tailLines } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    ...(limitBytes !== undefined ? { limitBytes } : {}),
  };
}

const byNewest = (a: { created_at: string }, b: { created_at: string }) => {
  const d = BigInt(b.created_at || '0') - BigInt(a.created_at || '0');
  return d > 0n ? 1 : d < 0n ? -1 : 0;
};

export function createKubeletServer(options: KubeletServerOptions): KubeletServer {
  const logger = options.logger.child({ component: 'kubelet-api' });
  const { cri, source, nodeName } = options;
  const dial = options.dialStream ?? dialTcp;
  const metrics = createKubeletMetrics({ cri, pods: () => source.pods() });
  const stats = createStatsProvider({ cri, nodeName, rootDir: options.rootDir, podLogsDir: options.podLogsDir, pods: () => source.pods() });
  const unsubscribe = source.onPodStatus?.((pod, status) => metrics.podStatusChanged(pod, status));
  let server: Server | undefined;
  /** Upgraded connections are the server's no more: closed by stop() themselves. */
  const streams = new Set<Duplex>();
  let listenError: string | undefined;

  function lookupPod(namespace: string, name: string, uid?: string): Pod {
    const pod = findPod(source, namespace, name, uid);
    if (!pod) throw new HttpError(404, `pod "${name}" does not exist in namespace "${namespace}"`);
    return pod;
  }

  function checkContainer(pod: Pod, container: string) {
    if (!podContainerNames(pod).includes(container)) throw new HttpError(404, `container "${container}" not found in pod "${pod.metadata!.name}"`);
  }

  /** The pod's runtime instances of a container, newest first. */
  async function containerInstances(pod: Pod, container: string): Promise<T.Container[]> {
    const { containers } = await cri.listContainers({
      filter: { label_selector: { 'io.kubernetes.pod.uid': pod.metadata!.uid!, 'io.kubernetes.container.name': container } },
    });
    return containers.sort(byNewest);
  }

  async function runningContainer(pod: Pod, container: string): Promise<T.Container> {
    checkContainer(pod, container);
    const running = (await containerInstances(pod, container)).find((c) => c.state === 'CONTAINER_RUNNING');
    if (!running) throw new HttpError(400, `container "${container}" in pod "${pod.metadata!.name}" is not running`);
    return running;
  }

  async function serveContainerLogs(req: IncomingMessage, res: ServerResponse, parts: string[], query: URLSearchParams) {
    if (parts.length !== 3) throw new HttpError(400, 'expected /containerLogs/<namespace>/<pod>/<container>');
    const [namespace, name, container] = parts as [string, string, string];
    const opts = parseLogOptions(query, Date.now());
    const pod = lookupPod(namespace, name);
    checkContainer(pod, container);
    const instances = await containerInstances(pod, container);
    const instance = opts.previous ? instances[1] : instances[0];
    if (!instance) {
      throw new HttpError(400, opts.previous ? `previous terminated container "${container}" in pod "${name}" not found` : `container "${container}" in pod "${name}" is waiting to start`);
    }
    const { status } = await cri.containerStatus({ container_id: instance.id });
    if (!status?.log_path) throw new HttpError(404, `container "${container}" in pod "${name}" has no log file`);
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private', 'X-Content-Type-Options': 'nosniff' });
    if (opts.follow) res.flushHeaders();
    let closed = false;
    res.on('close', () => (closed = true));
    try {
      await writeContainerLog(
        status.log_path,
        opts,
        { write: (chunk) => res.write(chunk), drain: () => new Promise((r) => res.once('drain', r)), closed: () => closed || res.destroyed },
        {
          running: async () => {
            try {
              return (await cri.containerStatus({ container_id: instance.id })).status?.state === 'CONTAINER_RUNNING';
            } catch {
              return false;
            }
          },
        },
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      logger.debug({ pod: `${namespace}/${name}`, container, file: status.log_path }, 'container log file is gone');
    }
    res.end();
  }

  /** Resolves an exec/attach/portForward path to the runtime's streaming URL. */
  async function streamingUrl(kind: string, parts: string[], query: URLSearchParams): Promise<URL> {
    if (kind === 'portForward') {
      if (parts.length !== 2 && parts.length !== 3) throw new HttpError(400, 'expected /portForward/<namespace>/<pod>[/<uid>]');
      const pod = lookupPod(parts[0]!, parts[1]!, parts[2]);
      const { items } = await cri.listPodSandbox({ filter: { label_selector: { 'io.kubernetes.pod.uid': pod.metadata!.uid! }, state: { state: 'SANDBOX_READY' } } });
      const sandbox = items.sort(byNewest)[0];
      if (!sandbox) throw new HttpError(400, `pod "${parts[1]}" has no running sandbox`);
      const ports = query.getAll('port').flatMap((p) => p.split(',')).filter(Boolean).map(Number);
      if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new HttpError(400, 'invalid port');
      return new URL((await cri.portForward({ pod_sandbox_id: sandbox.id, port: ports })).url);
    }
    if (parts.length !== 3 && parts.length !== 4) throw new HttpError(400, `expected /${kind}/<namespace>/<pod>[/<uid>]/<container>`);
    const [namespace, name] = parts as [string, string];
    const container = parts[parts.length - 1]!;
    const pod = lookupPod(namespace, name, parts.length === 4 ? parts[2] : undefined);
    const target = await runningContainer(pod, container);
    const streams = { stdin: truthy(query.get('input')) || truthy(query.get('stdin')), stdout: truthy(query.get('output')) || truthy(query.get('stdout')), stderr: truthy(query.get('error')) || truthy(query.get('stderr')), tty: truthy(query.get('tty')) };
    if (!streams.stdin && !streams.stdout && !streams.stderr) throw new HttpError(400, 'you must specify at least 1 of stdin, stdout, stderr');
    if (streams.tty && streams.stderr) streams.stderr = false; // a tty merges stderr into stdout
    if (kind === 'exec') {
      const cmd = query.getAll('command');
      if (cmd.length === 0) throw new HttpError(400, 'you must specify a command');
      return new URL((await cri.exec({ container_id: target.id, cmd, ...streams })).url);
    }
    return new URL((await cri.attach({ container_id: target.id, ...streams })).url);
  }

  /** Authenticates and authorizes; answers the refusal itself and returns undefined when refused. */
  async function admit(req: IncomingMessage, path: string, refuse: (code: number, message: string) => void): Promise<UserInfo | undefined> {
    const noReviewer: ApiReviewer = {
      reviewToken: async () => undefined,
      authorize: async () => ({ allowed: false, reason: 'no authorizer configured' }),
    };
    const reviewer = options.reviewer ?? noReviewer;
    const authn = await authenticate(req, reviewer);
    if (!('user' in authn)) {
      refuse(401, 'Unauthorized');
      return undefined;
    }
    const attrs = requestAttributes(req.method, path, nodeName);
    const decision = await reviewer.authorize(authn.user, attrs);
    if (!decision.allowed) {
      logger.debug({ user: authn.user.username, verb: attrs.verb, subresource: attrs.subresource, reason: decision.reason }, 'kubelet API request forbidden');
      refuse(403, `Forbidden (user=${authn.user.username}, verb=${attrs.verb}, resource=nodes, subresource(s)=[${attrs.subresource}])`);
      return undefined;
    }
    return authn.user;
  }

  function splitPath(url: string | undefined): { path: string; parts: string[]; query: URLSearchParams } {
    const u = new URL(url ?? '/', 'https://kubelet');
    const parts = u.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    return { path: u.pathname, parts, query: u.searchParams };
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const { path, parts, query } = splitPath(req.url);
    metrics.requestServed(req.method ?? 'GET', path);
    const refuse = (code: number, message: string) => res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' }).end(message + '\n');
    try {
      const user = await admit(req, path, refuse);
      if (!user) return;
      const [head, ...rest] = parts;
      const method = req.method ?? 'GET';
      if (method !== 'GET' && method !== 'HEAD' && !['exec', 'attach', 'portForward'].includes(head ?? '')) throw new HttpError(405, `method ${method} not allowed`);
      switch (head) {
        case 'healthz':
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
          return;
        case 'pods':
          sendJson(res, { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: source.pods() });
          return;
        case 'metrics':
          if (rest.length) break;
          res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(await metrics.render());
          return;
        case 'stats':
          if (rest[0] !== 'summary' || rest.length !== 1) break;
          sendJson(res, await stats.summary({ onlyCpuAndMemory: truthy(query.get('only_cpu_and_memory')) }));
          return;
        case 'containerLogs':
          await serveContainerLogs(req, res, rest, query);
          return;
        case 'exec':
        case 'attach':
        case 'portForward':
          throw new HttpError(400, 'Upgrade request required');
      }
      throw new HttpError(404, '404 page not found');
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) logger.warn({ err, path }, 'kubelet API request failed');
      if (res.headersSent) res.destroy();
      else refuse(status, errorMessage(err));
    }
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const { path, parts, query } = splitPath(req.url);
    metrics.requestServed(req.method ?? 'GET', path);
    socket.on('error', () => socket.destroy());
    streams.add(socket);
    socket.once('close', () => streams.delete(socket));
    try {
      const user = await admit(req, path, (code, message) => writeError(socket, code, message));
      if (!user) return;
      const [kind, ...rest] = parts;
      if (kind !== 'exec' && kind !== 'attach' && kind !== 'portForward') throw new HttpError(404, '404 page not found');
      const target = await streamingUrl(kind, rest, query);
      logger.info({ pod: `${rest[0]}/${rest[1]}`, user: user.username, stream: kind }, `${kind} session`);
      await proxyUpgrade(req, socket, head, target, dial);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) logger.warn({ err, path }, 'kubelet API streaming request failed');
      writeError(socket, status, errorMessage(err));
    }
  }

  return {
    name: 'kubelet-api',
    port: () => (server?.address() as AddressInfo | null)?.port ?? options.port,
    async start() {
      let tls = options.tls;
      if (!tls) {
        const names = [...new Set([nodeName, hostname().toLowerCase(), 'localhost'])];
        const ips = [...new Set(['127.0.0.1', ...(options.nodeIPs ?? [])])];
        const made = ensureSelfSignedCertificate(join(options.rootDir, 'pki'), { commonName: nodeName, dnsNames: names, ipAddresses: ips });
        if (made.created) logger.info({ cert: made.certPath }, 'made a self-signed serving certificate');
        tls = made;
      }
      const srv = createServer({
        cert: tls.certPem,
        key: tls.keyPem,
        ...(options.clientCA ? { ca: options.clientCA } : {}),
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      });
      srv.on('request', (req, res) => void handle(req, res));
      srv.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void handleUpgrade(req, socket, head));
      srv.on('tlsClientError', (err, socket: TLSSocket) => {
        logger.debug({ err: errorMessage(err) }, 'kubelet API TLS handshake failed');
        socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (err) => {
          listenError = errorMessage(err);
          reject(new KeelsonError(ErrorCodes.KUBELET_API_LISTEN, `kubelet API cannot listen on ${options.address}:${options.port}: ${listenError}`, { object: `${options.address}:${options.port}`, cause: err }));
        });
        srv.listen(options.port, options.address, () => resolve());
      });
      server = srv;
      logger.info({ address: `${options.address}:${(srv.address() as AddressInfo).port}` }, 'kubelet API listening');
    },
    async stop() {
      unsubscribe?.();
      const srv = server;
      server = undefined;
      for (const s of streams) s.destroy();
      if (!srv) return;
      await new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      });
    },
    health(): ComponentHealth {
      if (server?.listening) return { name: 'kubelet-api', healthy: true, message: `listening on ${options.address}:${(server.address() as AddressInfo).port}` };
      return { name: 'kubelet-api', healthy: false, message: listenError ? `cannot listen: ${listenError}` : 'not started' };
    },
  };
}

function sendJson(res: ServerResponse, body: unknown) {
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
