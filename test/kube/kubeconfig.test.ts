import test from 'ava';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, KeelsonError } from '../../agent/errors';
import { kubeconfigFromValues, loadKubeconfig, reloadClientCertificate } from '../../agent/kube/kubeconfig';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQ\n-----END EC PRIVATE KEY-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

function folder(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'main',
    contexts: [
      { name: 'main', context: { cluster: 'c1', user: 'u1', namespace: 'edge' } },
      { name: 'other', context: { cluster: 'c2', user: 'u2' } },
    ],
    clusters: [
      { name: 'c1', cluster },
      { name: 'c2', cluster: { server: 'https://10.0.0.2:6443', 'insecure-skip-tls-verify': true } },
    ],
    users: [
      { name: 'u1', user },
      { name: 'u2', user: { token: 'tok-2' } },
    ],
    ...extra,
  });
}

function expectInvalid(t: import('ava').ExecutionContext, fn: () => unknown, field: string, file: string): void {
  const err = t.throws(fn) as KeelsonError;
  t.is(err.code, ErrorCodes.KUBECONFIG_INVALID);
  t.is(err.object, file);
  t.true(err.message.includes(file), err.message);
  t.true(err.message.includes(field), `"${err.message}" names ${field}`);
}

test('resolves files relative to the kubeconfig folder and reads CA, client certificate and key', (t) => {
  const dir = folder(t);
  mkdirSync(join(dir, 'pki'));
  writeFileSync(join(dir, 'pki', 'ca.crt'), CA);
  writeFileSync(join(dir, 'pki', 'client.crt'), CERT);
  writeFileSync(join(dir, 'pki', 'client.key'), KEY);
  const file = join(dir, 'kubelet.conf');
  writeFileSync(
    file,
    kubeconfig(
      { server: 'https://127.0.0.1:6443/', 'certificate-authority': 'pki/ca.crt', 'tls-server-name': 'kubernetes' },
      { 'client-certificate': 'pki/client.crt', 'client-key': join(dir, 'pki', 'client.key') },
    ),
  );
  const config = loadKubeconfig(file);
  t.is(config.server, 'https://127.0.0.1:6443');
  t.is(config.certificateAuthority?.toString(), CA);
  t.is(config.credentials.clientCertificate?.toString(), CERT);
  t.is(config.credentials.clientKey?.toString(), KEY);
  t.is(config.tlsServerName, 'kubernetes');
  t.is(config.namespace, 'edge');
  t.false(config.insecureSkipTLSVerify);
  t.is(config.source?.clientCertificatePath, join(dir, 'pki', 'client.crt'));

  // rotation: new files, same kubeconfig
  writeFileSync(join(dir, 'pki', 'client.crt'), CERT.replace('MIIBcert', 'MIIBnew'));
  const rotated = reloadClientCertificate(config);
  t.true(rotated.clientCertificate?.toString().includes('MIIBnew'));
});

test('reads -data fields, tokens, token files and another context', (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'token'), 'file-token\n');
  const file = join(dir, 'config.yaml');
  writeFileSync(file, kubeconfig({ server: 'https://h:6443', 'certificate-authority-data': b64(CA) }, { token: 'tok-1', tokenFile: 'token' }));
  const config = loadKubeconfig(file);
  t.is(config.certificateAuthority?.toString(), CA);
  t.is(config.credentials.token, 'tok-1');
  t.is(config.credentials.tokenFile, join(dir, 'token'));
  const other = loadKubeconfig(file, { context: 'other' });
  t.is(other.server, 'https://10.0.0.2:6443');
  t.true(other.insecureSkipTLSVerify);
  t.is(other.credentials.token, 'tok-2');
  t.is(other.certificateAuthority, undefined);
});

test('accepts YAML as written by kubeadm and kubectl', (t) => {
  const dir = folder(t);
  const file = join(dir, 'admin.conf');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'clusters:',
      '- cluster:',
      `    certificate-authority-data: ${b64(CA)}`,
      '    server: https://192.168.1.10:6443',
      '  name: kubernetes',
      'contexts:',
      '- context:',
      '    cluster: kubernetes',
      '    user: kubernetes-admin',
      '  name: kubernetes-admin@kubernetes',
      'current-context: kubernetes-admin@kubernetes',
      'kind: Config',
      'users:',
      '- name: kubernetes-admin',
      '  user:',
      `    client-certificate-data: ${b64(CERT)}`,
      `    client-key-data: ${b64(KEY)}`,
      '',
    ].join('\n'),
  );
  const config = loadKubeconfig(file);
  t.is(config.server, 'https://192.168.1.10:6443');
  t.is(config.credentials.clientKey?.toString(), KEY);
});

