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

/**
 * One remembered reply. The query bytes after the ID (`key`) and the reply bytes are kept as latin1
 * strings: far smaller than a Buffer each (no ArrayBuffer and view objects), and a hit needs no
 * allocation but the Buffer it sends. Entries with the same hash are chained.
 */
interface CachedReply { key: string; tcp: boolean; reply: string; generation: number; expires: number; type: number; rcode: number; next: CachedReply | undefined }

export type Protocol = 'udp' | 'tcp';
export type PacketHandler = (packet: Uint8Array, protocol: Protocol) => Buffer | undefined | Promise<Buffer | undefined>;

/** FNV-1a of the packet after its ID: no string is built to look a query up. */
function hashQuery(packet: Uint8Array, tcp: boolean): number {
  let h = tcp ? 0x811c9dc5 ^ 0x5bd1e995 : 0x811c9dc5;
  for (let i = 2; i < packet.length; i++) h = Math.imul(h ^ packet[i]!, 0x01000193);
  return h & 0x3fffffff; // a small integer: a Map key that never needs a heap number
}

function sameQuery(e: CachedReply, packet: Uint8Array, tcp: boolean): boolean {
  const key = e.key;
  if (e.tcp !== tcp || key.length !== packet.length - 2) return false;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== packet[i + 2]) return false;
  return true;
}

const NO_OPTIONS = new Uint8Array(0);

export function createPacketHandler(opts: PacketHandlerOptions): PacketHandler {
  const rc = opts.responseCache;
  const replies = new Map<number, CachedReply>();
  const now = rc?.now ?? Date.now;

  function remember(packet: Uint8Array, protocol: Protocol, res: Message, out: Buffer | undefined): void {
    if (!rc || !out || packet.length > 512 || out.length > 4096 || (res.rcode !== Rcode.NOERROR && res.rcode !== Rcode.NXDOMAIN)) return;
    let expires = Infinity;
    if (!res.aa) {
      let ttl = 1;
      for (const r of res.answers) ttl = Math.min(ttl, r.ttl);
      for (const r of res.authorities) ttl = Math.min(ttl, r.ttl);
      if (ttl <= 0) return;
      expires = now() + ttl * 1000;
    }
    if (replies.size >= rc.size) replies.clear();
    const tcp = protocol === 'tcp';
    const h = hashQuery(packet, tcp);
    let head = replies.get(h);
    // Drop an older entry for the same query (and stale ones) from the chain.
    let prev: CachedReply | undefined;
    for (let e = head; e; e = e.next) {
      if (sameQuery(e, packet, tcp)) {
        if (prev) prev.next = e.next; else head = e.next;
      } else prev = e;
    }
    const entry: CachedReply = {
      key: Buffer.from(packet.buffer, packet.byteOffset + 2, packet.length - 2).toString('latin1'),
      tcp, reply: out.toString('latin1'), generation: rc.generation(), expires, type: res.questions[0]?.type ?? 0, rcode: res.rcode, next: head,
    };
    replies.set(h, entry);
  }

  function cached(packet: Uint8Array, protocol: Protocol): Buffer | undefined {
    if (!rc || packet.length < 12 || packet.length > 512) return undefined;
    const tcp = protocol === 'tcp';
    const h = hashQuery(packet, tcp);
    let hit = replies.get(h);
    while (hit && !sameQuery(hit, packet, tcp)) hit = hit.next;
    if (!hit) return undefined;
    if (hit.generation !== rc.generation() || (hit.expires !== Infinity && hit.expires <= now())) {
      replies.delete(h); // the whole chain: rare, and it refills on the next misses
      return undefined;
    }
    const out = Buffer.allocUnsafe(hit.reply.length);
    out.write(hit.reply, 0, 'latin1');
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
