/**
 * The `kube-public/cluster-info` ConfigMap and what kube-controller-manager's bootstrap signer
 * keeps in it: `jws-kubeconfig-<token-id>` detached JWS signatures (HS256, key = the full token
 * `<id>.<secret>`) of the `kubeconfig` entry, one per valid bootstrap token whose Secret has
 * `usage-bootstrap-signing: "true"`.
 */
import { createHmac } from 'node:crypto';
import { bootstrapTokens } from './authn';
import { renderKubeconfig } from './kubeconfig';
import type { Registry } from './registry';
import { resourceForKind } from './resources';
import type { Obj } from './store';

const JWS_PREFIX = 'jws-kubeconfig-';

/** The detached compact JWS (`header..signature`) of `content` for a bootstrap token. */
export function detachedJws(content: string, tokenId: string, tokenSecret: string): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: tokenId })).toString('base64url');
  const payload = Buffer.from(content).toString('base64url');
  const signature = createHmac('sha256', `${tokenId}.${tokenSecret}`).update(`${header}.${payload}`).digest('base64url');
  return `${header}..${signature}`;
}

export interface BootstrapSigner {
  /** Creates cluster-info if missing (kubeadm does that in a real cluster), then syncs. */
  ensure(): void;
  /** Brings the signatures up to date. */
  sync(): void;
  stop(): void;
}

export function createBootstrapSigner(registry: Registry, server: () => string, caPem: string): BootstrapSigner {
  const configmaps = resourceForKind('ConfigMap', 'v1')!;
  let pending = false;
  let stopped = false;

  function sync(): void {
    pending = false;
    if (stopped) return;
    const key = 'kube-public/cluster-info';
    const cm: Obj | undefined = registry.store.get('configmaps', key);
    if (!cm) return;
    const data: Record<string, string> = { ...(cm.data ?? {}) };
    const content = data.kubeconfig ?? '';
    const desired: Record<string, string> = {};
    for (const [k, v] of Object.entries(data)) if (!k.startsWith(JWS_PREFIX)) desired[k] = v;
    for (const token of bootstrapTokens(registry.store)) {
      if (token.expired || !token.usages.includes('signing')) continue;
      desired[`${JWS_PREFIX}${token.id}`] = detachedJws(content, token.id, token.secret);
    }
    if (JSON.stringify(Object.entries(desired).sort()) === JSON.stringify(Object.entries(data).sort())) return;
    registry.update(configmaps, 'kube-public', 'cluster-info', { ...cm, data: desired });
  }

  const unsubscribe = registry.store.subscribe((ev) => {
    const relevant =
      (ev.resource === 'secrets' && ev.key.startsWith('kube-system/bootstrap-token-')) ||
      (ev.resource === 'configmaps' && ev.key === 'kube-public/cluster-info');
    if (!relevant || pending) return;
    pending = true;
    setImmediate(sync);
  });

  return {
    ensure() {
      if (!registry.store.get('configmaps', 'kube-public/cluster-info') && registry.store.get('namespaces', '/kube-public')) {
        registry.create(configmaps, 'kube-public', { metadata: { name: 'cluster-info' }, data: { kubeconfig: renderKubeconfig(server(), caPem) } });
      }
      sync();
    },
    sync,
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}
