/**
 * DNS wire format (RFC 1035, 2782, 3596, 6891): decode with strict bounds checking, encode with name
 * compression and truncation to a size limit.
 *
 * Why our own codec and not `dns2` (named by the design card) or `dns-packet`: dns2's 3.x line only
 * recently stopped crashing on pointer cycles and exposed the EDNS extended rcode/version, it
 * allocates a class instance per packet and per record, and truncation (drop records, set TC, keep
 * OPT) is left to the caller. dns-packet throws on malformed input (fine) but also decodes lazily
 * into generic objects and has no size-limited encoding. What keelson needs is small: ~10 record
 * types, compression on output, strict checks (pointer must go backwards, ≤ 255-byte names, every
 * length inside the packet, OPT only once and only in the additional section), a partial result
 * for FORMERR, and truncation that never exceeds the client's buffer. That is ~400 lines we can
 * fuzz and keep fast, with no dependency.
 *
 * Names are strings of labels joined by '.', without the trailing dot ('' is the root). Label
 * bytes that are not printable, or are '.' or '\', are written as \DDD / \. like dig does.
 */

import { formatIPv6 } from './ip';

export const Type = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  IXFR: 251, AXFR: 252, ANY: 255,
} as const;
export const Class = { IN: 1, CH: 3, ANY: 255 } as const;
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const Opcode = { QUERY: 0 } as const;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Type).map(([k, v]) => [v, k]));
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}
const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

export interface Question { name: string; type: number; class: number }
export interface Srv { priority: number; weight: number; port: number; target: string }
export interface Soa { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }
export interface Mx { preference: number; exchange: string }
/** A/AAAA: address text; NS/CNAME/PTR: a name; TXT: strings; others: raw RDATA. */
export type RData = string | string[] | Srv | Soa | Mx | Uint8Array;
export interface ResourceRecord { name: string; type: number; class: number; ttl: number; data: RData }
export interface Edns { udpSize: number; version: number; dnssecOk: boolean; options: Uint8Array }

export interface Message {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The full (extended) rcode; values > 15 need `edns`. */
  rcode: number;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  /** Without the OPT record, which lives in `edns`. */
  additionals: ResourceRecord[];
  edns?: Edns;
}

export function emptyMessage(id = 0): Message {
  return { id, qr: false, opcode: 0, aa: false, tc: false, rd: false, ra: false, ad: false, cd: false, rcode: 0, questions: [], answers: [], authorities: [], additionals: [] };
}

export type DecodeResult =
  | { ok: true; message: Message }
  /** `message` holds what could be parsed (header at least, when present) for a FORMERR reply. */
  | { ok: false; reason: string; message?: Message };

/** Not an Error subclass on purpose: no stack trace to capture on the hot path of junk packets. */
class WireError {
  constructor(readonly message: string) {}
}

const MAX_NAME = 255;
const MAX_POINTER_HOPS = 127;

const BYTE_TEXT: string[] = Array.from({ length: 256 }, (_, c) =>
  c === 0x2e || c === 0x5c ? '\\' + String.fromCharCode(c) : c > 0x20 && c < 0x7f ? String.fromCharCode(c) : '\\' + String(c).padStart(3, '0'));

function escapeLabel(buf: Uint8Array, start: number, len: number): string {
  let out = '';
  for (let i = start; i < start + len; i++) out += BYTE_TEXT[buf[i]!]!;
  return out;
}

/** Reads a (possibly compressed) name at `off`; returns the name and the offset after it. */
function readName(buf: Uint8Array, off: number): [string, number] {
  let name = '';
  let wireLen = 1;
  let pos = off;
  let end = -1;
  let hops = 0;
  let lowest = off;
  for (;;) {
    if (pos >= buf.length) throw new WireError('name runs past the packet');
    const len = buf[pos]!;
    if (len === 0) { pos += 1; break; }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError('pointer runs past the packet');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowest) throw new WireError('compression pointer does not point backwards');
      if (++hops > MAX_POINTER_HOPS) throw new WireError('too many compression pointers');
      if (end === -1) end = pos + 2;
      lowest = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new WireError('unsupported label type');
    wireLen += len + 1;
    if (wireLen > MAX_NAME) throw new WireError('name longer than 255 bytes');
    if (pos + 1 + len > buf.length) throw new WireError('label runs past the packet');
    const label = escapeLabel(buf, pos + 1, len);
    name = name === '' ? label : name + '.' + label;
    pos += 1 + len;
  }
  return [name, end === -1 ? pos : end];
}

