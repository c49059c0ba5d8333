/**
 * The forward stage: every name the earlier stages do not answer goes to an upstream, over UDP with
 * a TCP retry when the answer is truncated. Upstreams are tried in order; one that fails `maxFails`
 * times in a row is marked down and probed (". NS") until it answers again. Loop detection: at
 * start each upstream gets a unique probe name; if that name comes back to our own server, the
 * upstream forwards to us (e.g. systemd-resolved pointing back) and is never used.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { Class, decodeMessage, encodeMessage, type Message, type Question, Rcode, Type } from './codec';
import { DnsErrorCodes } from './errors';
import { type DnsRequest, reply, type Stage } from './handler';
import { isIPv6 } from './ip';
import type { DnsMetrics } from './metrics';

export interface UpstreamAddress { host: string; port: number }

export interface ForwardOptions {
  upstreams: UpstreamAddress[];
  timeoutMs: number;
  maxFails: number;
  healthCheckIntervalMs: number;
  ednsBufferSize: number;
  logger: Logger;
  metrics?: DnsMetrics;
}

export interface UpstreamStatus { upstream: string; healthy: boolean; loop: boolean; fails: number }

export interface ForwardStage extends Stage {
  start(): void;
  stop(): Promise<void>;
  /** Sends a loop probe to each upstream (call once our own server listens). */
  probeLoops(): void;
  /** Our server saw `qname`: if it is one of our loop probes, that upstream loops. */
  observe(qname: string): void;
  upstreams(): UpstreamStatus[];
}

interface Upstream extends UpstreamAddress { key: string; fails: number; healthy: boolean; loop: boolean; probe: string }
interface Pending { resolve(m: Message): void; reject(e: Error): void; timer: NodeJS.Timeout; upstream: Upstream; question: Question }

const LOOP_SUFFIX = '.keelson-loop-probe';
const MAX_ATTEMPTS = 3;

