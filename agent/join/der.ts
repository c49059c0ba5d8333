/**
 * A minimal ASN.1 DER encoder: just the types a PKCS#10 certificate request needs (SEQUENCE, SET,
 * INTEGER, OBJECT IDENTIFIER, UTF8String, BIT STRING, context-specific tags). Node's crypto makes
 * keys and signatures but cannot build a CSR, and keelson ships no ASN.1 library.
 */

/** The DER length octets: short form below 128, long form (0x80 | count, big-endian bytes) above. */
export function encodeLength(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`DER length must be a non-negative integer, got ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: tag byte, length, content. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));

/** SET OF: DER orders the encoded elements by their bytes. */
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat([...items].sort(Buffer.compare)));

/** A non-negative INTEGER, minimal two's complement (a leading 0x00 when the top bit is set). */
export function integer(value: number | bigint): Buffer {
  let n = BigInt(value);
  if (n < 0n) throw new RangeError('only non-negative INTEGERs are supported');
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  } while (n > 0n);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

/** OBJECT IDENTIFIER from dotted form: first two arcs packed as 40·a + b, then base-128 arcs. */
export function oid(dotted: string): Buffer {
  if (!/^\d+(\.\d+)+$/.test(dotted)) throw new SyntaxError(`not an object identifier: ${JSON.stringify(dotted)}`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [first, second, ...rest] = arcs as [bigint, bigint, ...bigint[]];
  if (first > 2n || (first < 2n && second > 39n)) throw new SyntaxError(`not an object identifier: ${JSON.stringify(dotted)}`);
  const out: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let n = arc >> 7n; n > 0n; n >>= 7n) chunk.unshift(Number(n & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

export const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));

/** BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), bytes]));

export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);

/** `[n]` constructed, context-specific (IMPLICIT when the content is the inner value's content). */
export const contextConstructed = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);

/** PEM armour with 64-column base64 lines. */
export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
