/**
 * Authentication in kube-apiserver's order: client certificate verified against the test CA
 * (CN = user, O = groups), bearer token (static tokens, then bootstrap tokens kept as Secrets
 * `bootstrap-token-<id>` in kube-system), else anonymous. A presented but unknown token is 401.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { errors } from './status';
import type { Store } from './store';

export interface UserInfo {
  username: string;
  groups: string[];
  uid?: string;
}

export const ANONYMOUS: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };

export interface Authenticator {
  authenticate(req: IncomingMessage): UserInfo;
  /** For TokenReview: who a token belongs to, or undefined. */
  tokenUser(token: string): UserInfo | undefined;
  addToken(token: string, user: UserInfo): void;
  removeToken(token: string): void;
}

const BOOTSTRAP_TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

function decode(value: unknown): string | undefined {
  return typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined;
}

function secretValue(secret: { data?: Record<string, string>; stringData?: Record<string, string> }, key: string): string | undefined {
  return decode(secret.data?.[key]) ?? secret.stringData?.[key];
}

function equal(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

export interface BootstrapToken {
  id: string;
  secret: string;
  usages: string[];
  groups: string[];
  expired: boolean;
}

/** Bootstrap tokens found in kube-system Secrets of type bootstrap.kubernetes.io/token. */
export function bootstrapTokens(store: Store, now = Date.now()): BootstrapToken[] {
  const out: BootstrapToken[] = [];
  for (const secret of store.list('secrets', 'kube-system/')) {
    if (secret.type !== 'bootstrap.kubernetes.io/token') continue;
    const id = secretValue(secret, 'token-id');
    const value = secretValue(secret, 'token-secret');
    if (!id || !value || secret.metadata?.name !== `bootstrap-token-${id}`) continue;
    const expiration = secretValue(secret, 'expiration');
    const usages = Object.keys({ ...(secret.data ?? {}), ...(secret.stringData ?? {}) })
      .filter((k) => k.startsWith('usage-bootstrap-') && secretValue(secret, k) === 'true')
      .map((k) => k.slice('usage-bootstrap-'.length));
    const extra = (secretValue(secret, 'auth-extra-groups') ?? '').split(',').map((g) => g.trim()).filter(Boolean);
    out.push({ id, secret: value, usages, groups: extra, expired: Boolean(expiration && Date.parse(expiration) < now) });
  }
  return out;
}

export function createAuthenticator(store: Store, initialTokens: Record<string, UserInfo>, caPem: string): Authenticator {
  const tokens = new Map(Object.entries(initialTokens));
  void caPem; // the TLS layer verifies client certificates against the CA (requestCert + ca)

  function tokenUser(token: string): UserInfo | undefined {
    const user = tokens.get(token);
    if (user) return { username: user.username, groups: [...new Set([...user.groups, 'system:authenticated'])], uid: user.uid };
    const m = BOOTSTRAP_TOKEN.exec(token);
    if (!m) return undefined;
    const found = bootstrapTokens(store).find((t) => t.id === m[1]);
    if (!found || found.expired || !equal(found.secret, m[2]!) || !found.usages.includes('authentication')) return undefined;
    return {
      username: `system:bootstrap:${found.id}`,
      groups: [...new Set(['system:bootstrappers', ...found.groups, 'system:authenticated'])],
    };
  }

  return {
    authenticate(req) {
      const socket = req.socket as TLSSocket;
      const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
      const presented = Boolean(cert && Object.keys(cert).length > 0);
      if (presented && !socket.authorized) throw errors.unauthorized();
      if (presented && cert) {
        if (cert.subject) {
          const cn = cert.subject.CN;
          const o = cert.subject.O;
          const username = Array.isArray(cn) ? cn[0] : cn;
          if (username) {
            const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
            return { username, groups: [...new Set([...groups, 'system:authenticated'])] };
          }
        }
      }
      const header = req.headers.authorization;
      if (header) {
        const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
        if (!m) throw errors.unauthorized();
        const user = tokenUser(m[1]!);
        if (!user) throw errors.unauthorized();
        return user;
      }
      return ANONYMOUS;
    },
    tokenUser,
    addToken: (token, user) => void tokens.set(token, user),
    removeToken: (token) => void tokens.delete(token),
  };
}
