/**
 * The node's credentials on disk: the client certificate and its key in one PEM file
 * (`<certDir>/kubelet-client-current.pem`, 0600, replaced atomically so a rotation never leaves a
 * certificate beside the wrong key), and a kubeconfig (0600) naming it, with the cluster CA inline.
 * The kubeconfig is written as JSON (valid YAML) so the daemon reads it without the YAML parser.
 */
import { mkdirSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const CLIENT_CERT_FILE = 'kubelet-client-current.pem';

/** Writes `data` to `path` with `mode` via a temp file and rename (readers see old or new, never half). */
export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Writes cert + key to `<certDir>/kubelet-client-current.pem`; returns the path. */
export function writeClientCertificate(certDir: string, certPem: string, keyPem: string): string {
  mkdirSync(certDir, { recursive: true, mode: 0o700 });
  const path = join(certDir, CLIENT_CERT_FILE);
  writeFileAtomic(path, `${certPem.trimEnd()}\n${keyPem.trimEnd()}\n`, 0o600);
  return path;
}

export interface NodeKubeconfig {
  server: string;
  caPem: string;
  nodeName: string;
  clientCertPath: string;
}

export function renderNodeKubeconfig(values: NodeKubeconfig): string {
  const user = `system:node:${values.nodeName}`;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default-cluster', cluster: { server: values.server, 'certificate-authority-data': Buffer.from(values.caPem).toString('base64') } }],
    users: [{ name: user, user: { 'client-certificate': values.clientCertPath, 'client-key': values.clientCertPath } }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', user } }],
    'current-context': 'default-context',
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

export function writeNodeKubeconfig(path: string, values: NodeKubeconfig): void {
  writeFileAtomic(path, renderNodeKubeconfig(values), 0o600);
}
