/**
 * From packet to packet: decode and validate one query (FORMERR, NOTIMP, BADVERS, REFUSED for other
 * classes and zone transfers), run the handler chain, and encode the reply within the client's
 * size (512 bytes without EDNS, its EDNS buffer size capped by ours over UDP, 64 KiB over TCP).
 * Never throws; malformed input gets an error reply when the header could be read, else nothing.
 */
import { Class, decodeMessage, type Edns, EncodeError, encodeMessage, type Message, Rcode, Type } from './codec';
import type { DnsRequest, Handler } from './handler';
import type { DnsMetrics } from './metrics';

export interface PacketHandlerOptions {
  handler: Handler;
  ednsBufferSize: number;
  /** RA flag: set when we recurse (forwarding on). */
  recursionAvailable: boolean;
  metrics?: DnsMetrics;
  /** Sees every valid question name first (forwarding loop detection). */
  observe?: (qname: string) => void;
  onError?: (err: unknown, query: Message) => void;
  /**
   * Response cache: repeated queries (same bytes after the ID) get the same reply bytes with their
   * ID patched in, skipping decode, lookup and encode. Authoritative answers stay valid until the
   * records change (`generation`); others (forwarded, from the cache stage) for at most 1 s and
   * never beyond their smallest TTL. Only synchronous NOERROR/NXDOMAIN answers are kept.
   */
  responseCache?: { size: number; generation: () => number; now?: () => number };
}

interface CachedReply { bytes: Buffer; generation: number; expires: number; type: number; rcode: number }

export type Protocol = 'udp' | 'tcp';
export type PacketHandler = (packet: Uint8Array, protocol: Protocol) => Buffer | undefined | Promise<Buffer | undefined>;

const NO_OPTIONS = new Uint8Array(0);

export function createPacketHandler(opts: PacketHandlerOptions): PacketHandler {
  const rc = opts.responseCache;
  const replies = new Map<string, CachedReply>();
  const now = rc?.now ?? Date.now;

  function remember(packet: Uint8Array, protocol: Protocol, res: Message, out: Buffer | undefined): void {
    if (!rc || !out || (res.rcode !== Rcode.NOERROR && res.rcode !== Rcode.NXDOMAIN)) return;
    let expires = Infinity;
    if (!res.aa) {
      let ttl = 1;
      for (const r of res.answers) ttl = Math.min(ttl, r.ttl);
      for (const r of res.authorities) ttl = Math.min(ttl, r.ttl);
      if (ttl <= 0) return;
      expires = now() + ttl * 1000;
    }
    if (replies.size >= rc.size) replies.clear();
    replies.set(cacheKey(packet, protocol), { bytes: out, generation: rc.generation(), expires, type: res.questions[0]?.type ?? 0, rcode: res.rcode });
  }

  function cacheKey(packet: Uint8Array, protocol: Protocol): string {
    return (protocol === 'tcp' ? 't' : 'u') + Buffer.from(packet.buffer, packet.byteOffset + 2, packet.length - 2).toString('latin1');
  }

  function cached(packet: Uint8Array, protocol: Protocol): Buffer | undefined {
    if (!rc || packet.length < 12 || packet.length > 512) return undefined;
    const key = cacheKey(packet, protocol);
    const hit = replies.get(key);
    if (!hit) return undefined;
    if (hit.generation !== rc.generation() || hit.expires <= now()) {
      replies.delete(key);
      return undefined;
    }
    const out = Buffer.from(hit.bytes);
    out[0] = packet[0]!;
    out[1] = packet[1]!;
    opts.metrics?.request(hit.type, protocol);
    opts.metrics?.response(hit.rcode);
    return out;
  }

  const ourEdns: Edns = { udpSize: opts.ednsBufferSize, version: 0, dnssecOk: false, options: NO_OPTIONS };

  function errorReply(query: Message, rcode: number, withQuestion: boolean): Message {
    return {
      id: query.id, qr: true, opcode: query.opcode, aa: false, tc: false, rd: query.rd, ra: opts.recursionAvailable, ad: false, cd: query.cd,
      rcode, questions: withQuestion ? query.questions.slice(0, 1) : [], answers: [], authorities: [], additionals: [],
      ...(query.edns ? { edns: ourEdns } : {}),
    };
  }

  function encode(query: Message, res: Message, protocol: Protocol): Buffer | undefined {
    const max = protocol === 'tcp' ? 65535 : query.edns ? Math.min(Math.max(query.edns.udpSize, 512), opts.ednsBufferSize) : 512;
    try {
      const out = encodeMessage(res, max);
      opts.metrics?.response(res.rcode);
      return out;
    } catch (err) {
      if (!(err instanceof EncodeError)) throw err;
      opts.onError?.(err, query);
      const fail = errorReply(query, Rcode.SERVFAIL, false);
      opts.metrics?.response(fail.rcode);
      return encodeMessage(fail, max);
    }
  }

  function finish(query: Message, res: Message, protocol: Protocol): Buffer | undefined {
    res.id = query.id;
    res.qr = true;
    res.opcode = query.opcode;
    res.rd = query.rd;
    res.cd = query.cd;
    res.ra = opts.recursionAvailable;
    res.questions = query.questions;
    if (query.edns) res.edns = ourEdns;
    else delete res.edns;
    if (res.rcode > 15 && !res.edns) res.rcode = Rcode.SERVFAIL;
    return encode(query, res, protocol);
  }

  return (packet, protocol) => {
    const fast = cached(packet, protocol);
    if (fast) return fast;
    const decoded = decodeMessage(packet);
    const query = decoded.message;
    if (!query || query.qr) return undefined; // not a query we can answer: drop
    if (!decoded.ok) {
      opts.metrics?.malformed();
      return encode(query, errorReply(query, query.opcode === 0 ? Rcode.FORMERR : Rcode.NOTIMP, query.questions.length === 1), protocol);
    }
    if (query.opcode !== 0) return encode(query, errorReply(query, Rcode.NOTIMP, query.questions.length === 1), protocol);
    if (query.questions.length !== 1) return encode(query, errorReply(query, Rcode.FORMERR, false), protocol);
    const question = query.questions[0]!;
    opts.metrics?.request(question.type, protocol);
    if (query.edns && query.edns.version > 0) return encode(query, errorReply(query, Rcode.BADVERS, true), protocol);
    if (question.type === Type.OPT) return encode(query, errorReply(query, Rcode.FORMERR, true), protocol);
    if (question.class !== Class.IN || question.type === Type.AXFR || question.type === Type.IXFR) {
      return encode(query, errorReply(query, Rcode.REFUSED, true), protocol);
    }
    const req: DnsRequest = { query, question, qname: question.name.toLowerCase(), protocol };
    opts.observe?.(req.qname);
    let answer;
    try {
      answer = opts.handler(req);
    } catch (err) {
      opts.onError?.(err, query);
      return encode(query, errorReply(query, Rcode.SERVFAIL, true), protocol);
    }
    if (!(answer instanceof Promise)) {
      const out = finish(query, answer, protocol);
      remember(packet, protocol, answer, out);
      return out;
    }
    return answer.then(
      (res) => finish(query, res, protocol),
      (err: unknown) => {
        opts.onError?.(err, query);
        return encode(query, errorReply(query, Rcode.SERVFAIL, true), protocol);
      },
    );
  };
}