function u16(buf: Uint8Array, off: number): number {
  if (off + 2 > buf.length) throw new WireError('truncated field');
  return (buf[off]! << 8) | buf[off + 1]!;
}
function u32(buf: Uint8Array, off: number): number {
  if (off + 4 > buf.length) throw new WireError('truncated field');
  return ((buf[off]! << 24) >>> 0) + ((buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!);
}

function readRData(buf: Uint8Array, type: number, off: number, len: number): RData {
  const end = off + len;
  const exact = (next: number) => {
    if (next !== end) throw new WireError(`bad RDATA length for ${typeName(type)}`);
  };
  switch (type) {
    case Type.A:
      if (len !== 4) throw new WireError('bad A length');
      return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
    case Type.AAAA:
      if (len !== 16) throw new WireError('bad AAAA length');
      return formatIPv6(buf, off);
    case Type.NS:
    case Type.CNAME:
    case Type.PTR: {
      const [name, next] = readName(buf, off);
      exact(next);
      return name;
    }
    case Type.MX: {
      const preference = u16(buf, off);
      const [exchange, next] = readName(buf, off + 2);
      exact(next);
      return { preference, exchange };
    }
    case Type.SRV: {
      if (len < 7) throw new WireError('bad SRV length');
      const [target, next] = readName(buf, off + 6);
      exact(next);
      return { priority: u16(buf, off), weight: u16(buf, off + 2), port: u16(buf, off + 4), target };
    }
    case Type.SOA: {
      const [mname, n1] = readName(buf, off);
      const [rname, n2] = readName(buf, n1);
      exact(n2 + 20);
      return { mname, rname, serial: u32(buf, n2), refresh: u32(buf, n2 + 4), retry: u32(buf, n2 + 8), expire: u32(buf, n2 + 12), minimum: u32(buf, n2 + 16) };
    }
    case Type.TXT: {
      const out: string[] = [];
      let pos = off;
      while (pos < end) {
        const l = buf[pos]!;
        if (pos + 1 + l > end) throw new WireError('TXT string runs past RDATA');
        out.push(Buffer.from(buf.buffer, buf.byteOffset + pos + 1, l).toString('latin1'));
        pos += 1 + l;
      }
      return out;
    }
    default:
      return Uint8Array.prototype.slice.call(buf, off, end);
  }
}

/** Decodes one DNS message. Never throws. */
export function decodeMessage(buf: Uint8Array): DecodeResult {
  if (buf.length < 12) return { ok: false, reason: 'shorter than a DNS header' };
  const flags = (buf[2]! << 8) | buf[3]!;
  const message: Message = {
    id: (buf[0]! << 8) | buf[1]!,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  const qd = (buf[4]! << 8) | buf[5]!;
  const counts = [(buf[6]! << 8) | buf[7]!, (buf[8]! << 8) | buf[9]!, (buf[10]! << 8) | buf[11]!];
  let off = 12;
  try {
    for (let i = 0; i < qd; i++) {
      const [name, next] = readName(buf, off);
      const type = u16(buf, next);
      const klass = u16(buf, next + 2);
      message.questions.push({ name, type, class: klass });
      off = next + 4;
    }
    const sections = [message.answers, message.authorities, message.additionals];
    for (let s = 0; s < 3; s++) {
      for (let i = 0; i < counts[s]!; i++) {
        const [name, next] = readName(buf, off);
        const type = u16(buf, next);
        const klass = u16(buf, next + 2);
        const ttl = u32(buf, next + 4);
        const rdlen = u16(buf, next + 8);
        const rdata = next + 10;
        if (rdata + rdlen > buf.length) throw new WireError('RDATA runs past the packet');
        off = rdata + rdlen;
        if (type === Type.OPT) {
          if (s !== 2 || message.edns || name !== '') throw new WireError('misplaced OPT record');
          message.edns = {
            udpSize: klass,
            version: (ttl >>> 16) & 0xff,
            dnssecOk: (ttl & 0x8000) !== 0,
            options: Uint8Array.prototype.slice.call(buf, rdata, rdata + rdlen),
          };
          message.rcode |= ((ttl >>> 24) & 0xff) << 4;
          continue;
        }
        sections[s]!.push({ name, type, class: klass, ttl, data: readRData(buf, type, rdata, rdlen) });
      }
    }
    if (off !== buf.length) throw new WireError('trailing bytes after the last record');
  } catch (err) {
    if (err instanceof WireError) return { ok: false, reason: err.message, message };
    throw err;
  }
  return { ok: true, message };
}

// ---- encoding ----

/** Splits a name into label byte strings (latin1), undoing \DDD and \X escapes. */
function labelsOf(name: string): string[] {
  if (name === '' || name === '.') return [];
  if (name.endsWith('.') && !name.endsWith('\\.')) name = name.slice(0, -1);
  if (!name.includes('\\')) return name.split('.');
  const labels: string[] = [];
  let cur = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === '\\') {
      const d = name.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) { cur += String.fromCharCode(Number(d) & 0xff); i += 3; }
      else { cur += name[i + 1] ?? ''; i += 1; }
    } else if (c === '.') { labels.push(cur); cur = ''; }
    else cur += c;
  }
  labels.push(cur);
  return labels;
}

