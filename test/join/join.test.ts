import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import pino from 'pino';
import { publicKeyPin } from '../../agent/join/token';
import { createKubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import { startTestApiserver, type TestApiserver } from '../harness/apiserver';
import { addBootstrapToken, runJoin, waitForSignature } from './helpers';

let api: TestApiserver;
let caHash: string;
const dirs: string[] = [];

test.before(async () => {
  api = await startTestApiserver();
  caHash = publicKeyPin(new X509Certificate(api.caPem));
});
test.after.always(async () => {
  await api?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function workDir(): { dir: string; kubeconfig: string; certDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-join-'));
  dirs.push(dir);
  return { dir, kubeconfig: join(dir, 'etc', 'kubelet.conf'), certDir: join(dir, 'pki') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Approves or denies CSRs as an admin would, by name, once one shows up. */
async function actOnNextCsr(action: 'Approved' | 'Denied', before: Set<string>): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const csr = api.store.list('CertificateSigningRequest').find((c) => !before.has(c.metadata.name));
    if (csr) {
      api.store.patch('CertificateSigningRequest', undefined, csr.metadata.name, {
        status: { conditions: [{ type: action, status: 'True', reason: action === 'Denied' ? 'AdminDenied' : 'AdminApproved', message: `${action.toLowerCase()} by the test` }] },
      }, { type: 'merge', subresource: 'approval' });
      return csr.metadata.name as string;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no CSR appeared');
}

const csrNames = () => new Set(api.store.list('CertificateSigningRequest').map((c) => c.metadata.name as string));

test.serial('join succeeds with a correct token and CA hash: node credentials written 0600 and accepted by the apiserver', async (t) => {
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const before = csrNames();
  const approving = actOnNextCsr('Approved', before);
  const r = await runJoin(
    ['--server', api.url, '--token', token.full, '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--hostname-override', 'Edge-Join-1', '--retry-interval', '200ms'],
  );
  const csrName = await approving;
  t.is(r.code, 0, r.stderr + JSON.stringify(api.store.get('CertificateSigningRequest', undefined, csrName)?.status));
  t.regex(r.stdout, /This node \(edge-join-1\) has joined/);

  const csr = api.store.get('CertificateSigningRequest', undefined, csrName)!;
  t.is(csr.spec.signerName, 'kubernetes.io/kube-apiserver-client-kubelet');
  t.deepEqual([...csr.spec.usages].sort(), ['client auth', 'digital signature', 'key encipherment']);
  t.is(csr.spec.username, `system:bootstrap:${token.id}`);

  t.is(statSync(w.kubeconfig).mode & 0o777, 0o600);
  const certFile = join(w.certDir, 'kubelet-client-current.pem');
  t.is(statSync(certFile).mode & 0o777, 0o600);
  const cert = new X509Certificate(readFileSync(certFile));
  t.regex(cert.subject, /CN=system:node:edge-join-1/);
  t.regex(cert.subject, /O=system:nodes/);
  t.true(cert.verify(new X509Certificate(api.caPem).publicKey));

  // The written kubeconfig authenticates as the node.
  const config = loadKubeconfig(w.kubeconfig);
  const client = createKubeClient(config, { logger: pino({ level: 'silent' }) });
  t.teardown(() => client.close());
  api.clearRequestLog();
  await client.get(Resources.namespaces, 'default');
  const log = api.requestLog().filter((e) => e.path === '/api/v1/namespaces/default');
  t.is(log[0]?.user, 'system:node:edge-join-1');
});

test.serial('the token can come from a file or KEELSON_TOKEN, never needing the command line', async (t) => {
  api.setAutoApproveCsrs(true);
  t.teardown(() => api.setAutoApproveCsrs(false));
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const tokenFile = join(w.dir, 'token');
  writeFileSync(tokenFile, `${token.full}\n`, { mode: 0o600 });
  const common = ['--server', api.url, '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--hostname-override', 'edge-join-2'];
  const fromFile = await runJoin([...common, '--token-file', tokenFile]);
  t.is(fromFile.code, 0, fromFile.stderr);
  const fromEnv = await runJoin(common, { KEELSON_TOKEN: token.full });
  t.is(fromEnv.code, 0, fromEnv.stderr);
  // kubeadm's own form: endpoint as a positional HOST:PORT.
  const kubeadmForm = await runJoin([`${api.host}:${api.port}`, '--token', token.full, ...common.slice(2)]);
  t.is(kubeadmForm.code, 0, kubeadmForm.stderr);
});

test.serial('a malformed token is refused before any request, without echoing the secret', async (t) => {
  const w = workDir();
  api.clearRequestLog();
  const r = await runJoin(['--server', api.url, '--token', 'abcdef.NOT-A-SECRET', '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /bootstrap token abcdef\.<redacted> is malformed.*kubeadm token create/);
  t.regex(r.stderr, /KEELSON_ERR_JOIN_TOKEN_INVALID/);
  t.notRegex(r.stderr, /NOT-A-SECRET/);
  t.is(api.requestLog().length, 0);
});

test.serial('a wrong token secret fails the cluster-info signature check', async (t) => {
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const wrong = `${token.id}.${'0123456789abcdef' === token.secret ? 'fedcba9876543210' : '0123456789abcdef'}`;
  const r = await runJoin(['--server', api.url, '--token', wrong, '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`signature for token id ${token.id} does not verify`));
  t.regex(r.stderr, /KEELSON_ERR_JOIN_SIGNATURE_MISMATCH/);
});

test.serial('a token the cluster does not know fails after the discovery timeout, saying so', async (t) => {
  const w = workDir();
  const r = await runJoin(['--server', api.url, '--token', 'zzzzzz.0123456789abcdef', '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--discovery-timeout', '1s', '--retry-interval', '200ms']);
  t.is(r.code, 1);
  t.regex(r.stderr, /no signature for token id zzzzzz/);
  t.regex(r.stderr, /KEELSON_ERR_JOIN_TOKEN_UNKNOWN/);
});

test.serial('a CA hash that does not match the cluster CA is refused, naming the actual hash', async (t) => {
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const other = `sha256:${'ab'.repeat(32)}`;
  const r = await runJoin(['--server', api.url, '--token', token.full, '--discovery-token-ca-cert-hash', other, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir]);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`public key hash is ${caHash}, not ${other}`), r.stderr);
  t.regex(r.stderr, /KEELSON_ERR_JOIN_CA_HASH_MISMATCH/);
  t.throws(() => statSync(w.kubeconfig));
  // Without a hash at all, only the explicit unsafe flag proceeds.
  const none = await runJoin(['--server', api.url, '--token', token.full, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir]);
  t.is(none.code, 1);
  t.regex(none.stderr, /--unsafe-skip-ca-verification/);
  api.setAutoApproveCsrs(true);
  t.teardown(() => api.setAutoApproveCsrs(false));
  const unsafe = await runJoin(['--server', api.url, '--token', token.full, '--unsafe-skip-ca-verification', '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--hostname-override', 'edge-unsafe']);
  t.is(unsafe.code, 0, unsafe.stderr);
});

test.serial('a denied CSR fails the join with the reason', async (t) => {
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const denying = actOnNextCsr('Denied', csrNames());
  const r = await runJoin(['--server', api.url, '--token', token.full, '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--hostname-override', 'edge-denied']);
  const name = await denying;
  t.is(r.code, 1);
  t.true(r.stderr.includes(`certificate signing request ${name} was denied (AdminDenied: denied by the test)`), r.stderr);
  t.regex(r.stderr, /KEELSON_ERR_CSR_DENIED/);
  t.throws(() => statSync(w.kubeconfig));
});

test.serial('a CSR nobody approves times out with the command that approves it', async (t) => {
  const token = addBootstrapToken(api);
  await waitForSignature(api, token.id);
  const w = workDir();
  const r = await runJoin(['--server', api.url, '--token', token.full, '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--hostname-override', 'edge-pending', '--csr-timeout', '1500ms']);
  t.is(r.code, 1);
  t.regex(r.stderr, /certificate signing request (node-csr-\w+) was not approved within 2s: approve it with kubectl certificate approve node-csr-\w+/);
  t.regex(r.stderr, /KEELSON_ERR_CSR_TIMEOUT/);
});

test.serial('an unreachable apiserver fails after the discovery timeout, naming the address', async (t) => {
  const w = workDir();
  const port = await freePort();
  const started = Date.now();
  const r = await runJoin(['--server', `https://127.0.0.1:${port}`, '--token', 'abcdef.0123456789abcdef', '--discovery-token-ca-cert-hash', caHash, '--kubeconfig', w.kubeconfig, '--cert-dir', w.certDir, '--discovery-timeout', '1s', '--retry-interval', '200ms']);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`apiserver https://127.0.0.1:${port} unreachable for 1s`), r.stderr);
  t.regex(r.stderr, /ECONNREFUSED/);
  t.regex(r.stderr, /KEELSON_ERR_API_UNREACHABLE/);
  t.true(Date.now() - started < 15_000);
});
