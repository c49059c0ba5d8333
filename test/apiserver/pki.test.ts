import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { createTestPki, parseSubject } from '../harness/pki';
import type { TestPki } from '../harness/pki';

let pki: TestPki;
test.before(async () => {
  pki = await createTestPki();
});
test.after.always(() => pki?.cleanup());

test('CA and serving certificate for 127.0.0.1, ::1 and localhost', (t) => {
  const ca = new X509Certificate(pki.caPem);
  t.true(ca.ca);
  const server = new X509Certificate(pki.server.certPem);
  t.true(server.checkIssued(ca));
  t.true(server.verify(ca.publicKey));
  t.regex(server.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  t.regex(server.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1/);
  t.regex(server.subjectAltName ?? '', /DNS:localhost/);
  t.truthy(server.checkIP('127.0.0.1'));
  t.truthy(server.checkHost('localhost'));
});

test('client certificates carry CN = user and one O per group', async (t) => {
  const issued = await pki.issueClientCert('system:node:a/b', ['system:nodes', 'team+x']);
  const cert = new X509Certificate(issued.certPem);
  t.true(cert.checkIssued(new X509Certificate(pki.caPem)));
  t.regex(cert.subject, /CN=system:node:a\/b/);
  t.regex(cert.subject, /O=system:nodes/);
  t.regex(cert.subject, /O=team\\?\+x/); // Node escapes + when printing
  t.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
});

test('signCsr: subject override and second-precision validity', async (t) => {
  const { csrPem } = await pki.createCsr('someone', ['a']);
  const pem = await pki.signCsr(csrPem, { cn: 'other', o: ['g1', 'g2'], seconds: 900 });
  const cert = new X509Certificate(pem);
  t.regex(cert.subject, /CN=other/);
  t.regex(cert.subject, /O=g1\nO=g2|O=g1.*O=g2/s);
  t.notRegex(cert.subject, /someone/);
  const lifetime = (Date.parse(cert.validTo) - Date.now()) / 1000;
  t.true(lifetime > 880 && lifetime <= 900, `lifetime ${lifetime}`);
  const backdated = (Date.now() - Date.parse(cert.validFrom)) / 1000;
  t.true(backdated >= 299 && backdated <= 310, `notBefore ${backdated}s ago`);
  const days = new X509Certificate(await pki.signCsr(csrPem, { days: 2 }));
  t.regex(days.subject, /CN=someone/);
  const serving = await pki.createCsr('system:node:n1', ['system:nodes'], ['DNS:n1', 'IP:10.0.0.1']);
  const servingCert = new X509Certificate(await pki.signCsr(serving.csrPem, { usages: ['digital signature', 'server auth'], copySans: true }));
  t.regex(servingCert.subjectAltName ?? '', /DNS:n1/);
  t.regex(servingCert.subjectAltName ?? '', /IP Address:10\.0\.0\.1/);
});

test('parseSubject reads RFC 2253 subjects with escapes', (t) => {
  t.deepEqual(parseSubject('CN=system:node:x,O=system:nodes,O=a\\,b'), { cn: 'system:node:x', o: ['system:nodes', 'a,b'] });
  t.deepEqual(parseSubject('O=x'), { o: ['x'] });
});