/** Unambiguous compression key of the name made of labels[i..]; ASCII case folded only. */
function suffixKey(labels: string[], i: number): string {
  let key = '';
  for (let j = i; j < labels.length; j++) key += labels[j]!.length + ':' + labels[j];
  return /[^\x00-\x7f]/.test(key) ? key : key.toLowerCase();
}

class Writer {
  buf: Buffer;
  off = 0;
  limit: number;
  readonly names = new Map<string, number>();
  readonly added: string[] = [];

  constructor(buf: Buffer, limit: number) {
    this.buf = buf;
    this.limit = limit;
  }
  room(n: number): void {
    if (this.off + n > this.limit) throw new SizeError();
  }
  u8(v: number): void { this.room(1); this.buf[this.off++] = v; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16BE(v & 0xffff, this.off); this.off += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32BE(v >>> 0, this.off); this.off += 4; }
  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.off); this.off += b.length; }
  name(name: string, compress: boolean): void {
    const labels = labelsOf(name);
    let wire = 1;
    for (const l of labels) {
      if (l.length === 0 || l.length > 63) throw new EncodeError(`bad label in ${name}`);
      wire += l.length + 1;
    }
    if (wire > MAX_NAME) throw new EncodeError(`name too long: ${name}`);
    for (let i = 0; i < labels.length; i++) {
      const key = suffixKey(labels, i);
      if (compress) {
        const ptr = this.names.get(key);
        if (ptr !== undefined) { this.u16(0xc000 | ptr); return; }
      }
      if (this.off < 0x3fff && !this.names.has(key)) { this.names.set(key, this.off); this.added.push(key); }
      const l = labels[i]!;
      this.room(l.length + 1);
      this.buf[this.off++] = l.length;
      this.off += this.buf.write(l, this.off, 'latin1');
    }
    this.u8(0);
  }
  /** Forgets compression targets written at or after `off`, for rollback. */
  rollback(off: number): void {
    this.off = off;
    while (this.added.length) {
      const key = this.added[this.added.length - 1]!;
      if ((this.names.get(key) ?? 0) < off) break;
      this.names.delete(key);
      this.added.pop();
    }
  }
}

class SizeError extends Error {}
export class EncodeError extends Error {}

function writeAddress(w: Writer, type: number, text: string): void {
  if (type === Type.A) {
    const p = text.split('.');
    if (p.length !== 4) throw new EncodeError(`bad A address ${text}`);
    w.u16(4);
    for (const x of p) w.u8(Number(x));
    return;
  }
  const bytes = parseV6(text);
  if (!bytes) throw new EncodeError(`bad AAAA address ${text}`);
  w.u16(16);
  w.bytes(bytes);
}

function parseV6(text: string): Uint8Array | undefined {
  const double = text.indexOf('::');
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const head = part(double === -1 ? text : text.slice(0, double));
  const tail = double === -1 ? [] : part(text.slice(double + 2));
  const words: number[] = [];
  const push = (groups: string[]) => {
    for (const g of groups) {
      if (g.includes('.')) {
        const v4 = g.split('.').map(Number);
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else words.push(parseInt(g, 16));
    }
  };
  push(head);
  const fill = 8 - words.length - tail.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  if (double === -1 ? fill !== 0 : fill < 1) return undefined;
  for (let i = 0; i < fill && double !== -1; i++) words.push(0);
  push(tail);
  if (words.length !== 8 || words.some((x) => !(x >= 0 && x <= 0xffff))) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) { out[2 * i] = words[i]! >> 8; out[2 * i + 1] = words[i]! & 0xff; }
  return out;
}

