/**
 * Who may use the kubelet API, as kubelet decides it (authentication.x509 + webhook,
 * authorization.mode=Webhook):
 * - a TLS client certificate verified against the cluster CA (CN = user, O = groups), or a bearer
 *   token the apiserver's TokenReview accepts; a request with neither is anonymous and refused (401);
 * - then a SubjectAccessReview for `<verb> nodes/<subresource>` on this node's name, the verb from
 *   the HTTP method and the subresource from the path (stats, metrics, log, else proxy); denied → 403.
 * Answers are cached as kubelet's webhook defaults do (token 2 min; allowed 5 min, denied 30 s).
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export interface NodeRequestAttributes {
  verb: string;
  /** Always `nodes` (core group), named after this node. */
  resource: 'nodes';
  subresource: string;
  name: string;
}

export interface Decision {
  allowed: boolean;
  reason?: string;
}

/** The two apiserver reviews the kubelet API needs. */
export interface ApiReviewer {
  /** The user behind a bearer token, or undefined when the apiserver does not accept it. */
  reviewToken(token: string): Promise<UserInfo | undefined>;
  authorize(user: UserInfo, attributes: NodeRequestAttributes): Promise<Decision>;
}

/** kubelet's method → verb mapping. */
export function verbFor(method: string | undefined): string {
  switch ((method ?? 'GET').toUpperCase()) {
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return 'get';
  }
}

const isUnder = (path: string, base: string) => path === base || path.startsWith(base + '/');

/** kubelet's path → nodes subresource mapping. */
export function subresourceFor(path: string): string {
  if (isUnder(path, '/stats')) return 'stats';
  if (isUnder(path, '/metrics')) return 'metrics';
  if (isUnder(path, '/logs')) return 'log';
  if (isUnder(path, '/checkpoint')) return 'checkpoint';
  return 'proxy';
}

export function requestAttributes(method: string | undefined, path: string, nodeName: string): NodeRequestAttributes {
  return { verb: verbFor(method), resource: 'nodes', subresource: subresourceFor(path), name: nodeName };
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export type Authentication = { user: UserInfo } | { anonymous: true } | { rejected: string };

/**
 * Authenticates one request: a verified client certificate first (as kube components do), then
 * an `Authorization: Bearer` token through the reviewer.
 */
export async function authenticate(req: IncomingMessage, reviewer: ApiReviewer): Promise<Authentication> {
  const socket = req.socket as TLSSocket;
  if (socket.authorized) {
    const cert = socket.getPeerCertificate();
    const cn = cert?.subject?.CN;
    const username = Array.isArray(cn) ? cn[0] : cn;
    if (username) return { user: { username, groups: asList(cert.subject.O as string | string[] | undefined) } };
  }
  const header = req.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return { rejected: 'unsupported authorization scheme' };
    const user = await reviewer.reviewToken(match[1]!);
    return user ? { user } : { rejected: 'invalid bearer token' };
  }
  return { anonymous: true };
}

interface CacheEntry<T> {
  value: T;
  expires: number;
}

/** A small TTL cache that drops its oldest entries beyond `max`. */
function ttlCache<T>(max: number) {
  const entries = new Map<string, CacheEntry<T>>();
  return {
    get(key: string, now: number): T | undefined {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.expires <= now) {
        entries.delete(key);
        return undefined;
      }
      return e.value;
    },
    set(key: string, value: T, ttlMs: number, now: number) {
      entries.delete(key);
      entries.set(key, { value, expires: now + ttlMs });
      while (entries.size > max) entries.delete(entries.keys().next().value!);
    },
  };
}

export interface ReviewerOptions {
  logger: Logger;
  tokenTtlMs?: number;
  allowedTtlMs?: number;
  deniedTtlMs?: number;
  now?: () => number;
}

/** TokenReview and SubjectAccessReview through the node's own apiserver client. */
export function createApiReviewer(client: KubeClient, options: ReviewerOptions): ApiReviewer {
  const now = options.now ?? Date.now;
  const tokens = ttlCache<UserInfo | null>(1024);
  const decisions = ttlCache<Decision>(4096);
  const tokenTtl = options.tokenTtlMs ?? 120_000;
  return {
    async reviewToken(token) {
      const cached = tokens.get(token, now());
      if (cached !== undefined) return cached ?? undefined;
      const review = await client.create(Resources.tokenreviews, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
      const status = review.status;
      const user: UserInfo | null =
        status?.authenticated && status.user?.username
          ? {
              username: status.user.username,
              ...(status.user.uid ? { uid: status.user.uid } : {}),
              groups: status.user.groups ?? [],
              ...(status.user.extra ? { extra: status.user.extra } : {}),
            }
          : null;
      // failed reviews are cached briefly too, so a client retrying a bad token costs one review per 10 s
      tokens.set(token, user, user ? tokenTtl : 10_000, now());
      return user ?? undefined;
    },
    async authorize(user, attributes) {
      const key = JSON.stringify([user.username, user.uid ?? '', [...user.groups].sort(), user.extra ?? {}, attributes]);
      const cached = decisions.get(key, now());
      if (cached) return cached;
      const review = await client.create(Resources.subjectaccessreviews, {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          groups: user.groups,
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: { verb: attributes.verb, resource: attributes.resource, subresource: attributes.subresource, name: attributes.name, group: '', version: 'v1' },
        },
      });
      const decision: Decision = { allowed: review.status?.allowed === true, ...(review.status?.reason ? { reason: review.status.reason } : {}) };
      decisions.set(key, decision, decision.allowed ? (options.allowedTtlMs ?? 300_000) : (options.deniedTtlMs ?? 30_000), now());
      return decision;
    },
  };
}
