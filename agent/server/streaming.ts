/**
 * exec, attach and port-forward: the CRI runtime serves the stream itself (CRI Exec/Attach/
 * PortForward answer with a one-time URL on the runtime's streaming server, e.g. containerd's
 * `http://127.0.0.1:<port>/exec/<token>`), and the kubelet proxies the client's upgrade request
 * (SPDY/3.1, or WebSocket `v4.channel.k8s.io` and friends) to it. The proxy is at the byte level:
 * the request line and headers are rewritten for the runtime's URL, then both connections are
 * piped, so every streaming protocol the runtime speaks works unchanged, and the runtime's own
 * answer (101 Switching Protocols or an error) reaches the client.
 */
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';

/** Opens a byte stream to the runtime's streaming server (a TCP connection by default). */
export type StreamDialer = (url: URL) => Duplex;

export const dialTcp: StreamDialer = (url) => connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) });

/** Request headers that are about the client's hop or credentials, not the stream. */
const DROPPED = new Set(['host', 'authorization', 'proxy-authorization', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);

/** The request head for the runtime: same method and protocol headers, the runtime's path and host. */
export function upstreamRequestHead(req: IncomingMessage, target: URL): Buffer {
  const lines = [`${req.method ?? 'GET'} ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (DROPPED.has(raw[i]!.toLowerCase())) continue;
    lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/**
 * Connects the client's upgraded socket to the runtime's streaming URL. Resolves when both sides
 * are closed. Only `http:` URLs are supported (containerd and CRI-O serve plain HTTP on loopback).
 */
export function proxyUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, target: URL, dial: StreamDialer = dialTcp): Promise<void> {
  return new Promise((resolve) => {
    if (target.protocol !== 'http:') {
      writeError(client, 502, `streaming URL ${target.protocol}//${target.host} is not supported`);
      resolve();
      return;
    }
    const upstream = dial(target);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      client.destroy();
      upstream.destroy();
      resolve();
    };
    upstream.once('error', () => {
      if (!connected) writeError(client, 502, `cannot reach the runtime's streaming server ${target.host}`);
      finish();
    });
    client.once('error', finish);
    upstream.once('close', finish);
    client.once('close', finish);
    let connected = false;
    const start = () => {
      connected = true;
      upstream.write(upstreamRequestHead(req, target));
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    };
    // a net.Socket signals 'connect'; other dialers hand back a stream that is ready at once
    if ('connecting' in upstream && (upstream as { connecting: boolean }).connecting) upstream.once('connect', start);
    else start();
  });
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** A plain HTTP error on a socket that was handed over for an upgrade. */
export function writeError(socket: Duplex, code: number, message: string): void {
  if (socket.destroyed) return;
  const body = Buffer.from(message + '\n');
  socket.end(`HTTP/1.1 ${code} ${REASONS[code] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.toString()}`);
}
