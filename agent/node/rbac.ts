/**
 * Cluster-side permissions. A node's own credentials (`system:node:<name>`: Node authorizer + RBAC
 * on kubeadm clusters) may read Services, Pods and Nodes but not EndpointSlices or Namespaces,
 * which the proxy and DNS need. `keelson rbac` prints the one manifest an admin applies once per
 * cluster (read-only, bound to the group system:nodes); `checkPermissions` asks the apiserver with
 * SelfSubjectAccessReview whether each permission the enabled components need is granted.
 */
import type { SelfSubjectAccessReview } from 'kubernetes-types/authorization/v1';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';

export const RBAC_NAME = 'keelson:node-reader';
export const RBAC_FIX_COMMAND = 'keelson rbac | kubectl apply -f -';

/** The rules of the ClusterRole; also what `checkPermissions` expects the manifest to grant. */
export const RBAC_RULES: readonly { apiGroups: string[]; resources: string[]; verbs: string[] }[] = [
  { apiGroups: [''], resources: ['services', 'namespaces', 'pods', 'nodes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
];

function yamlList(values: string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(', ')}]`;
}

/** The manifest `keelson rbac` prints (kubectl apply -f -). */
export function rbacManifest(): string {
  const rules = RBAC_RULES.map((r) => `  - apiGroups: ${yamlList(r.apiGroups)}\n    resources: ${yamlList(r.resources)}\n    verbs: ${yamlList(r.verbs)}`).join('\n');
  return `# keelson: what the service proxy and cluster DNS read with the node's own credentials.
# Read-only, for the group every node's credentials belong to. Apply once per cluster:
#   ${RBAC_FIX_COMMAND}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ${RBAC_NAME}
  labels:
    app.kubernetes.io/name: keelson
rules:
${rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ${RBAC_NAME}
  labels:
    app.kubernetes.io/name: keelson
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ${RBAC_NAME}
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: system:nodes
`;
}

export interface Permission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export type NodeComponentName = 'kubelet' | 'proxy' | 'dns';

const watchable = (group: string, resource: string): Permission[] => ['list', 'watch'].map((verb) => ({ verb, group, resource }));

/** What each enabled component needs from the apiserver in cluster mode. */
export function requiredPermissions(components: readonly string[], nodeName: string): Map<NodeComponentName, Permission[]> {
  const needs = new Map<NodeComponentName, Permission[]>();
  if (components.includes('kubelet')) {
    needs.set('kubelet', [
      { verb: 'get', group: '', resource: 'nodes', name: nodeName },
      { verb: 'create', group: '', resource: 'nodes' },
      { verb: 'patch', group: '', resource: 'nodes', name: nodeName },
      { verb: 'patch', group: '', resource: 'nodes', subresource: 'status', name: nodeName },
      { verb: 'get', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease', name: nodeName },
      { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease' },
      { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease', name: nodeName },
      { verb: 'create', group: 'certificates.k8s.io', resource: 'certificatesigningrequests' },
      ...watchable('', 'pods'),
      // Pod status, mirror pods for static pods, and Events. (ConfigMaps, Secrets and
      // service account tokens are checked by the Node authorizer per related pod, so a
      // name-less review would be refused on a healthy cluster: those are not checked here.)
      { verb: 'patch', group: '', resource: 'pods', subresource: 'status' },
      { verb: 'create', group: '', resource: 'pods' },
      { verb: 'delete', group: '', resource: 'pods' },
      { verb: 'create', group: '', resource: 'events' },
      { verb: 'patch', group: '', resource: 'events' },
    ]);
  }
  if (components.includes('proxy')) {
    needs.set('proxy', [...watchable('', 'services'), ...watchable('discovery.k8s.io', 'endpointslices')]);
  }
  if (components.includes('dns')) {
    needs.set('dns', [...watchable('', 'services'), ...watchable('discovery.k8s.io', 'endpointslices'), ...watchable('', 'namespaces'), ...watchable('', 'pods')]);
  }
  return needs;
}

function keyOf(p: Permission): string {
  return [p.verb, p.group, p.resource, p.subresource ?? '', p.namespace ?? '', p.name ?? ''].join('|');
}

/** `list endpointslices.discovery.k8s.io`, `patch nodes/status (edge-1)`, `update leases.coordination.k8s.io in kube-node-lease`. */
export function describePermission(p: Permission): string {
  const resource = `${p.resource}${p.group ? `.${p.group}` : ''}${p.subresource ? `/${p.subresource}` : ''}`;
  return `${p.verb} ${resource}${p.namespace ? ` in ${p.namespace}` : ''}${p.name ? ` (${p.name})` : ''}`;
}

export interface MissingPermission extends Permission {
  components: NodeComponentName[];
}

export interface PermissionReport {
  ok: boolean;
  missing: MissingPermission[];
  /** One line naming what is missing, for whom, and the fix; empty when ok. */
  message: string;
}

/**
 * Asks the apiserver, with one SelfSubjectAccessReview per distinct permission, whether the
 * client's credentials hold everything `components` need. Network errors propagate.
 */
export async function checkPermissions(
  client: Pick<KubeClient, 'create'>,
  components: readonly string[],
  options: { nodeName: string },
): Promise<PermissionReport> {
  const needs = requiredPermissions(components, options.nodeName);
  const distinct = new Map<string, MissingPermission>();
  for (const [component, permissions] of needs) {
    for (const p of permissions) {
      const entry = distinct.get(keyOf(p)) ?? { ...p, components: [] };
      if (!entry.components.includes(component)) entry.components.push(component);
      distinct.set(keyOf(p), entry);
    }
  }
  const results = await Promise.all(
    [...distinct.values()].map(async (p) => {
      const review = await client.create(Resources.selfsubjectaccessreviews, {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: {
          resourceAttributes: {
            verb: p.verb,
            group: p.group,
            resource: p.resource,
            ...(p.subresource ? { subresource: p.subresource } : {}),
            ...(p.namespace ? { namespace: p.namespace } : {}),
            ...(p.name ? { name: p.name } : {}),
          },
        },
      } as SelfSubjectAccessReview);
      return { p, allowed: review.status?.allowed === true };
    }),
  );
  const missing = results.filter((r) => !r.allowed).map((r) => r.p);
  if (missing.length === 0) return { ok: true, missing, message: '' };
  // Group verbs of the same resource: "list,watch endpointslices.discovery.k8s.io (needed by proxy, dns)".
  const grouped = new Map<string, { verbs: string[]; rest: string; components: Set<string> }>();
  for (const m of missing) {
    const rest = describePermission({ ...m, verb: '' }).trim();
    const g = grouped.get(rest) ?? { verbs: [], rest, components: new Set<string>() };
    g.verbs.push(m.verb);
    for (const c of m.components) g.components.add(c);
    grouped.set(rest, g);
  }
  const parts = [...grouped.values()].map((g) => `${g.verbs.join(',')} ${g.rest} (needed by ${[...g.components].join(', ')})`);
  const onlyReads = missing.every((m) => ['get', 'list', 'watch'].includes(m.verb) && RBAC_RULES.some((r) => r.apiGroups.includes(m.group) && r.resources.includes(m.resource)));
  const fix = onlyReads
    ? `a cluster admin fixes this once per cluster with: ${RBAC_FIX_COMMAND}`
    : `these are normally granted to nodes by the Node authorizer (kube-apiserver --authorization-mode=Node,RBAC); ${RBAC_FIX_COMMAND} covers the read-only ones`;
  return { ok: false, missing, message: `the node's credentials lack: ${parts.join('; ')}; ${fix}` };
}
