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
}

export type Protocol = 'udp' | 'tcp';
export type PacketHandler = (packet: Uint8Array, protocol: Protocol) => Buffer | undefined | Promise<Buffer | undefined>;

const NO_OPTIONS = new Uint8Array(0);

export function createPacketHandler(opts: PacketHandlerOptions): PacketHandler {
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
    if (!(answer instanceof Promise)) return finish(query, answer, protocol);
    return answer.then(
      (res) => finish(query, res, protocol),
      (err: unknown) => {
        opts.onError?.(err, query);
        return encode(query, errorReply(query, Rcode.SERVFAIL, true), protocol);
      },
    );
  };
}
