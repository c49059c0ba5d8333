/**
 * Test PKI made with the `openssl` CLI: a CA, a serving certificate for the test apiserver
 * (SAN 127.0.0.1, ::1, localhost), client certificates (CN = user, O = groups) and a CSR signer with
 * second-precision validity (`openssl ca -startdate/-enddate`), used by the apiserver's built-in
 * CSR signer. Keys are ECDSA P-256, like the kubelet's.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
}

export interface SignOptions {
  /** Override the subject's CN (default: keep the CSR's). */
  cn?: string;
  /** Override the subject's O values (default: keep the CSR's). */
  o?: string[];
  days?: number;
  seconds?: number;
  /** Kubernetes key usages (`client auth`, `server auth`, `digital signature`, `key encipherment`…). */
  usages?: string[];
  /** Copy subjectAltName from the CSR (serving certificates). */
  copySans?: boolean;
}

export interface TestPki {
  dir: string;
  caPem: string;
  caCertPath: string;
  caKeyPath: string;
  server: IssuedCert;
  /** A client certificate for `user` in `groups`, signed by the CA. */
  issueClientCert(user: string, groups?: string[], options?: { days?: number; seconds?: number }): Promise<IssuedCert>;
  /** Signs a PEM CSR with the CA; returns the certificate PEM. */
  signCsr(csrPem: string, options?: SignOptions): Promise<string>;
  /** Makes a new key and a PEM CSR (for tests that act as a kubelet). */
  createCsr(cn: string, groups?: string[], sans?: string[]): Promise<{ csrPem: string; keyPem: string }>;
  cleanup(): void;
}

