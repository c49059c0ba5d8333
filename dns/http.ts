/** /health (:8080), /ready (:8181) and Prometheus /metrics (:9153) of the DNS component. */
import http from 'node:http';
import type { Logger } from 'pino';
import { DnsError, DnsErrorCodes } from './errors';

export interface Route { path: string; address: string; port: number; handle: () => { status: number; body: string; type?: string } }
export interface HttpEndpoints {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** path → bound port */
  ports(): Record<string, number>;
}

export function createHttpEndpoints(routes: Route[], logger: Logger): HttpEndpoints {
  const servers: http.Server[] = [];
  const ports: Record<string, number> = {};
  return {
    async start() {
      // Routes on the same fixed address:port share one server; port 0 gets one server per route.
      const groups = new Map<string, Route[]>();
      for (const r of routes) {
        const key = r.port === 0 ? `${r.address}:0:${r.path}` : `${r.address}:${r.port}`;
        groups.set(key, [...(groups.get(key) ?? []), r]);
      }
      for (const group of groups.values()) {
        const { address, port } = group[0]!;
        const server = http.createServer((req, res) => {
          const path = (req.url ?? '/').split('?')[0];
          const route = group.find((r) => r.path === path);
          if (!route || (req.method !== 'GET' && req.method !== 'HEAD')) {
            res.writeHead(404).end();
            return;
          }
          const out = route.handle();
          res.writeHead(out.status, { 'content-type': out.type ?? 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : out.body);
        });
        server.keepAliveTimeout = 5000;
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, address, () => { server.off('error', reject); resolve(); });
          });
        } catch (err) {
          await this.stop();
          throw new DnsError(DnsErrorCodes.DNS_LISTEN_FAILED, `cannot listen for ${group.map((r) => r.path).join(',')}: ${(err as Error).message}`, { object: `${address}:${port}`, cause: err });
        }
        const bound = (server.address() as { port: number }).port;
        for (const r of group) ports[r.path] = bound;
        servers.push(server);
        logger.info({ address, port: bound, paths: group.map((r) => r.path).join(',') }, 'dns http endpoint listening');
      }
    },
    async stop() {
      await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
    },
    ports: () => ({ ...ports }),
  };
}
