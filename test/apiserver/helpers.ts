/** A minimal HTTPS client for the test apiserver's own tests (keelson's real client is agent/kube). */
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TestApiserver } from '../harness/apiserver';

export interface CallOptions {
  body?: unknown;
  contentType?: string;
  /** Bearer token; default the admin token. null: no Authorization header. */
  token?: string | null;
  cert?: { certPem: string; keyPem: string };
  headers?: Record<string, string>;
}

export interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: IncomingMessage['headers'];
}

function open(api: TestApiserver, method: string, path: string, opts: CallOptions) {
  const headers: Record<string, string> = { Accept: 'application/json', ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? api.adminToken : opts.token;
  if (token !== null && !opts.cert) headers.Authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (opts.body !== undefined) {
    payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['Content-Type'] = opts.contentType ?? 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  const req = httpsRequest({
    host: api.host,
    port: api.port,
    method,
    path,
    headers,
    ca: api.caPem,
    cert: opts.cert?.certPem,
    key: opts.cert?.keyPem,
    agent: false,
  });
  if (payload !== undefined) req.write(payload);
  req.end();
  return req;
}

export function call(api: TestApiserver, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = open(api, method, path, opts);
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // plain text (healthz)
        }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
      res.on('error', reject);
    });
  });
}

export interface WatchEvent {
  type: string;
  object: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface WatchStream {
  status: Promise<number>;
  events: WatchEvent[];
  /** Resolves with the events so far once `n` have arrived (rejects after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<WatchEvent[]>;
  /** Resolves when the stream ends: 'end' (clean) or 'error' (aborted). */
  ended: Promise<'end' | 'error'>;
  /** Time of the last byte received. */
  lastData(): number;
  close(): void;
}

export function watch(api: TestApiserver, path: string, opts: CallOptions = {}): WatchStream {
  const events: WatchEvent[] = [];
  const waiters: { n: number; resolve: (e: WatchEvent[]) => void }[] = [];
  let last = Date.now();
  let buffer = '';
  let resolveStatus!: (n: number) => void;
  let resolveEnded!: (how: 'end' | 'error') => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const ended = new Promise<'end' | 'error'>((r) => (resolveEnded = r));
  const req = open(api, 'GET', path, opts);
  const notify = () => {
    for (const w of [...waiters]) {
      if (events.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(events.slice());
      }
    }
  };
  req.on('error', () => resolveEnded('error'));
  req.on('response', (res) => {
    resolveStatus(res.statusCode ?? 0);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      last = Date.now();
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) events.push(JSON.parse(line) as WatchEvent);
      }
      notify();
    });
    res.on('end', () => resolveEnded('end'));
    res.on('aborted', () => resolveEnded('error'));
    res.on('error', () => resolveEnded('error'));
  });
  return {
    status,
    events,
    ended,
    lastData: () => last,
    waitFor(n, timeoutMs = 5000) {
      if (events.length >= n) return Promise.resolve(events.slice());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} events; got ${JSON.stringify(events.map((e) => e.type))}`)), timeoutMs);
        waiters.push({ n, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
    close() {
      req.destroy();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pod(name: string, extra: { namespace?: string; nodeName?: string; labels?: Record<string, string>; phase?: string } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: extra.namespace ?? 'default', labels: extra.labels },
    spec: { nodeName: extra.nodeName, containers: [{ name: 'c', image: 'busybox:1.36' }] },
    ...(extra.phase ? { status: { phase: extra.phase } } : {}),
  };
}