function writeRecord(w: Writer, rr: ResourceRecord): void {
  w.name(rr.name, true);
  w.u16(rr.type);
  w.u16(rr.class);
  w.u32(rr.ttl);
  const d = rr.data;
  switch (rr.type) {
    case Type.A:
    case Type.AAAA:
      writeAddress(w, rr.type, d as string);
      return;
    default:
  }
  const lenAt = w.off;
  w.u16(0);
  const start = w.off;
  switch (rr.type) {
    case Type.NS:
    case Type.CNAME:
    case Type.PTR:
      w.name(d as string, true);
      break;
    case Type.MX:
      w.u16((d as Mx).preference);
      w.name((d as Mx).exchange, true);
      break;
    case Type.SRV: {
      const s = d as Srv;
      w.u16(s.priority); w.u16(s.weight); w.u16(s.port);
      w.name(s.target, false); // RFC 2782: no compression of the target
      break;
    }
    case Type.SOA: {
      const s = d as Soa;
      w.name(s.mname, true); w.name(s.rname, true);
      w.u32(s.serial); w.u32(s.refresh); w.u32(s.retry); w.u32(s.expire); w.u32(s.minimum);
      break;
    }
    case Type.TXT:
      for (const s of d as string[]) {
        const b = Buffer.from(s, 'latin1');
        if (b.length > 255) throw new EncodeError('TXT string longer than 255');
        w.u8(b.length);
        w.bytes(b);
      }
      break;
    default:
      w.bytes(d as Uint8Array);
  }
  w.buf.writeUInt16BE(w.off - start, lenAt);
}

const scratch = Buffer.alloc(65535);

/**
 * Encodes a message in at most `maxSize` bytes. When the records do not fit, as many answer and
 * authority records as fit are kept, TC is set and the OPT record is kept (RFC 6891 §7).
 */
export function encodeMessage(msg: Message, maxSize = 65535): Buffer {
  const limit = Math.min(Math.max(maxSize, 12), 65535);
  const w = new Writer(scratch, limit);
  const optLen = msg.edns ? 11 + msg.edns.options.length : 0;
  let tc = msg.tc;
  w.off = 12;
  try {
    for (const q of msg.questions) {
      w.name(q.name, true);
      w.u16(q.type);
      w.u16(q.class);
    }
  } catch (err) {
    if (err instanceof SizeError) throw new EncodeError('question does not fit');
    throw err;
  }
  w.limit = limit - optLen;
  const counts = [0, 0, 0];
  const sections = [msg.answers, msg.authorities, msg.additionals];
  outer: for (let s = 0; s < 3; s++) {
    for (const rr of sections[s]!) {
      const before = w.off;
      try {
        writeRecord(w, rr);
        counts[s]!++;
      } catch (err) {
        if (!(err instanceof SizeError)) throw err;
        w.rollback(before);
        if (s < 2) tc = true; // dropping additional data alone does not need TC
        break outer;
      }
    }
  }
  w.limit = limit;
  let arcount = counts[2]!;
  if (msg.edns) {
    const e = msg.edns;
    w.u8(0);
    w.u16(Type.OPT);
    w.u16(e.udpSize);
    w.u32((((msg.rcode >> 4) & 0xff) << 24) | ((e.version & 0xff) << 16) | (e.dnssecOk ? 0x8000 : 0));
    w.u16(e.options.length);
    w.bytes(e.options);
    arcount++;
  }
  const flags =
    (msg.qr ? 0x8000 : 0) | ((msg.opcode & 0xf) << 11) | (msg.aa ? 0x0400 : 0) | (tc ? 0x0200 : 0) |
    (msg.rd ? 0x0100 : 0) | (msg.ra ? 0x0080 : 0) | (msg.ad ? 0x0020 : 0) | (msg.cd ? 0x0010 : 0) | (msg.rcode & 0xf);
  scratch.writeUInt16BE(msg.id & 0xffff, 0);
  scratch.writeUInt16BE(flags, 2);
  scratch.writeUInt16BE(msg.questions.length, 4);
  scratch.writeUInt16BE(counts[0]!, 6);
  scratch.writeUInt16BE(counts[1]!, 8);
  scratch.writeUInt16BE(arcount, 10);
  return Buffer.from(scratch.subarray(0, w.off));
}

/** Lower-cased name for lookups. */
export function canonicalName(name: string): string {
  return name.toLowerCase();
}
