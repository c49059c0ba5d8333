/**
 * The handler contract: `serve(request) → response`, and stages composed in order. Each stage
 * answers, or passes the request to the next one. The order is listed in one place (component.ts).
 */
import { type Message, type Question, Rcode } from './codec';

export interface DnsRequest {
  /** The decoded query; exactly one question, opcode QUERY, class checked by the server. */
  query: Message;
  question: Question;
  /** The question name in lower case, without the trailing dot. */
  qname: string;
  protocol: 'udp' | 'tcp' | 'internal';
}

export type Answer = Message | Promise<Message>;
export type Next = (request: DnsRequest) => Answer;

export interface Stage {
  readonly name: string;
  serve(request: DnsRequest, next: Next): Answer;
}

export type Handler = (request: DnsRequest) => Answer;

/** Chains stages in order; after the last one, `last` answers (REFUSED by default). */
export function composeStages(stages: readonly Stage[], last: Handler = (req) => reply(req, Rcode.REFUSED)): Handler {
  let next: Handler = last;
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i]!;
    const after = next;
    next = (req) => stage.serve(req, after);
  }
  return next;
}

/** An empty response to a request: ID, opcode, RD, CD and the question echoed. */
export function reply(req: DnsRequest, rcode: number = Rcode.NOERROR): Message {
  const q = req.query;
  return {
    id: q.id, qr: true, opcode: q.opcode, aa: false, tc: false, rd: q.rd, ra: false, ad: false, cd: q.cd,
    rcode, questions: [req.question], answers: [], authorities: [], additionals: [],
  };
}

/** A request for another question on behalf of `req` (CNAME chasing, prefetch, health probes). */
export function subRequest(req: DnsRequest, question: Question): DnsRequest {
  return { query: { ...req.query, questions: [question] }, question, qname: question.name.toLowerCase().replace(/\.$/, ''), protocol: 'internal' };
}

export function makeRequest(question: Question, protocol: DnsRequest['protocol'] = 'internal', id = 0): DnsRequest {
  const query: Message = {
    id, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0,
    questions: [question], answers: [], authorities: [], additionals: [],
  };
  return { query, question, qname: question.name.toLowerCase().replace(/\.$/, ''), protocol };
}
