import test from 'ava';
import { parseAllDocuments } from 'yaml';
import { createKubeClient, type KubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import { checkPermissions, rbacManifest, RBAC_FIX_COMMAND } from '../../agent/node/rbac';
import { startTestApiserver, type PolicyRule, type TestApiserver } from '../harness/apiserver';
import { captureLogger } from './helpers';

let api: TestApiserver;
let client: KubeClient;

/** What a kubeadm cluster's Node authorizer lets a node do (simplified): no EndpointSlices, no Namespaces. */
function nodeAuthorizerLike(): PolicyRule[] {
  return [
    { groups: ['system:masters'], verbs: ['*'], resources: ['*', '*/*'], nonResourceURLs: ['*'] },
    { groups: ['system:nodes'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'], resources: ['nodes', 'nodes/status'] },
    { groups: ['system:nodes'], verbs: ['get', 'list', 'watch'], resources: ['pods', 'services'] },
    { groups: ['system:nodes'], verbs: ['create', 'delete'], resources: ['pods'] },
    { groups: ['system:nodes'], verbs: ['update', 'patch'], resources: ['pods/status'] },
    { groups: ['system:nodes'], verbs: ['create', 'update', 'patch'], resources: ['events', 'events.events.k8s.io'] },
    { groups: ['system:nodes'], verbs: ['get', 'create', 'update'], resources: ['leases.coordination.k8s.io'], namespaces: ['kube-node-lease'] },
    { groups: ['system:nodes'], verbs: ['create', 'get', 'list', 'watch'], resources: ['certificatesigningrequests.certificates.k8s.io'] },
    { groups: ['system:authenticated'], verbs: ['create'], resources: ['selfsubjectaccessreviews'] },
  ];
}

/** The ClusterRole/ClusterRoleBinding of `keelson rbac`, as the test apiserver's policy rules. */
function rulesFromManifest(text: string): PolicyRule[] {
  const docs = parseAllDocuments(text).map((d) => d.toJS());
  const role = docs.find((d) => d.kind === 'ClusterRole');
  const binding = docs.find((d) => d.kind === 'ClusterRoleBinding');
  if (binding.roleRef.name !== role.metadata.name) throw new Error('binding does not reference the role');
  const groups = binding.subjects.filter((s: { kind: string }) => s.kind === 'Group').map((s: { name: string }) => s.name);
  return role.rules.map((r: { apiGroups: string[]; resources: string[]; verbs: string[] }) => ({
    groups,
    verbs: r.verbs,
    resources: r.resources.flatMap((res) => r.apiGroups.map((g) => (g ? `${res}.${g}` : res))),
  }));
}

test.before(async () => {
  api = await startTestApiserver({ policy: nodeAuthorizerLike() });
  client = createKubeClient(loadKubeconfig(await api.writeKubeconfig({ user: 'system:node:edge-r', groups: ['system:nodes'] })), { logger: captureLogger('silent').logger });
});
test.after.always(async () => {
  client?.close();
  await api?.stop();
});

test.serial('without the manifest, the check names each missing permission, who needs it, and the fix', async (t) => {
  const report = await checkPermissions(client, ['kubelet', 'proxy', 'dns'], { nodeName: 'edge-r' });
  t.false(report.ok);
  t.deepEqual(
    report.missing.map((m) => `${m.verb} ${m.resource}`).sort(),
    ['list endpointslices', 'list namespaces', 'watch endpointslices', 'watch namespaces'],
  );
  t.true(report.message.includes('list,watch endpointslices.discovery.k8s.io (needed by proxy, dns)'), report.message);
  t.true(report.message.includes('list,watch namespaces (needed by dns)'), report.message);
  t.true(report.message.includes(RBAC_FIX_COMMAND));
  // The kubelet alone needs nothing the Node authorizer does not give.
  t.true((await checkPermissions(client, ['kubelet'], { nodeName: 'edge-r' })).ok);
  // And the permission really is missing, not just reported so.
  await t.throwsAsync(client.list(Resources.endpointslices), { message: /403/ });
});

test.serial('with the manifest applied, the node can list and watch everything the components need', async (t) => {
  const manifest = rbacManifest();
  const rules = rulesFromManifest(manifest);
  // Least privilege: read-only verbs only, bound to system:nodes.
  t.true(rules.every((r) => r.verbs.every((v) => ['get', 'list', 'watch'].includes(v))));
  t.true(rules.every((r) => r.groups?.length === 1 && r.groups[0] === 'system:nodes'));
  api.setPolicy([...nodeAuthorizerLike(), ...rules]);
  const report = await checkPermissions(client, ['kubelet', 'proxy', 'dns'], { nodeName: 'edge-r' });
  t.true(report.ok, report.message);
  for (const res of [Resources.endpointslices, Resources.namespaces, Resources.services, Resources.pods, Resources.nodes]) {
    const list = await client.list(res as typeof Resources.namespaces);
    t.truthy(list.metadata.resourceVersion, res.resource);
    const events: string[] = [];
    const watch = client.watch(res as typeof Resources.namespaces, { resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 1, onOpen: () => events.push('open') }, () => undefined);
    t.is(await watch.done, 'closed', res.resource);
    t.deepEqual(events, ['open']);
  }
});
