/**
 * HTTP endpoints: proxy health (`/healthz`, `/livez`), metrics (`/metrics`, `/proxyMode`) and the
 * per-Service health-check node ports for `externalTrafficPolicy: Local`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProxyError, ProxyErrorCodes } from './errors';

export interface Listening {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) throw new ProxyError(ProxyErrorCodes.CONFIG_INVALID, `not host:port: ${addr}`, { object: addr });
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: Number(m[2]) };
}

export function listen(addr: string, handler: (path: string) => { status: number; body: string; type?: string }): Promise<Listening> {
  const { host, port } = splitHostPort(addr);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const out = handler(path);
    res.writeHead(out.status, { 'content-type': out.type ?? 'application/json', 'x-content-type-options': 'nosniff' });
    res.end(out.body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new ProxyError(ProxyErrorCodes.HEALTH_BIND_FAILED, `cannot listen on ${addr}: ${e.message}`, { object: addr, cause: e })));
    server.listen(port, host, () => {
      const actual = (server.address() as AddressInfo).port;
      resolve({
        server,
        port: actual,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

/** One health-check node port server per Service with `externalTrafficPolicy: Local`. */
export function createServiceHealthServers(bindHost: string) {
  const servers = new Map<number, { listening?: Listening; service: string; localEndpoints: number }>();
  return {
    /** Brings servers in line with `wanted` (port → service and local endpoint count). */
    async sync(wanted: Map<number, { service: string; localEndpoints: number }>, onError: (port: number, err: Error) => void) {
      for (const [port, s] of servers) {
        if (!wanted.has(port)) {
          servers.delete(port);
          await s.listening?.close();
        }
      }
      for (const [port, w] of wanted) {
        const existing = servers.get(port);
        if (existing) {
          existing.service = w.service;
          existing.localEndpoints = w.localEndpoints;
          continue;
        }
        const entry: { listening?: Listening; service: string; localEndpoints: number } = { ...w };
        servers.set(port, entry);
        try {
          entry.listening = await listen(`${bindHost}:${port}`, () => {
            const [namespace, name] = entry.service.split('/');
            const body = JSON.stringify({ service: { namespace, name }, localEndpoints: entry.localEndpoints, serviceProxyHealthy: true });
            return { status: entry.localEndpoints > 0 ? 200 : 503, body };
          });
        } catch (err) {
          onError(port, err as Error);
        }
      }
    },
    async close() {
      for (const s of servers.values()) await s.listening?.close();
      servers.clear();
    },
    ports: () => [...servers.keys()],
  };
}
