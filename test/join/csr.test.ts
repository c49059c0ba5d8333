import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import test from 'ava';
import { createCertificateRequest, generateClientKey, nodeClientSubject } from '../../agent/join/csr';
import { encodeLength, integer, oid, set, utf8String } from '../../agent/join/der';
import { verifyDetachedJws } from '../../agent/join/jws';
import { parseBootstrapToken, parsePin } from '../../agent/join/token';
import { integrationTest } from '../harness/requirements';

const hex = (b: Buffer) => b.toString('hex');

test('DER lengths use the short form below 128 and the minimal long form above', (t) => {
  t.is(hex(encodeLength(0)), '00');
  t.is(hex(encodeLength(127)), '7f');
  t.is(hex(encodeLength(128)), '8180');
  t.is(hex(encodeLength(255)), '81ff');
  t.is(hex(encodeLength(256)), '820100');
  t.is(hex(encodeLength(70000)), '83011170');
  t.throws(() => encodeLength(-1));
});

test('DER integers are minimal two\'s complement', (t) => {
  t.is(hex(integer(0)), '020100');
  t.is(hex(integer(127)), '02017f');
  t.is(hex(integer(128)), '02020080');
  t.is(hex(integer(256)), '02020100');
  t.is(hex(integer(2n ** 64n)), '0209010000000000000000');
});

test('object identifiers encode as X.690 says', (t) => {
  t.is(hex(oid('2.5.4.3')), '0603550403');
  t.is(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
  t.is(hex(oid('1.2.840.113549.1.1.11')), '06092a864886f70d01010b');
  t.throws(() => oid('1'));
  t.throws(() => oid('3.1'));
});

test('SET OF sorts its encoded elements', (t) => {
  t.is(hex(set(utf8String('b'), utf8String('a'))), '31060c01610c0162');
});

const itest = integrationTest({ commands: ['openssl'] });

itest('the CSR verifies with openssl req -verify and carries the node subject and an EC P-256 key', (t) => {
  const key = generateClientKey();
  const pem = createCertificateRequest(nodeClientSubject('edge-7'), key.privateKey);
  t.regex(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/);
  const verify = (input: string) => spawnSync('openssl', ['req', '-verify', '-noout', '-subject', '-nameopt', 'RFC2253'], { input, encoding: 'utf8' });
  const good = verify(pem);
  t.is(good.status, 0, good.stderr);
  t.regex(good.stderr + good.stdout, /verify OK/);
  t.regex(good.stdout, /subject=CN=system:node:edge-7,O=system:nodes/);
  const text = execFileSync('openssl', ['req', '-noout', '-text'], { input: pem, encoding: 'utf8' });
  t.regex(text, /Public Key Algorithm: id-ecPublicKey/);
  t.regex(text, /NIST CURVE: P-256|prime256v1/);
  t.regex(text, /Signature Algorithm: ecdsa-with-SHA256/);
  // A tampered request must fail verification (so the check above means something).
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const cn = der.indexOf(Buffer.from('edge-7'));
  der[cn] = 'f'.charCodeAt(0); // CN system:node:fdge-7: same length, signature no longer matches
  const bad = verify(`-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`);
  t.regex(bad.stdout, /system:node:fdge-7/);
  t.notRegex(bad.stderr + bad.stdout, /verify OK/);
  t.regex(bad.stderr + bad.stdout, /verify fail/i);
});

test('bootstrap tokens and CA pins are parsed strictly', (t) => {
  t.deepEqual(parseBootstrapToken(' abcdef.0123456789abcdef\n'), { id: 'abcdef', secret: '0123456789abcdef', full: 'abcdef.0123456789abcdef' });
  for (const bad of ['abcdef0123456789abcdef', 'ABCDEF.0123456789abcdef', 'abcde.0123456789abcdef', 'abcdef.0123456789abcde']) {
    const err = t.throws(() => parseBootstrapToken(bad));
    t.is((err as { code?: string }).code, 'KEELSON_ERR_JOIN_TOKEN_INVALID');
  }
  t.is(parsePin(`SHA256:${'AB'.repeat(32)}`), `sha256:${'ab'.repeat(32)}`);
  t.throws(() => parsePin('sha256:abc'));
  t.throws(() => parsePin(`md5:${'ab'.repeat(32)}`));
});

test('detached JWS: HS256 over header.payload keyed with the full token, anything else refused', (t) => {
  const content = 'apiVersion: v1\nkind: Config\n';
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'abcdef' })).toString('base64url');
  const sig = createHmac('sha256', 'abcdef.0123456789abcdef').update(`${header}.${Buffer.from(content).toString('base64url')}`).digest('base64url');
  t.deepEqual(verifyDetachedJws(`${header}..${sig}`, content, 'abcdef', 'abcdef.0123456789abcdef'), { ok: true });
  t.false(verifyDetachedJws(`${header}..${sig}`, content + ' ', 'abcdef', 'abcdef.0123456789abcdef').ok);
  t.false(verifyDetachedJws(`${header}..${sig}`, content, 'abcdef', 'abcdef.0123456789abcdee').ok);
  t.false(verifyDetachedJws(`${header}.${Buffer.from(content).toString('base64url')}.${sig}`, content, 'abcdef', 'abcdef.0123456789abcdef').ok);
  const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
  t.false(verifyDetachedJws(`${none}..`, content, 'abcdef', 'abcdef.0123456789abcdef').ok);
});
