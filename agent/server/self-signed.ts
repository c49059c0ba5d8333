/**
 * The kubelet's serving certificate when no certificate is configured (no serverTLSBootstrap): a
 * self-signed X.509 v3 certificate for the node's names and addresses, made at start with an
 * ECDSA P-256 key and kept under `<rootDir>/pki/kubelet.{crt,key}` (mode 0600). A kept pair is
 * reused while it is valid for at least another day and covers the same names; otherwise a new one
 * is made. Built with keelson's DER encoder (agent/join/der.ts): Node's crypto signs but cannot
 * build certificates.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { contextConstructed, integer, oid, sequence, tlv, toPem, bitString } from '../join/der';
import { encodeName } from '../join/csr';

const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

const DAY_MS = 86_400_000;
const VALIDITY_MS = 365 * DAY_MS;

export interface SelfSignedOptions {
  /** Subject CN is `<commonName>@<unix seconds>`, as kubelet names its self-signed certificate. */
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** Default now. */
  now?: Date;
  validityMs?: number;
}

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  /** True when a new pair was made (false: the kept one was reused). */
  created: boolean;
}

const boolTrue = (): Buffer => Buffer.from([0x01, 0x01, 0xff]);
const octetString = (content: Buffer): Buffer => tlv(0x04, content);

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5), seconds precision, Zulu. */
function encodeTime(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand `::` then 8 groups of 16 bits
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolTrue(), octetString(value)) : sequence(oid(id), octetString(value));
}

function subjectAltNames(dnsNames: string[], ips: string[]): Buffer {
  const names = [
    ...dnsNames.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))), // [2] IMPLICIT IA5String dNSName
    ...ips.map((ip) => tlv(0x87, ipBytes(ip))), // [7] IMPLICIT OCTET STRING iPAddress
  ];
  return sequence(...names);
}

/** A DER X.509 v3 certificate for `privateKey`'s public key, signed by that same key (ecdsa-with-SHA256). */
export function createSelfSignedCertificateDer(options: SelfSignedOptions, privateKey: KeyObject): Buffer {
  const now = options.now ?? new Date();
  // a minute of slack for clocks slightly behind ours
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 60_000);
  const notAfter = new Date(notBefore.getTime() + (options.validityMs ?? VALIDITY_MS));
  const name = encodeName({ commonName: `${options.commonName}@${Math.floor(now.getTime() / 1000)}` });
  const algorithm = sequence(oid(OID_ECDSA_WITH_SHA256));
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const serial = BigInt('0x' + randomBytes(16).toString('hex')) >> 1n; // positive, at most 127 bits
  const extensions = [
    // CA:TRUE so that clients may pin this certificate as its own trust anchor
    extension(OID_BASIC_CONSTRAINTS, true, sequence(boolTrue())),
    // digitalSignature, keyEncipherment, keyCertSign: bits 0, 2, 5 → 0xA4 with 2 unused bits
    extension(OID_KEY_USAGE, true, tlv(0x03, Buffer.from([0x02, 0xa4]))),
    extension(OID_EXT_KEY_USAGE, false, sequence(oid(OID_SERVER_AUTH))),
    ...(options.dnsNames.length || options.ipAddresses.length ? [extension(OID_SUBJECT_ALT_NAME, false, subjectAltNames(options.dnsNames, options.ipAddresses))] : []),
  ];
  const tbs = sequence(
    contextConstructed(0, integer(2)), // version v3
    integer(serial === 0n ? 1n : serial),
    algorithm,
    name, // issuer = subject
    sequence(encodeTime(notBefore), encodeTime(notAfter)),
    name,
    spki,
    contextConstructed(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  return sequence(tbs, algorithm, bitString(signature));
}

/** The names a certificate's subjectAltName lists, as Node prints them (`DNS:x, IP Address:y`). */
function sansOf(cert: X509Certificate): { dns: Set<string>; ips: Set<string> } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) dns.add(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.add(part.slice(11).toLowerCase());
  }
  return { dns, ips };
}

function reusable(certPem: string, keyPem: string, options: SelfSignedOptions): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const key = createPrivateKey(keyPem);
    if (!cert.checkPrivateKey(key)) return false;
    const now = (options.now ?? new Date()).getTime();
    if (new Date(cert.validTo).getTime() - now < DAY_MS || new Date(cert.validFrom).getTime() > now + 60_000) return false;
    const { dns, ips } = sansOf(cert);
    return options.dnsNames.every((n) => dns.has(n)) && options.ipAddresses.every((ip) => ips.has(ip.toLowerCase()) || ips.has(expandForNode(ip)));
  } catch {
    return false;
  }
}

/** OpenSSL prints IPv6 SANs uncompressed (`FD00:0:0:0:0:0:0:1`); the set holds them lower-cased. */
function expandForNode(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const b = ipBytes(ip);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * Returns the serving certificate under `<dir>` (kubelet.crt, kubelet.key), making a new
 * self-signed one when there is none, it is unreadable, expires within a day, or lacks a name.
 */
export function ensureSelfSignedCertificate(dir: string, options: SelfSignedOptions): ServingCertificate {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certPath = join(dir, 'kubelet.crt');
  const keyPath = join(dir, 'kubelet.key');
  try {
    const certPem = readFileSync(certPath, 'utf8');
    const keyPem = readFileSync(keyPath, 'utf8');
    if (reusable(certPem, keyPem, options)) return { certPem, keyPem, certPath, keyPath, created: false };
  } catch {
    // none yet, or unreadable: make a new pair
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const certPem = toPem('CERTIFICATE', createSelfSignedCertificateDer(options, privateKey));
  writePrivate(keyPath, keyPem);
  writePrivate(certPath, certPem);
  return { certPem, keyPem, certPath, keyPath, created: true };
}
