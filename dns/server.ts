/**
 * The DNS sockets: UDP and TCP on each listen address (never on all interfaces). TCP carries several
 * queries per connection (RFC 7766), answered as they complete; connections are bounded in number,
 * in pending queries and in idle time, so a slow or hostile client cannot stall others.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { DnsError, DnsErrorCodes } from './errors';
import { isIPv6 } from './ip';
import type { PacketHandler } from './query';

export interface DnsServerOptions {
  addresses: string[];
  port: number;
  handle: PacketHandler;
  logger: Logger;
  maxTcpConnections: number;
  tcpIdleTimeoutMs: number;
}

export interface BoundAddress { address: string; port: number }

export interface DnsServer {
  start(): Promise<void>;
  /**
   * Drains, then closes: new queries are no longer read and no new TCP connection is accepted, the
   * answers in flight (forwarded queries) are still sent for up to `drainMs` (default 1000), then
   * every socket closes.
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  bound(): BoundAddress[];
  listening(): boolean;
}

const MAX_TCP_PENDING = 64;
const DEFAULT_DRAIN_MS = 1000;

function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const kind = typeof family === 'number' ? family : (family as { family?: number } | undefined)?.family;
  callback(null, address, kind === 6 || address.includes(':') ? 6 : 4);
}

export function createDnsServer(opts: DnsServerOptions): DnsServer {
  const udp: dgram.Socket[] = [];
  const tcp: net.Server[] = [];
  const conns = new Set<net.Socket>();
  const bound: BoundAddress[] = [];
  let up = false;
  let draining = false;
  /** Asynchronous answers not yet sent; stop() waits for them while draining. */
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    const done = () => void inFlight.delete(p);
    p.then(done, done);
    return p;
  };

  function onUdp(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let out;
    try {
      out = opts.handle(msg, 'udp');
    } catch (err) {
      opts.logger.error({ err, peer: `${rinfo.address}:${rinfo.port}` }, 'dns query failed');
      return;
    }
    if (out === undefined) return;
    // Most answers are synchronous: send at once, no closure or promise per packet.
    if (!(out instanceof Promise)) {
      if (up) sock.send(out, rinfo.port, rinfo.address);
      return;
    }
    track(out).then((buf) => {
      if (buf && up) sock.send(buf, rinfo.port, rinfo.address);
    }, () => {});
  }

  function onTcp(conn: net.Socket): void {
    if (conns.size >= opts.maxTcpConnections) {
      conn.destroy();
      return;
    }
    conns.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(opts.tcpIdleTimeoutMs, () => conn.destroy());
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => {});
    let pending = 0;
    let buffered: Buffer = Buffer.alloc(0);
    const write = (buf: Buffer | undefined) => {
      pending--;
      if (pending < MAX_TCP_PENDING && conn.isPaused()) conn.resume();
      if (!buf || conn.destroyed) return;
      const frame = Buffer.allocUnsafe(buf.length + 2);
      frame.writeUInt16BE(buf.length, 0);
      buf.copy(frame, 2);
      conn.write(frame);
    };
    conn.on('data', (chunk: Buffer) => {
      if (draining) return;
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (len < 12) {
          conn.destroy(); // not a DNS message: nothing sensible to answer
          return;
        }
        if (buffered.length < 2 + len) break;
        const packet = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        pending++;
        let out;
        try {
          out = opts.handle(packet, 'tcp');
        } catch (err) {
          opts.logger.error({ err, peer: `${conn.remoteAddress}:${conn.remotePort}` }, 'dns query failed');
          out = undefined;
        }
        if (out instanceof Promise) track(out).then(write, () => write(undefined));
        else write(out);
      }
      if (pending >= MAX_TCP_PENDING) conn.pause();
    });
  }

  async function listenUdp(address: string): Promise<dgram.Socket> {
    // Replies go to the sender's address, always an IP literal: resolve it synchronously instead of
    // through dns.lookup, which costs a closure and a nextTick per packet.
    const sock = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(opts.port, address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    try {
      sock.setRecvBufferSize(4 * 1024 * 1024);
      sock.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // best effort: the kernel caps it
    }
    sock.on('error', (err) => opts.logger.warn({ err, address }, 'dns udp socket error'));
    sock.on('message', (msg, rinfo) => onUdp(sock, msg, rinfo));
    return sock;
  }

  async function listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer(onTcp);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: address, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => opts.logger.warn({ err, address }, 'dns tcp server error'));
    return server;
  }

  return {
    async start() {
      try {
        for (const address of opts.addresses) {
          const u = await listenUdp(address);
          udp.push(u);
          const port = u.address().port;
          tcp.push(await listenTcp(address, port));
          bound.push({ address, port });
          opts.logger.info({ address, port }, 'dns listening on udp and tcp');
        }
        up = true;
      } catch (err) {
        await this.stop();
        const e = err as NodeJS.ErrnoException;
        throw new DnsError(DnsErrorCodes.DNS_LISTEN_FAILED, `cannot listen for DNS: ${e.message}`, { object: `${opts.addresses.join(',')}:${opts.port}`, cause: err });
      }
    },
    async stop(options = {}) {
      if (up && !draining) {
        draining = true;
        for (const s of udp) s.removeAllListeners('message');
        const closed = tcp.map((s) => new Promise<void>((r) => s.close(() => r())));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...inFlight]),
          new Promise<void>((r) => (timer = setTimeout(r, options.drainMs ?? DEFAULT_DRAIN_MS))),
        ]);
        clearTimeout(timer);
        // TCP: flush the answers written, then close; a peer that does not close is cut after a moment.
        for (const c of conns) c.end();
        await Promise.race([Promise.all(closed), new Promise<void>((r) => (timer = setTimeout(r, 200)))]);
        clearTimeout(timer);
        up = false;
        for (const c of conns) c.destroy();
        conns.clear();
        await Promise.all(udp.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
        await Promise.all(closed);
        tcp.length = 0;
        bound.length = 0;
        draining = false;
        return;
      }
      up = false;
      for (const c of conns) c.destroy();
      conns.clear();
      await Promise.all(udp.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
      await Promise.all(tcp.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
      bound.length = 0;
    },
    bound: () => [...bound],
    listening: () => up,
  };
}