async function openssl(args: string[], input?: string): Promise<string> {
  const child = run('openssl', args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout;
}

function escapeRdn(value: string): string {
  return value.replace(/([\\/+=,])/g, '\\$1');
}

export function subjectArg(cn: string, groups: string[] = []): string {
  return '/' + [...groups.map((g) => `O=${escapeRdn(g)}`), `CN=${escapeRdn(cn)}`].join('/');
}

/** openssl ca's GeneralizedTime argument form: YYYYMMDDHHMMSSZ. */
function opensslTime(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

const USAGE_TO_OPENSSL: Record<string, { ku?: string; eku?: string }> = {
  'digital signature': { ku: 'digitalSignature' },
  'key encipherment': { ku: 'keyEncipherment' },
  'content commitment': { ku: 'nonRepudiation' },
  'key agreement': { ku: 'keyAgreement' },
  'data encipherment': { ku: 'dataEncipherment' },
  'cert sign': { ku: 'keyCertSign' },
  'crl sign': { ku: 'cRLSign' },
  'client auth': { eku: 'clientAuth' },
  'server auth': { eku: 'serverAuth' },
  'code signing': { eku: 'codeSigning' },
  'email protection': { eku: 'emailProtection' },
};

function extensionsFor(usages: string[]): string {
  const ku = new Set<string>();
  const eku = new Set<string>();
  for (const usage of usages) {
    const mapped = USAGE_TO_OPENSSL[usage];
    if (mapped?.ku) ku.add(mapped.ku);
    if (mapped?.eku) eku.add(mapped.eku);
  }
  const lines = ['basicConstraints = critical, CA:FALSE'];
  if (ku.size) lines.push(`keyUsage = critical, ${[...ku].join(', ')}`);
  if (eku.size) lines.push(`extendedKeyUsage = ${[...eku].join(', ')}`);
  return lines.join('\n') + '\n';
}

export async function createTestPki(options: { dir?: string; serverSans?: string[] } = {}): Promise<TestPki> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'keelson-pki-'));
  const caDir = join(dir, 'ca');
  mkdirSync(join(caDir, 'newcerts'), { recursive: true });
  writeFileSync(join(caDir, 'index.txt'), '');
  writeFileSync(join(caDir, 'index.txt.attr'), 'unique_subject = no\n');
  writeFileSync(join(caDir, 'serial'), '1000\n');
  const caKeyPath = join(dir, 'ca.key');
  const caCertPath = join(dir, 'ca.crt');
  const caConfig = join(caDir, 'ca.cnf');
  writeFileSync(
    caConfig,
    [
      '[ ca ]',
      'default_ca = testca',
      '[ testca ]',
      `dir = ${caDir}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir/newcerts',
      'serial = $dir/serial',
      `certificate = ${caCertPath}`,
      `private_key = ${caKeyPath}`,
      'default_md = sha256',
      'policy = policy_any',
      'unique_subject = no',
      'email_in_dn = no',
      '[ policy_any ]',
      'organizationName = optional',
      'commonName = optional',
      '',
    ].join('\n'),
  );

  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKeyPath]);
  await openssl([
    'req', '-x509', '-new', '-key', caKeyPath, '-subj', '/CN=keelson-test-ca', '-days', '3650', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out', caCertPath,
  ]);
  const caPem = readFileSync(caCertPath, 'utf8');

  // openssl ca keeps an index file: sign one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  let counter = 0;

  async function signNow(csrPem: string, opts: SignOptions): Promise<string> {
    const id = `${process.pid}-${++counter}`;
    const csrPath = join(caDir, `req-${id}.csr`);
    const extPath = join(caDir, `ext-${id}.cnf`);
    const outPath = join(caDir, `out-${id}.crt`);
    writeFileSync(csrPath, csrPem);
    let ext = '[ ext ]\n' + extensionsFor(opts.usages ?? ['digital signature', 'key encipherment', 'client auth']);
    if (opts.copySans) {
      const sans = await csrSans(csrPath);
      if (sans.length) ext += `subjectAltName = ${sans.join(', ')}\n`;
    }
    writeFileSync(extPath, ext);
    const now = Date.now();
    const seconds = opts.seconds ?? (opts.days ?? 365) * 86400;
    // Backdated by 5 minutes for clock skew, as Kubernetes signers do.
    const notBefore = new Date(Math.floor(now / 1000) * 1000 - 5 * 60 * 1000);
    const notAfter = new Date(Math.floor(now / 1000) * 1000 + seconds * 1000);
    const args = [
      'ca', '-batch', '-config', caConfig, '-in', csrPath, '-out', outPath, '-notext', '-rand_serial',
      '-startdate', opensslTime(notBefore), '-enddate', opensslTime(notAfter),
      '-extfile', extPath, '-extensions', 'ext', '-preserveDN',
    ];
    if (opts.cn !== undefined || opts.o !== undefined) {
      const current = await csrSubject(csrPath);
      args.push('-subj', subjectArg(opts.cn ?? current.cn ?? '', opts.o ?? current.o));
    }
    try {
      await openssl(args);
      return readFileSync(outPath, 'utf8');
    } finally {
      for (const path of [csrPath, extPath, outPath]) rmSync(path, { force: true });
    }
  }

  function signCsr(csrPem: string, opts: SignOptions = {}): Promise<string> {
    const result = queue.then(() => signNow(csrPem, opts));
    queue = result.catch(() => undefined);
    return result;
  }

  async function createCsr(cn: string, groups: string[] = [], sans: string[] = []) {
    const id = `${process.pid}-${++counter}`;
    const keyPath = join(dir, `key-${id}.pem`);
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
    const args = ['req', '-new', '-key', keyPath, '-subj', subjectArg(cn, groups)];
    if (sans.length) args.push('-addext', `subjectAltName=${sans.join(',')}`);
    const csrPem = await openssl(args);
    const keyPem = readFileSync(keyPath, 'utf8');
    rmSync(keyPath, { force: true });
    return { csrPem, keyPem };
  }

  async function issue(name: string, cn: string, groups: string[], opts: SignOptions & { sans?: string[] }): Promise<IssuedCert> {
    const { csrPem, keyPem } = await createCsr(cn, groups, opts.sans ?? []);
    const certPem = await signCsr(csrPem, { ...opts, copySans: Boolean(opts.sans?.length) });
    const certPath = join(dir, `${name}.crt`);
    const keyPath = join(dir, `${name}.key`);
    writeFileSync(certPath, certPem);
    writeFileSync(keyPath, keyPem, { mode: 0o600 });
    return { certPem, keyPem, certPath, keyPath };
  }

  const sans = ['IP:127.0.0.1', 'IP:::1', 'DNS:localhost', ...(options.serverSans ?? [])];
  const server = await issue('apiserver', 'kube-apiserver', [], {
    days: 3650,
    usages: ['digital signature', 'key encipherment', 'server auth'],
    sans,
  });

  let clients = 0;
  return {
    dir,
    caPem,
    caCertPath,
    caKeyPath,
    server,
    issueClientCert(user, groups = [], opts = {}) {
      const safe = user.replace(/[^A-Za-z0-9_.-]/g, '_');
      return issue(`client-${safe}-${++clients}`, user, groups, { ...opts, usages: ['digital signature', 'key encipherment', 'client auth'] });
    },
    signCsr,
    createCsr,
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function csrSubject(csrPath: string): Promise<{ cn?: string; o: string[] }> {
  const text = await openssl(['req', '-in', csrPath, '-noout', '-subject', '-nameopt', 'RFC2253']);
  return parseSubject(text.replace(/^subject=/, '').trim());
}

async function csrSans(csrPath: string): Promise<string[]> {
  const text = await openssl(['req', '-in', csrPath, '-noout', '-text']);
  const match = /X509v3 Subject Alternative Name:[^\n]*\n\s*([^\n]+)/.exec(text);
  if (!match?.[1]) return [];
  return match[1]
    .split(',')
    .map((s) => s.trim())
    .map((s) => s.replace(/^IP Address:/, 'IP:'))
    .filter((s) => /^(DNS|IP|email|URI):/.test(s));
}

/** Parses an RFC 2253 subject (`CN=a,O=b,O=c`) into CN and O values. */
export function parseSubject(subject: string): { cn?: string; o: string[] } {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < subject.length; i++) {
    const ch = subject[i]!;
    if (ch === '\\' && i + 1 < subject.length) {
      current += subject[++i];
      continue;
    }
    if (ch === ',' || ch === '+') {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  if (current) parts.push(current);
  const result: { cn?: string; o: string[] } = { o: [] };
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1);
    if (key === 'CN') result.cn = value;
    else if (key === 'O') result.o.push(value);
  }
  return result;
}