export function createForwardStage(opts: ForwardOptions): ForwardStage {
  const ups: Upstream[] = opts.upstreams.map((u) => ({
    ...u, key: isIPv6(u.host) ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`, fails: 0, healthy: true, loop: false,
    probe: `${randomBytes(6).toString('hex')}.${randomBytes(6).toString('hex')}${LOOP_SUFFIX}`,
  }));
  const pending = new Map<number, Pending>();
  const sockets: { udp4?: dgram.Socket; udp6?: dgram.Socket } = {};
  let healthTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  function socketFor(u: Upstream): dgram.Socket {
    const kind = isIPv6(u.host) ? 'udp6' : 'udp4';
    let s = sockets[kind];
    if (!s) {
      s = dgram.createSocket(kind);
      s.on('message', onResponse);
      s.on('error', (err) => opts.logger.warn({ err }, 'dns forward socket error'));
      s.unref();
      sockets[kind] = s;
    }
    return s;
  }

  function onResponse(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (buf.length < 12) return;
    const id = buf.readUInt16BE(0);
    const p = pending.get(id);
    if (!p || rinfo.port !== p.upstream.port || rinfo.address !== p.upstream.host) return;
    const d = decodeMessage(buf);
    if (!d.ok) return; // a spoofed or broken answer: keep waiting for the real one until timeout
    const q = d.message.questions[0];
    if (!d.message.qr || !q || q.type !== p.question.type || q.name.toLowerCase() !== p.question.name.toLowerCase()) return;
    pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(d.message);
  }

  function freeId(): number {
    for (;;) {
      const id = randomInt(0, 65536);
      if (!pending.has(id)) return id;
    }
  }

  function buildQuery(question: Question, cd: boolean, id: number): Buffer {
    return encodeMessage({
      id, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd, rcode: 0,
      questions: [question], answers: [], authorities: [], additionals: [],
      edns: { udpSize: opts.ednsBufferSize, version: 0, dnssecOk: false, options: new Uint8Array(0) },
    });
  }

  function exchangeUdp(u: Upstream, question: Question, cd: boolean): Promise<Message> {
    return new Promise((resolve, reject) => {
      const id = freeId();
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`upstream ${u.key} timed out`));
      }, opts.timeoutMs);
      pending.set(id, { resolve, reject, timer, upstream: u, question });
      socketFor(u).send(buildQuery(question, cd, id), u.port, u.host, (err) => {
        if (!err) return;
        pending.delete(id);
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  function exchangeTcp(u: Upstream, question: Question, cd: boolean): Promise<Message> {
    return new Promise((resolve, reject) => {
      const id = randomInt(0, 65536);
      const q = buildQuery(question, cd, id);
      const frame = Buffer.alloc(q.length + 2);
      frame.writeUInt16BE(q.length, 0);
      q.copy(frame, 2);
      const sock = net.connect({ host: u.host, port: u.port });
      let buf = Buffer.alloc(0);
      const done = (err: Error | undefined, msg?: Message) => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err); else resolve(msg!);
      };
      const timer = setTimeout(() => done(new Error(`upstream ${u.key} timed out over tcp`)), opts.timeoutMs);
      sock.on('connect', () => sock.write(frame));
      sock.on('error', (err) => done(err));
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        const d = decodeMessage(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        if (!d.ok || d.message.id !== id) return done(new Error(`bad tcp answer from ${u.key}`));
        done(undefined, d.message);
      });
      sock.on('end', () => done(new Error(`upstream ${u.key} closed the tcp connection`)));
    });
  }

  async function exchange(u: Upstream, question: Question, cd: boolean): Promise<Message> {
    const res = await exchangeUdp(u, question, cd);
    return res.tc ? exchangeTcp(u, question, cd) : res;
  }

  function markFailure(u: Upstream, err: unknown): void {
    u.fails++;
    if (u.healthy && u.fails >= opts.maxFails) {
      u.healthy = false;
      opts.metrics?.upstreamHealthy(u.key, false);
      opts.logger.warn({ upstream: u.key, err, code: DnsErrorCodes.DNS_UPSTREAM_FAILED }, 'dns upstream marked down');
    }
  }

  function markSuccess(u: Upstream): void {
    u.fails = 0;
    if (!u.healthy) {
      u.healthy = true;
      opts.metrics?.upstreamHealthy(u.key, true);
      opts.logger.info({ upstream: u.key }, 'dns upstream is up again');
    }
  }

  function candidates(): Upstream[] {
    const usable = ups.filter((u) => !u.loop);
    const healthy = usable.filter((u) => u.healthy);
    // All down: still try them (the probe may simply not have run yet).
    return (healthy.length ? healthy : usable).slice(0, MAX_ATTEMPTS);
  }

  function healthCheck(): void {
    for (const u of ups) {
      if (u.healthy || u.loop) continue;
      exchangeUdp(u, { name: '', type: Type.NS, class: Class.IN }, false).then(() => markSuccess(u), () => {});
    }
  }

  return {
    name: 'forward',
    async serve(req: DnsRequest) {
      if (req.qname.endsWith(LOOP_SUFFIX)) return reply(req, Rcode.SERVFAIL);
      for (const u of candidates()) {
        const started = process.hrtime.bigint();
        try {
          const res = await exchange(u, req.question, req.query.cd);
          opts.metrics?.forward(u.key, res.rcode, Number(process.hrtime.bigint() - started) / 1e9);
          markSuccess(u);
          const out = reply(req, res.rcode);
          out.answers = res.answers;
          out.authorities = res.authorities;
          out.additionals = res.additionals;
          out.ad = res.ad;
          return out;
        } catch (err) {
          opts.metrics?.forward(u.key, 'error', Number(process.hrtime.bigint() - started) / 1e9);
          markFailure(u, err);
        }
      }
      return reply(req, Rcode.SERVFAIL);
    },
    start() {
      for (const u of ups) opts.metrics?.upstreamHealthy(u.key, true);
      healthTimer = setInterval(healthCheck, opts.healthCheckIntervalMs);
      healthTimer.unref();
    },
    async stop() {
      stopped = true;
      if (healthTimer) clearInterval(healthTimer);
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new Error('forwarder stopped'));
        pending.delete(id);
      }
      await Promise.all(Object.values(sockets).map((s) => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } })));
      delete sockets.udp4;
      delete sockets.udp6;
    },
    probeLoops() {
      if (stopped) return;
      for (const u of ups) exchangeUdp(u, { name: u.probe, type: Type.HINFO, class: Class.IN }, false).catch(() => {});
    },
    observe(qname) {
      if (!qname.endsWith(LOOP_SUFFIX)) return;
      const u = ups.find((x) => x.probe === qname);
      if (!u || u.loop) return;
      u.loop = true;
      opts.logger.error({ upstream: u.key, code: DnsErrorCodes.DNS_FORWARD_LOOP }, 'dns forwarding loop detected: upstream sends our queries back to us; not using it');
    },
    upstreams: () => ups.map((u) => ({ upstream: u.key, healthy: u.healthy, loop: u.loop, fails: u.fails })),
  };
}
