/**
 * Service account tokens for projected volumes, as kubelet's token manager keeps them: one
 * TokenRequest per (pod, service account, audience, expiry), cached and requested again once 80 %
 * of the token's life has passed (or when it is older than 24 h), so a running pod always finds a
 * valid token at the path it reads.
 */
import type { Clock } from '../clock';
import type { PodDataLookup, ServiceAccountToken } from '../pod-data';

export interface TokenKey {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
  audience: string;
  expirationSeconds: number;
}

interface Cached {
  token: string;
  issuedAt: number;
  expiresAt: number;
}

const MAX_AGE_MS = 24 * 3600_000;

export interface TokenManager {
  /** A valid token, requested anew when the cached one passed 80 % of its life. */
  get(key: TokenKey): Promise<string>;
  /** Drops the tokens of a removed pod. */
  forgetPod(uid: string): void;
  /** When the next cached token of this pod needs refreshing (ms since epoch), if any. */
  nextRefresh(uid: string): number | undefined;
}

export function createTokenManager(data: PodDataLookup, clock: Clock): TokenManager {
  const cache = new Map<string, Cached & { uid: string }>();
  const refreshAt = (c: Cached) => Math.min(c.issuedAt + 0.8 * (c.expiresAt - c.issuedAt), c.issuedAt + MAX_AGE_MS);
  return {
    async get(key) {
      const id = JSON.stringify([key.podUid, key.namespace, key.serviceAccount, key.audience, key.expirationSeconds]);
      const now = clock.now();
      const cached = cache.get(id);
      if (cached && now < refreshAt(cached)) return cached.token;
      let res: ServiceAccountToken;
      try {
        res = await data.requestToken(key.namespace, key.serviceAccount, {
          audiences: key.audience ? [key.audience] : [],
          expirationSeconds: key.expirationSeconds,
          boundPod: { name: key.podName, uid: key.podUid },
        });
      } catch (err) {
        // an old token that is still valid beats none
        if (cached && now < cached.expiresAt) return cached.token;
        throw err;
      }
      const expiresAt = Date.parse(res.expirationTimestamp);
      cache.set(id, { uid: key.podUid, token: res.token, issuedAt: now, expiresAt: Number.isFinite(expiresAt) ? expiresAt : now + key.expirationSeconds * 1000 });
      return res.token;
    },
    forgetPod(uid) {
      for (const [id, c] of cache) if (c.uid === uid) cache.delete(id);
    },
    nextRefresh(uid) {
      let next: number | undefined;
      for (const c of cache.values()) if (c.uid === uid) next = Math.min(next ?? Infinity, refreshAt(c));
      return next;
    },
  };
}
