/** Helpers of the DNS tests: queries, record normalisation (in-process and dig), config. */
import { execFile } from 'node:child_process';
import pino from 'pino';
import { Class, decodeMessage, encodeMessage, type Message, type ResourceRecord, type Soa, type Srv, typeName, rcodeName, Type } from '../../dns/codec';
import { type DnsConfig, DNS_DEFAULTS } from '../../dns/config';

export const silentLogger = pino({ level: 'silent' });

export function testConfig(over: Partial<DnsConfig> = {}): DnsConfig {
  return {
    ...DNS_DEFAULTS,
    listen: ['127.0.10.53'],
    port: 20000 + Math.floor(Math.random() * 40000),
    upstreams: [],
    forward: false,
    manageAddress: false,
    healthPort: 0,
    readyPort: 0,
    metricsPort: 0,
    ...over,
  };
}

export function query(name: string, type: number, opts: { id?: number; edns?: number; rd?: boolean } = {}): Buffer {
  return encodeMessage({
    id: opts.id ?? 4242, qr: false, opcode: 0, aa: false, tc: false, rd: opts.rd ?? true, ra: false, ad: false, cd: false, rcode: 0,
    questions: [{ name, type, class: Class.IN }], answers: [], authorities: [], additionals: [],
    ...(opts.edns ? { edns: { udpSize: opts.edns, version: 0, dnssecOk: false, options: new Uint8Array(0) } } : {}),
  });
}

export function decode(buf: Uint8Array | undefined): Message {
  if (!buf) throw new Error('no response');
  const d = decodeMessage(buf);
  if (!d.ok) throw new Error(`undecodable response: ${d.reason}`);
  return d.message;
}

/** `name. TTL TYPE rdata` like dig prints it, owner lower-cased, SOA serial masked. */
export function normalize(rr: ResourceRecord): string {
  const d = rr.data;
  let rdata: string;
  switch (rr.type) {
    case Type.A: case Type.AAAA: rdata = d as string; break;
    case Type.CNAME: case Type.PTR: case Type.NS: rdata = `${(d as string).toLowerCase()}.`; break;
    case Type.SRV: { const s = d as Srv; rdata = `${s.priority} ${s.weight} ${s.port} ${s.target.toLowerCase()}.`; break; }
    case Type.TXT: rdata = (d as string[]).map((s) => `"${s}"`).join(' '); break;
    case Type.SOA: { const s = d as Soa; rdata = `${s.mname}. ${s.rname}. SERIAL ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`; break; }
    default: rdata = '?';
  }
  return `${rr.name.toLowerCase()}. ${rr.ttl} ${typeName(rr.type)} ${rdata}`;
}

export interface Observed { rcode: string; aa: boolean; tc: boolean; answer: string[]; authority: string[]; additional: string[] }

export function observe(m: Message): Observed {
  return {
    rcode: rcodeName(m.rcode), aa: m.aa, tc: m.tc,
    answer: m.answers.map(normalize).sort(), authority: m.authorities.map(normalize).sort(), additional: m.additionals.map(normalize).sort(),
  };
}

export function run(file: string, args: string[], timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

/** At most `n` at once: ava starts every test of a file together, and dig is a process each. */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}
const digSlots = limiter(4);

/** Parses dig's text for one response (from `;; Got answer:` to the next) into the observe() shape. */
function parseDigResponse(text: string): Observed & { question: string } {
  const res: Observed & { question: string } = { question: '', rcode: '', aa: false, tc: false, answer: [], authority: [], additional: [] };
  let section: 'question' | 'answer' | 'authority' | 'additional' | undefined;
  for (const line of text.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status) res.rcode = status[1]!;
    const flags = /;; flags: ([^;]*);/.exec(line);
    if (flags) {
      const f = flags[1]!.trim().split(/\s+/);
      res.aa = f.includes('aa');
      res.tc = f.includes('tc');
    }
    if (line.startsWith(';; QUESTION SECTION')) section = 'question';
    else if (line.startsWith(';; ANSWER SECTION')) section = 'answer';
    else if (line.startsWith(';; AUTHORITY SECTION')) section = 'authority';
    else if (line.startsWith(';; ADDITIONAL SECTION')) section = 'additional';
    else if (section === 'question' && line.startsWith(';') && !line.startsWith(';;')) {
      const [qname, , qtype] = line.slice(1).trim().split(/\s+/);
      res.question = `${qname} ${qtype}`;
    } else if (line.trim() === '') section = undefined;
    else if (line.startsWith(';')) continue;
    else if (section && section !== 'question') {
      const [owner, ttl, , rtype, ...rest] = line.trim().split(/\s+/);
      let rdata = rest.join(' ');
      if (rtype === 'SOA') { rest[2] = 'SERIAL'; rdata = rest.join(' '); }
      if (rtype === 'CNAME' || rtype === 'PTR' || rtype === 'NS' || rtype === 'SRV') rdata = rdata.toLowerCase();
      res[section].push(`${owner!.toLowerCase()} ${ttl} ${rtype} ${rdata}`);
    }
  }
  res.answer.sort(); res.authority.sort(); res.additional.sort();
  return res;
}

/**
 * Many questions in ONE dig process (dig sends them one after the other, each a real query on its
 * own socket or connection); answers are matched to questions by the echoed question section.
 * Returns `name. type` (the name as asked, with dig's trailing dot) → observed answer.
 */
export async function digMany(server: string, port: number, questions: { name: string; type: string }[], tcp: boolean): Promise<Map<string, Observed>> {
  const args = [`@${server}`, '-p', String(port), '+tries=1', '+time=3', '+nocookie', '+noall', '+comments', '+question', '+answer', '+authority', '+additional', ...(tcp ? ['+tcp'] : [])];
  for (const q of questions) args.push(q.name, q.type);
  const out = await digSlots(() => run('dig', args, 60000));
  const byQuestion = new Map<string, Observed>();
  for (const part of out.split(';; Got answer:').slice(1)) {
    const { question, ...o } = parseDigResponse(part);
    byQuestion.set(question, o);
  }
  return byQuestion;
}
