/**
 * Create-only APIs: TokenReview (who is this token), SubjectAccessReview and
 * SelfSubjectAccessReview (answered from the policy), and TokenRequest for ServiceAccounts
 * (an opaque random token, registered with the authenticator; not a signed JWT).
 */
import { randomBytes } from 'node:crypto';
import type { Authenticator, UserInfo } from './authn';
import { authorize } from './authz';
import type { PolicyRule, RequestAttributes } from './authz';
import type { ResourceDef } from './resources';
import { errors } from './status';
import type { Obj } from './store';

function attributesFrom(spec: Obj, user: string, groups: string[]): RequestAttributes {
  const ra = spec.resourceAttributes as Obj | undefined;
  const nra = spec.nonResourceAttributes as Obj | undefined;
  if (ra) {
    return {
      user,
      groups,
      verb: ra.verb ?? '',
      resource: ra.resource ?? '',
      subresource: ra.subresource || undefined,
      apiGroup: ra.group ?? '',
      namespace: ra.namespace || undefined,
      name: ra.name || undefined,
    };
  }
  return { user, groups, verb: nra?.verb ?? '', path: nra?.path ?? '' };
}

export function createReviews(authn: Authenticator, policy: () => readonly PolicyRule[]) {
  function review(def: ResourceDef, body: Obj, requester: UserInfo): Obj {
    if (!body || typeof body !== 'object') throw errors.badRequest('the body of the request was not a JSON object');
    const spec = (body.spec ?? {}) as Obj;
    const base = { kind: def.kind, apiVersion: `${def.group}/${def.version}`, metadata: { creationTimestamp: null, ...(body.metadata ?? {}) }, spec };
    switch (def.kind) {
      case 'TokenReview': {
        const user = typeof spec.token === 'string' ? authn.tokenUser(spec.token) : undefined;
        return {
          ...base,
          spec: { ...spec },
          status: user
            ? { authenticated: true, user: { username: user.username, uid: user.uid, groups: user.groups }, audiences: spec.audiences }
            : { user: {}, error: 'invalid bearer token' },
        };
      }
      case 'SubjectAccessReview': {
        if (!spec.user && !(spec.groups?.length)) {
          throw errors.invalid(def.kind, def.group, '', [{ field: 'spec.user', message: 'Invalid value: "": at least one of user or group must be specified' }]);
        }
        const decision = authorize(policy(), attributesFrom(spec, spec.user ?? '', spec.groups ?? []));
        return { ...base, status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) } };
      }
      case 'SelfSubjectAccessReview': {
        const decision = authorize(policy(), attributesFrom(spec, requester.username, requester.groups));
        return { ...base, status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) } };
      }
      default:
        throw errors.methodNotAllowed('POST');
    }
  }

  function tokenRequest(namespace: string, name: string, body: Obj): Obj {
    const seconds = Math.max(600, Number(body?.spec?.expirationSeconds ?? 3600));
    const token = randomBytes(32).toString('base64url');
    authn.addToken(token, {
      username: `system:serviceaccount:${namespace}:${name}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`],
    });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace, creationTimestamp: null },
      spec: { audiences: body?.spec?.audiences ?? ['https://kubernetes.default.svc'], expirationSeconds: seconds, boundObjectRef: body?.spec?.boundObjectRef ?? null },
      status: { token, expirationTimestamp: new Date(Date.now() + seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  return { review, tokenRequest };
}
