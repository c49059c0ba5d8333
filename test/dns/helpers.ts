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

/** Runs dig and parses its answer into the same shape as observe(). */
export async function dig(server: string, port: number, name: string, type: string, tcp: boolean): Promise<Observed> {
  const out = await digSlots(() => run('dig', [`@${server}`, '-p', String(port), '+tries=1', '+time=3', '+nocookie', '+noall', '+comments', '+answer', '+authority', '+additional', ...(tcp ? ['+tcp'] : []), name, type]));
  const res: Observed = { rcode: '', aa: false, tc: false, answer: [], authority: [], additional: [] };
  let section: 'answer' | 'authority' | 'additional' | undefined;
  for (const line of out.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status) res.rcode = status[1]!;
    const flags = /;; flags: ([^;]*);/.exec(line);
    if (flags) {
      const f = flags[1]!.trim().split(/\s+/);
      res.aa = f.includes('aa');
      res.tc = f.includes('tc');
    }
    if (line.startsWith(';; ANSWER SECTION')) section = 'answer';
    else if (line.startsWith(';; AUTHORITY SECTION')) section = 'authority';
    else if (line.startsWith(';; ADDITIONAL SECTION')) section = 'additional';
    else if (line.startsWith(';') || line.trim() === '') { if (line.trim() === '') section = undefined; }
    else if (section) {
      const t = line.trim().split(/\s+/);
      const [owner, ttl, , rtype, ...rest] = t;
      let rdata = rest.join(' ');
      if (rtype === 'SOA') { rest[2] = 'SERIAL'; rdata = rest.join(' '); }
      if (rtype === 'CNAME' || rtype === 'PTR' || rtype === 'NS' || rtype === 'SRV') rdata = rdata.toLowerCase();
      res[section].push(`${owner!.toLowerCase()} ${ttl} ${rtype} ${rdata}`);
    }
  }
  res.answer.sort(); res.authority.sort(); res.additional.sort();
  return res;
}
