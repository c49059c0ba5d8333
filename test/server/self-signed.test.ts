import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ensureSelfSignedCertificate } from '../../agent/server/self-signed';

const OPTIONS = { commonName: 'edge1', dnsNames: ['edge1', 'localhost'], ipAddresses: ['127.0.0.1', '192.0.2.10', 'fd00::1'] };

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'pki');
}

test('a self-signed serving certificate: names, validity, its own signature, files 0600', (t) => {
  const dir = tempDir(t);
  const made = ensureSelfSignedCertificate(dir, { ...OPTIONS, now: new Date('2030-01-02T03:04:05Z') });
  t.true(made.created);
  const cert = new X509Certificate(made.certPem);
  t.regex(cert.subject, /^CN=edge1@1893553445$/);
  t.is(cert.issuer, cert.subject);
  t.true(cert.verify(cert.publicKey), 'signed by its own key');
  t.true(cert.ca);
  t.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  t.is(cert.subjectAltName, 'DNS:edge1, DNS:localhost, IP Address:127.0.0.1, IP Address:192.0.2.10, IP Address:FD00:0:0:0:0:0:0:1');
  t.is(new Date(cert.validFrom).toISOString(), '2030-01-02T03:03:05.000Z');
  t.is(new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime(), 365 * 86_400_000);
  t.is(statSync(made.certPath).mode & 0o777, 0o600);
  t.is(statSync(made.keyPath).mode & 0o777, 0o600);
  // OpenSSL reads it and finds the extensions where they belong
  const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', made.certPath], { encoding: 'utf8' });
  t.regex(text, /Version: 3 \(0x2\)/);
  t.regex(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.regex(text, /Key Usage: critical\s+Digital Signature, Key Encipherment, Certificate Sign/);
  t.regex(text, /TLS Web Server Authentication/);
  writeFileSync(join(dir, 'ca.pem'), made.certPem);
  t.regex(execFileSync('openssl', ['verify', '-attime', '1893553500', '-CAfile', join(dir, 'ca.pem'), made.certPath], { encoding: 'utf8' }), /OK/);
});

test('the kept certificate is reused; a new one is made when it expires soon or lacks a name', (t) => {
  const dir = tempDir(t);
  const first = ensureSelfSignedCertificate(dir, OPTIONS);
  const again = ensureSelfSignedCertificate(dir, OPTIONS);
  t.false(again.created);
  t.is(again.certPem, first.certPem);
  const renamed = ensureSelfSignedCertificate(dir, { ...OPTIONS, ipAddresses: ['127.0.0.1', '192.0.2.11'] });
  t.true(renamed.created);
  const late = ensureSelfSignedCertificate(dir, { ...OPTIONS, ipAddresses: ['127.0.0.1', '192.0.2.11'], now: new Date(Date.now() + 364.5 * 86_400_000) });
  t.true(late.created, 'less than a day of validity left');
  writeFileSync(late.certPath, 'garbage');
  t.true(ensureSelfSignedCertificate(dir, OPTIONS).created);
});

test('a TLS client that trusts the certificate verifies the server by name', async (t) => {
  const dir = tempDir(t);
  const made = ensureSelfSignedCertificate(dir, OPTIONS);
  const server = createServer({ cert: made.certPem, key: made.keyPem }, (_req, res) => res.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => void server.close());
  const port = (server.address() as AddressInfo).port;
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', ca: made.certPem, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
  t.is(body, 'hello');
});
