/** Shared by the join and node tests: bootstrap tokens in the test apiserver, and running `keelson join`. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { TestApiserver } from '../harness/apiserver';

const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function randomTokenPart(length: number): string {
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => TOKEN_CHARS[b % TOKEN_CHARS.length]).join('');
}

export interface TestToken {
  id: string;
  secret: string;
  full: string;
}

/** Creates `kube-system/bootstrap-token-<id>` as `kubeadm token create` does. */
export function addBootstrapToken(api: TestApiserver, options: { usages?: string[]; expiration?: string } = {}): TestToken {
  const id = randomTokenPart(6);
  const secret = randomTokenPart(16);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const data: Record<string, string> = {
    'token-id': b64(id),
    'token-secret': b64(secret),
    'auth-extra-groups': b64('system:bootstrappers:kubeadm:default-node-token'),
  };
  for (const usage of options.usages ?? ['authentication', 'signing']) data[`usage-bootstrap-${usage}`] = b64('true');
  if (options.expiration) data.expiration = b64(options.expiration);
  api.store.create({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'bootstrap.kubernetes.io/token',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    data,
  });
  return { id, secret, full: `${id}.${secret}` };
}

/** Waits until the bootstrap signer has put the token's signature into cluster-info. */
export async function waitForSignature(api: TestApiserver, tokenId: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const cm = api.store.get('ConfigMap', 'kube-public', 'cluster-info');
    if (cm?.data?.[`jws-kubeconfig-${tokenId}`]) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`cluster-info never got a signature for ${tokenId}`);
}

const JOIN_MODULE = path.resolve(__dirname, '..', '..', 'agent', 'join', 'index.js');

/**
 * Runs `keelson join` in a child process on the pinned runtime (the CLI's `join` case calls the same
 * joinCommand), so the test sees the real exit code, stdout and stderr.
 */
export function runJoin(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `require(${JSON.stringify(JOIN_MODULE)}).joinCommand(process.argv.slice(1)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 99; })`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', script, '--', ...args], { env: { ...process.env, KEELSON_TOKEN: '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
