/** kubeconfig documents pointing at the test apiserver: token or client-certificate users. */
import { stringify } from 'yaml';

export interface KubeconfigUser {
  name?: string;
  token?: string;
  certPem?: string;
  keyPem?: string;
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** A kubeconfig with one cluster, one user and one current context. No user: cluster only. */
export function renderKubeconfig(server: string, caPem: string, user?: KubeconfigUser): string {
  const config: Record<string, unknown> = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'keelson-test', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    contexts: [] as unknown[],
    'current-context': '',
    preferences: {},
    users: [] as unknown[],
  };
  if (user) {
    const name = user.name ?? 'user';
    const entry: Record<string, string> = {};
    if (user.token) entry.token = user.token;
    if (user.certPem) entry['client-certificate-data'] = b64(user.certPem);
    if (user.keyPem) entry['client-key-data'] = b64(user.keyPem);
    config.users = [{ name, user: entry }];
    config.contexts = [{ name: `${name}@keelson-test`, context: { cluster: 'keelson-test', user: name } }];
    config['current-context'] = `${name}@keelson-test`;
  }
  return stringify(config);
}