test('errors name the file and the field', (t) => {
  const dir = folder(t);
  const file = join(dir, 'bad.conf');
  const cases: Array<[string, string]> = [
    [kubeconfig({ server: 'https://h' }, {}, { 'current-context': '' }), 'current-context'],
    [kubeconfig({ server: 'https://h' }, {}, { 'current-context': 'nope' }), 'contexts[name=nope]'],
    [kubeconfig({}, {}), 'clusters[name=c1].cluster.server'],
    [kubeconfig({ server: 'not a url' }, {}), 'clusters[name=c1].cluster.server'],
    [kubeconfig({ server: 'ftp://h' }, {}), 'clusters[name=c1].cluster.server'],
    [kubeconfig({ server: 'https://h', 'certificate-authority': 'missing.crt' }, {}), 'clusters[name=c1].cluster.certificate-authority'],
    [kubeconfig({ server: 'https://h', 'certificate-authority-data': '%%%' }, {}), 'clusters[name=c1].cluster.certificate-authority-data'],
    [kubeconfig({ server: 'https://h', 'certificate-authority-data': b64('hello') }, {}), 'clusters[name=c1].cluster.certificate-authority-data'],
    [kubeconfig({ server: 'https://h', 'insecure-skip-tls-verify': 'yes' }, {}), 'clusters[name=c1].cluster.insecure-skip-tls-verify'],
    [kubeconfig({ server: 'https://h' }, { 'client-certificate-data': b64(CERT) }), 'users[name=u1].user.client-key'],
    [kubeconfig({ server: 'https://h' }, { 'client-key-data': b64(KEY) }), 'users[name=u1].user.client-certificate'],
    [kubeconfig({ server: 'https://h' }, { 'client-certificate-data': b64(CERT), 'client-key-data': b64(CERT) }), 'users[name=u1].user.client-key-data'],
    [kubeconfig({ server: 'https://h' }, { tokenFile: 'no-such-token' }), 'users[name=u1].user.tokenFile'],
    [kubeconfig({ server: 'https://h' }, { token: 42 }), 'users[name=u1].user.token'],
    [kubeconfig({ server: 'https://h' }, { exec: { command: 'aws' } }), 'users[name=u1].user.exec'],
    [JSON.stringify({ 'current-context': 'main', contexts: [{ name: 'main', context: { cluster: 'c1', user: 'u1' } }], clusters: {} }), 'clusters'],
    ['- just\n- a list\n', '(document)'],
    ['key: [unclosed\n', '(document)'],
  ];
  for (const [text, field] of cases) {
    writeFileSync(file, text);
    expectInvalid(t, () => loadKubeconfig(file), field, file);
  }
  expectInvalid(t, () => loadKubeconfig(join(dir, 'absent.conf')), '(file)', join(dir, 'absent.conf'));
});

test('in-memory construction for join: server, CA and token or certificate', (t) => {
  const config = kubeconfigFromValues({ server: 'https://10.0.0.1:6443/', certificateAuthority: CA, token: 'abcdef.0123456789abcdef' });
  t.is(config.server, 'https://10.0.0.1:6443');
  t.is(config.certificateAuthority?.toString(), CA);
  t.is(config.credentials.token, 'abcdef.0123456789abcdef');
  const withCert = kubeconfigFromValues({ server: 'https://h', clientCertificate: CERT, clientKey: Buffer.from(KEY) });
  t.is(withCert.credentials.clientKey?.toString(), KEY);
  const err = t.throws(() => kubeconfigFromValues({ server: 'https://h', clientCertificate: CERT })) as KeelsonError;
  t.is(err.code, ErrorCodes.KUBECONFIG_INVALID);
  t.true(err.message.includes('clientKey'));
  t.throws(() => kubeconfigFromValues({ server: 'h:6443' }), { code: ErrorCodes.KUBECONFIG_INVALID } as never);
});
