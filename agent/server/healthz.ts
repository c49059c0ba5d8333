/**
 * kubelet's local health endpoint: plain HTTP `/healthz` on healthzBindAddress:healthzPort
 * (default 127.0.0.1:10248), `ok` (200) while the kubelet is healthy, else 500 with the reason.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface HealthzServer {
  /** Resolves once listening; rejects when the address cannot be bound. */
  listen(): Promise<void>;
  /** The bound port (useful with port 0). */
  port(): number;
  close(): Promise<void>;
}

export interface HealthzOptions {
  address: string;
  port: number;
  healthy(): { ok: boolean; message?: string };
  logger: Logger;
}

export function createHealthzServer(options: HealthzOptions): HealthzServer {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/healthz' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    const { ok, message } = options.healthy();
    res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
    res.end(ok ? 'ok' : `unhealthy${message ? `: ${message}` : ''}`);
  });
  return {
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', (err) => {
          options.logger.error({ err, address: `${options.address}:${options.port}` }, 'kubelet healthz cannot listen');
          reject(err);
        });
        server.listen(options.port, options.address, () => resolve());
      });
    },
    port: () => (server.address() as AddressInfo | null)?.port ?? options.port,
    close() {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
