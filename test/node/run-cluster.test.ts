/**
 * `keelson run` in cluster mode, through the real CLI: with the node's credentials lacking the
 * permissions it needs it says which one is missing and how to fix it, and it registers the Node
 * and renews its Lease — here with no container runtime at all, so Ready must be False, saying why.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { startTestApiserver, type PolicyRule, type TestApiserver } from '../harness/apiserver';
import { startKeelson, waitFor } from '../harness/keelson';

let api: TestApiserver;
let dir: string;

const policy: PolicyRule[] = [
  { groups: ['system:masters'], verbs: ['*'], resources: ['*', '*/*'], nonResourceURLs: ['*'] },
  { groups: ['system:nodes'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'], resources: ['nodes', 'nodes/status'] },
  { groups: ['system:nodes'], verbs: ['get', 'list', 'watch'], resources: ['pods', 'services'] },
  { groups: ['system:nodes'], verbs: ['create', 'delete'], resources: ['pods'] },
  { groups: ['system:nodes'], verbs: ['update', 'patch'], resources: ['pods/status'] },
  { groups: ['system:nodes'], verbs: ['create', 'update', 'patch'], resources: ['events', 'events.events.k8s.io'] },
  { groups: ['system:nodes'], verbs: ['get', 'create', 'update'], resources: ['leases.coordination.k8s.io'], namespaces: ['kube-node-lease'] },
  { groups: ['system:nodes'], verbs: ['create', 'get'], resources: ['certificatesigningrequests.certificates.k8s.io'] },
  { groups: ['system:authenticated'], verbs: ['create'], resources: ['selfsubjectaccessreviews'] },
];

test.before(async () => {
  api = await startTestApiserver({ policy });
  dir = mkdtempSync(join(tmpdir(), 'keelson-run-cluster-'));
});
test.after.always(async () => {
  await api?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.serial('keelson run names the missing permission, registers the Node and reports the runtime as the reason it is not Ready', async (t) => {
  const kubeconfig = await api.writeKubeconfig({ user: 'system:node:edge-run', groups: ['system:nodes'] });
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 0\nstaticPodPath: ${join(dir, 'manifests')}\n`);
  const k = startKeelson([
    'run', '--config', config, '--kubeconfig', kubeconfig, '--root-dir', join(dir, 'root'), '--components', 'kubelet',
    '--hostname-override', 'edge-run', '--container-runtime-endpoint', `unix://${join(dir, 'no-such.sock')}`, '--pod-logs-dir', join(dir, 'logs'),
  ]);
  t.teardown(() => k.stop());
  // kubelet alone needs nothing beyond the Node authorizer's grants: no complaint.
  await k.waitForLine(/keelson running/, 20_000);
  const ready = await waitFor('Node registered', async () => api.store.get('Node', undefined, 'edge-run')?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready'), 20_000, 100);
  t.is(ready.status, 'False');
  t.regex(ready.message, /container runtime is down/);
  const lease = await waitFor('Lease', async () => api.store.get('Lease', 'kube-node-lease', 'edge-run'), 20_000, 100);
  t.is(lease.spec.holderIdentity, 'edge-run');
  t.notRegex(k.output(), /lack/);
  await k.stop();

  // Take the Lease permissions away (the proxy and DNS are not started here: they would touch this
  // host's network outside a namespace); the message names exactly what is missing.
  api.setPolicy(policy.filter((r) => !r.resources?.includes('leases.coordination.k8s.io')));
  const k2 = startKeelson([
    'run', '--config', config, '--kubeconfig', kubeconfig, '--root-dir', join(dir, 'root2'), '--components', 'kubelet',
    '--hostname-override', 'edge-run', '--container-runtime-endpoint', `unix://${join(dir, 'no-such.sock')}`, '--pod-logs-dir', join(dir, 'logs'),
  ]);
  t.teardown(() => k2.stop());
  const line = await k2.waitForLine(/lack/, 20_000);
  t.regex(line, /get,update leases\.coordination\.k8s\.io in kube-node-lease \(edge-run\) \(needed by kubelet\)/);
  t.regex(line, /create leases\.coordination\.k8s\.io in kube-node-lease \(needed by kubelet\)/);
  t.regex(line, /Node authorizer/);
});
