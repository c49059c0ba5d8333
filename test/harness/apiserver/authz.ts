/**
 * Authorization: a list of allow rules (RBAC-like, without roles and bindings). A request is
 * allowed when one rule names its user or one of its groups, its verb, and its resource
 * (`pods`, `pods/status`, `*`) or non-resource path (`/healthz`, `/api/*`), and, when given, the
 * namespace and name. Tests replace the policy to take permissions away.
 */
export interface RequestAttributes {
  user: string;
  groups: string[];
  verb: string;
  /** Resource requests. */
  resource?: string;
  subresource?: string;
  apiGroup?: string;
  namespace?: string;
  name?: string;
  /** Non-resource requests. */
  path?: string;
}

export interface PolicyRule {
  users?: string[];
  groups?: string[];
  verbs: string[];
  // `pods`, `pods/status`, `leases.coordination.k8s.io`, `*` (any resource), `*/*` or `*/status` (subresources).
  resources?: string[];
  namespaces?: string[];
  names?: string[];
  /** `/healthz`, `/api/*`, `*`. */
  nonResourceURLs?: string[];
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** The default: admins and nodes do everything; bootstrappers may request certificates. */
export function defaultPolicy(): PolicyRule[] {
  return [
    { groups: ['system:masters'], verbs: ['*'], resources: ['*', '*/*'], nonResourceURLs: ['*'] },
    // A simplification: no Node authorizer, nodes may do everything.
    { groups: ['system:nodes'], verbs: ['*'], resources: ['*', '*/*'], nonResourceURLs: ['*'] },
    { groups: ['system:bootstrappers'], verbs: ['create', 'get', 'list', 'watch'], resources: ['certificatesigningrequests'] },
    {
      groups: ['system:authenticated'],
      verbs: ['get'],
      nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/version', '/version/', '/healthz', '/livez', '/readyz', '/openapi/*'],
    },
    { groups: ['system:authenticated'], verbs: ['create'], resources: ['selfsubjectaccessreviews'] },
    { groups: ['system:unauthenticated', 'system:authenticated'], verbs: ['get'], nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'] },
    { groups: ['system:unauthenticated', 'system:authenticated'], verbs: ['get'], resources: ['configmaps'], namespaces: ['kube-public'], names: ['cluster-info'] },
  ];
}

function matchesList(list: string[] | undefined, value: string | undefined): boolean {
  if (!list) return true;
  return list.includes('*') || (value !== undefined && list.includes(value));
}

function matchesResource(list: string[], attrs: RequestAttributes): boolean {
  const base = attrs.resource ?? '';
  const full = attrs.subresource ? `${base}/${attrs.subresource}` : base;
  const candidates = [full];
  if (attrs.apiGroup) candidates.push(attrs.subresource ? `${base}.${attrs.apiGroup}/${attrs.subresource}` : `${base}.${attrs.apiGroup}`);
  for (const entry of list) {
    if (entry === '*' && !attrs.subresource) return true;
    if (entry === '*/*') return true;
    if (attrs.subresource && entry === `*/${attrs.subresource}`) return true;
    if (attrs.subresource && entry === `${base}/*`) return true;
    if (candidates.includes(entry)) return true;
  }
  return false;
}

function matchesPath(list: string[], path: string): boolean {
  return list.some((entry) => entry === '*' || entry === path || (entry.endsWith('*') && path.startsWith(entry.slice(0, -1))));
}

export function authorize(rules: readonly PolicyRule[], attrs: RequestAttributes): Decision {
  for (const rule of rules) {
    const subject =
      (rule.users?.includes(attrs.user) ?? false) || (rule.groups?.some((g) => attrs.groups.includes(g)) ?? false);
    if (!subject) continue;
    if (!matchesList(rule.verbs, attrs.verb)) continue;
    if (attrs.resource !== undefined) {
      if (!rule.resources || !matchesResource(rule.resources, attrs)) continue;
      if (rule.namespaces && !matchesList(rule.namespaces, attrs.namespace)) continue;
      if (rule.names && !matchesList(rule.names, attrs.name)) continue;
      return { allowed: true, reason: 'allowed by policy' };
    }
    if (rule.nonResourceURLs && matchesPath(rule.nonResourceURLs, attrs.path ?? '')) return { allowed: true, reason: 'allowed by policy' };
  }
  return { allowed: false, reason: '' };
}
