/**
 * PKCS#10 certificate requests (RFC 2986) built in pure Node.js: an ECDSA P-256 key, as the
 * kubelet makes, and a request with the subject CN/O a kubelet client certificate needs, signed
 * with ecdsa-with-SHA256. No extensions: the CSR object's spec.usages says what the certificate is for.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, contextConstructed, integer, oid, sequence, set, toPem, utf8String } from './der';

const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

export interface Subject {
  commonName: string;
  organizations?: string[];
}

export interface KeyPair {
  privateKey: KeyObject;
  /** PKCS#8 PEM (`PRIVATE KEY`), as written to the key file. */
  privateKeyPem: string;
}

export function generateClientKey(): KeyPair {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export function loadPrivateKey(pem: string | Buffer): KeyObject {
  return createPrivateKey(pem);
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName, one attribute per RDN: O values first, then CN. */
export function encodeName(subject: Subject): Buffer {
  const rdns = [
    ...(subject.organizations ?? []).map((o) => set(sequence(oid(OID_ORGANIZATION), utf8String(o)))),
    set(sequence(oid(OID_COMMON_NAME), utf8String(subject.commonName))),
  ];
  return sequence(...rdns);
}

/** The DER CertificationRequest for `subject`, signed by `privateKey` (an EC key). */
export function createCertificateRequestDer(subject: Subject, privateKey: KeyObject): Buffer {
  if (privateKey.asymmetricKeyType !== 'ec') throw new TypeError(`certificate requests need an EC key, got ${privateKey.asymmetricKeyType}`);
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const info = sequence(
    integer(0),
    encodeName(subject),
    spki,
    contextConstructed(0, Buffer.alloc(0)), // attributes: none
  );
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  return sequence(info, sequence(oid(OID_ECDSA_WITH_SHA256)), bitString(signature));
}

export function createCertificateRequest(subject: Subject, privateKey: KeyObject): string {
  return toPem('CERTIFICATE REQUEST', createCertificateRequestDer(subject, privateKey));
}

/** The subject a kubelet client certificate must carry for the Node authorizer. */
export function nodeClientSubject(nodeName: string): Subject {
  return { commonName: `system:node:${nodeName}`, organizations: ['system:nodes'] };
}
