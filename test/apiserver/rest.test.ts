import test from 'ava';
import { startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { call, pod as anyPod, watch } from './helpers';

const pod = (name: string, extra: Parameters<typeof anyPod>[1] = {}) => anyPod(name, { namespace: 'rest', ...extra });

let api: TestApiserver;

test.before(async () => {
  api = await startTestApiserver();
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'rest' } } });
});

test.after.always(async () => {
  await api?.stop();
});

const MERGE = 'application/merge-patch+json';
const SMP = 'application/strategic-merge-patch+json';
const JSONPATCH = 'application/json-patch+json';

test('create fills metadata and defaults; 409 AlreadyExists; 404 NotFound with Status bodies', async (t) => {
  const created = await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: pod('meta') });
  t.is(created.status, 201);
  const meta = created.body.metadata;
  t.is(meta.namespace, 'rest', 'namespace defaulted from the URL');
  t.is(meta.generation, 1);
  t.like(created.body, { kind: 'Pod', apiVersion: 'v1', status: { phase: 'Pending', qosClass: 'BestEffort' } });
  t.like(created.body.spec, { restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst' });
  t.is(created.body.spec.containers[0].imagePullPolicy, 'IfNotPresent');
  const again = await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: pod('meta') });
  t.is(again.status, 409);
  t.deepEqual(again.body, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'pods "meta" already exists', reason: 'AlreadyExists', details: { name: 'meta', kind: 'pods' }, code: 409,
  });
  const missing = await call(api, 'GET', '/apis/coordination.k8s.io/v1/namespaces/rest/leases/nope');
  t.is(missing.status, 404);
  t.like(missing.body, { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404, message: 'leases.coordination.k8s.io "nope" not found', details: { name: 'nope', group: 'coordination.k8s.io', kind: 'leases' } });
  const noNs = await call(api, 'POST', '/api/v1/namespaces/absent/configmaps', { body: { metadata: { name: 'x' } } });
  t.is(noNs.status, 404);
  t.is(noNs.body.message, 'namespaces "absent" not found');
  const generated = await call(api, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
    body: { metadata: { generateName: 'csr-' }, spec: { request: 'eA==', signerName: 'example.com/x', usages: ['client auth'] } },
  });
  t.regex(generated.body.metadata.name, /^csr-[a-z0-9]{5}$/);
  t.is(generated.body.spec.username, 'admin', 'CSR requester filled from the authenticated user');
});

test('422 Invalid for invalid objects, 400 for a mismatched kind or namespace', async (t) => {
  const noName = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: {} } });
  t.is(noName.status, 422);
  t.is(noName.body.reason, 'Invalid');
  t.is(noName.body.details.causes[0].field, 'metadata.name');
  const badName = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'Bad_Name' } } });
  t.is(badName.status, 422);
  const noContainers = await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: { metadata: { name: 'empty' }, spec: { containers: [] } } });
  t.is(noContainers.status, 422);
  t.regex(noContainers.body.message, /spec.containers/);
  const badLabel = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'l', labels: { 'a b': 'c' } } } });
  t.is(badLabel.status, 422);
  const wrongKind = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { kind: 'Secret', apiVersion: 'v1', metadata: { name: 'k' } } });
  t.is(wrongKind.status, 400);
  const wrongNs = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'k', namespace: 'other' } } });
  t.is(wrongNs.status, 400);
  const notJson = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: '{nope' });
  t.is(notJson.status, 400);
});

test('update with a stale resourceVersion is 409 Conflict; without one it is unconditional', async (t) => {
  const created = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'occ' }, data: { a: '1' } } });
  const first = await call(api, 'PUT', '/api/v1/namespaces/rest/configmaps/occ', { body: { ...created.body, data: { a: '2' } } });
  t.is(first.status, 200);
  const stale = await call(api, 'PUT', '/api/v1/namespaces/rest/configmaps/occ', { body: { ...created.body, data: { a: '3' } } });
  t.is(stale.status, 409);
  t.is(stale.body.reason, 'Conflict');
  t.is(stale.body.message, 'Operation cannot be fulfilled on configmaps "occ": the object has been modified; please apply your changes to the latest version and try again');
  const { resourceVersion: _rv, ...metaNoRv } = created.body.metadata;
  const unconditional = await call(api, 'PUT', '/api/v1/namespaces/rest/configmaps/occ', { body: { ...created.body, metadata: metaNoRv, data: { a: '4' } } });
  t.is(unconditional.status, 200);
  t.is(unconditional.body.metadata.uid, created.body.metadata.uid);
  const stalePatch = await call(api, 'PATCH', '/api/v1/namespaces/rest/configmaps/occ', { body: { metadata: { resourceVersion: created.body.metadata.resourceVersion }, data: { a: '5' } }, contentType: MERGE });
  t.is(stalePatch.status, 409, 'a resourceVersion in a patch is a precondition');
  const missing = await call(api, 'PUT', '/api/v1/namespaces/rest/configmaps/absent', { body: { metadata: { name: 'absent' } } });
  t.is(missing.status, 404);
  const lease = await call(api, 'PUT', '/apis/coordination.k8s.io/v1/namespaces/rest/leases/upsert', { body: { metadata: { name: 'upsert' }, spec: { holderIdentity: 'n1' } } });
  t.is(lease.status, 201, 'Leases are created by PUT, as upstream');
});

test('generation increases on spec changes only', async (t) => {
  const created = await call(api, 'POST', '/api/v1/namespaces/rest/services', { body: { metadata: { name: 'gen' }, spec: { ports: [{ port: 80 }], selector: { a: 'b' } } } });
  t.is(created.body.metadata.generation, 1);
  t.regex(created.body.spec.clusterIP, /^10\.9[6-9]\./);
  t.like(created.body.spec.ports[0], { port: 80, targetPort: 80, protocol: 'TCP' });
  const labelled = await call(api, 'PATCH', '/api/v1/namespaces/rest/services/gen', { body: { metadata: { labels: { x: 'y' } } }, contentType: MERGE });
  t.is(labelled.body.metadata.generation, 1);
  const changed = await call(api, 'PATCH', '/api/v1/namespaces/rest/services/gen', { body: { spec: { selector: { a: 'c' } } }, contentType: MERGE });
  t.is(changed.body.metadata.generation, 2);
});

test('status subresource: /status never changes spec; the main resource ignores status', async (t) => {
  const created = await call(api, 'POST', '/api/v1/nodes', { body: { metadata: { name: 'status-node' }, spec: { podCIDR: '10.244.1.0/24' }, status: { capacity: { pods: '10' } } } });
  t.is(created.status, 201);
  const viaMain = await call(api, 'PUT', '/api/v1/nodes/status-node', {
    body: { ...created.body, metadata: { ...created.body.metadata, labels: { a: 'b' } }, status: { phase: 'Running' } },
  });
  t.deepEqual(viaMain.body.metadata.labels, { a: 'b' });
  t.deepEqual(viaMain.body.status ?? {}, created.body.status ?? {}, 'status ignored on the main resource');
  const viaStatus = await call(api, 'PUT', '/api/v1/nodes/status-node/status', {
    body: { ...viaMain.body, metadata: { ...viaMain.body.metadata, labels: { a: 'changed' } }, spec: { podCIDR: '10.0.0.0/24' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } },
  });
  t.is(viaStatus.status, 200);
  t.deepEqual(viaStatus.body.status, { conditions: [{ type: 'Ready', status: 'True' }] });
  t.deepEqual(viaStatus.body.metadata.labels, { a: 'changed' }, 'metadata may change through /status, as upstream');
  t.is(viaStatus.body.spec.podCIDR, '10.244.1.0/24', 'spec ignored on /status');
  const patched = await call(api, 'PATCH', '/api/v1/nodes/status-node/status', { body: { spec: { unschedulable: true }, status: { phase: 'x' } }, contentType: MERGE });
  t.is(patched.body.spec.unschedulable, undefined);
  t.is(patched.body.status.phase, 'x');
  const got = await call(api, 'GET', '/api/v1/nodes/status-node/status');
  t.is(got.body.metadata.name, 'status-node');
});

test('graceful pod deletion: a bound pod gets deletionTimestamp, the kubelet removes it with grace 0', async (t) => {
  const list = await call(api, 'GET', '/api/v1/namespaces/rest/pods');
  const w = watch(api, `/api/v1/namespaces/rest/pods?watch=1&resourceVersion=${list.body.metadata.resourceVersion}&fieldSelector=${encodeURIComponent('metadata.name=graceful')}`);
  t.teardown(() => w.close());
  await w.status;
  const created = await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: { ...pod('graceful', { nodeName: 'n1' }), spec: { ...pod('x').spec, nodeName: 'n1', terminationGracePeriodSeconds: 20 } } });
  t.is(created.status, 201);
  const before = Date.now();
  const deleted = await call(api, 'DELETE', '/api/v1/namespaces/rest/pods/graceful');
  t.is(deleted.status, 202);
  t.is(deleted.body.metadata.deletionGracePeriodSeconds, 20);
  const due = Date.parse(deleted.body.metadata.deletionTimestamp);
  t.true(due >= before + 18000 && due <= Date.now() + 21000);
  t.is((await call(api, 'GET', '/api/v1/namespaces/rest/pods/graceful')).status, 200, 'still there');
  const shorter = await call(api, 'DELETE', '/api/v1/namespaces/rest/pods/graceful', { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 5 } });
  t.is(shorter.body.metadata.deletionGracePeriodSeconds, 5);
  const longer = await call(api, 'DELETE', '/api/v1/namespaces/rest/pods/graceful', { body: { gracePeriodSeconds: 60 } });
  t.is(longer.body.metadata.deletionGracePeriodSeconds, 5, 'a deletion never lengthens the grace period');
  const status = await call(api, 'PATCH', '/api/v1/namespaces/rest/pods/graceful/status', { body: { status: { phase: 'Running' } }, contentType: MERGE });
  t.truthy(status.body.metadata.deletionTimestamp, 'status updates keep the deletion mark');
  const gone = await call(api, 'DELETE', '/api/v1/namespaces/rest/pods/graceful?gracePeriodSeconds=0');
  t.is(gone.status, 200);
  t.is((await call(api, 'GET', '/api/v1/namespaces/rest/pods/graceful')).status, 404);
  const events = await w.waitFor(5);
  t.deepEqual(events.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'DELETED']);

  const unbound = await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: pod('unbound-del') });
  t.is(unbound.status, 201);
  const immediate = await call(api, 'DELETE', '/api/v1/namespaces/rest/pods/unbound-del');
  t.is(immediate.status, 200);
  t.is((await call(api, 'GET', '/api/v1/namespaces/rest/pods/unbound-del')).status, 404, 'unbound pods go at once');
  const cm = await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'del' } } });
  const cmDel = await call(api, 'DELETE', '/api/v1/namespaces/rest/configmaps/del', { body: { preconditions: { uid: 'wrong' } } });
  t.is(cmDel.status, 409);
  const ok = await call(api, 'DELETE', '/api/v1/namespaces/rest/configmaps/del', { body: { preconditions: { uid: cm.body.metadata.uid } } });
  t.like(ok.body, { kind: 'Status', status: 'Success', details: { name: 'del', kind: 'configmaps' } });
});

test('finalizers hold a deleted object until they are removed', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'fin', finalizers: ['example.com/hold'] } } });
  const del = await call(api, 'DELETE', '/api/v1/namespaces/rest/configmaps/fin');
  t.is(del.status, 202);
  t.truthy(del.body.metadata.deletionTimestamp);
  const released = await call(api, 'PATCH', '/api/v1/namespaces/rest/configmaps/fin', { body: { metadata: { finalizers: null } }, contentType: MERGE });
  t.is(released.status, 200);
  t.is((await call(api, 'GET', '/api/v1/namespaces/rest/configmaps/fin')).status, 404);
});

test('merge patch (RFC 7386)', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'mp', labels: { a: '1', b: '2' } }, data: { x: '1', y: '2' } } });
  const r = await call(api, 'PATCH', '/api/v1/namespaces/rest/configmaps/mp', { body: { metadata: { labels: { a: null, c: '3' } }, data: { y: '9' } }, contentType: MERGE });
  t.is(r.status, 200);
  t.deepEqual(r.body.metadata.labels, { b: '2', c: '3' });
  t.deepEqual(r.body.data, { x: '1', y: '9' });
  const apply = await call(api, 'PATCH', '/api/v1/namespaces/rest/configmaps/mp', { body: 'a: b', contentType: 'application/apply-patch+yaml' });
  t.is(apply.status, 415);
  const missing = await call(api, 'PATCH', '/api/v1/namespaces/rest/configmaps/none', { body: {}, contentType: MERGE });
  t.is(missing.status, 404);
});

test('strategic merge patch: containerStatuses by name, conditions by type, containers, $patch', async (t) => {
  const created = await call(api, 'POST', '/api/v1/namespaces/rest/pods', {
    body: { metadata: { name: 'smp' }, spec: { nodeName: 'n1', containers: [{ name: 'a', image: 'busybox:1' }, { name: 'b', image: 'busybox:1' }] } },
  });
  t.is(created.status, 201);
  const path = '/api/v1/namespaces/rest/pods/smp/status';
  await call(api, 'PATCH', path, {
    contentType: SMP,
    body: {
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'False' }, { type: 'Initialized', status: 'True' }],
        containerStatuses: [{ name: 'a', ready: false, restartCount: 0 }, { name: 'b', ready: false, restartCount: 0 }],
      },
    },
  });
  const r = await call(api, 'PATCH', path, {
    contentType: SMP,
    body: { status: { conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'b', ready: true }] } },
  });
  t.is(r.status, 200);
  t.deepEqual(r.body.status.conditions, [{ type: 'Ready', status: 'True' }, { type: 'Initialized', status: 'True' }]);
  t.deepEqual(r.body.status.containerStatuses, [{ name: 'a', ready: false, restartCount: 0 }, { name: 'b', ready: true, restartCount: 0 }]);
  t.is(r.body.status.phase, 'Running');
  const del = await call(api, 'PATCH', path, {
    contentType: SMP,
    body: { status: { conditions: [{ type: 'Initialized', $patch: 'delete' }], $setElementOrder$: undefined } },
  });
  t.deepEqual(del.body.status.conditions, [{ type: 'Ready', status: 'True' }]);
  const replaced = await call(api, 'PATCH', path, {
    contentType: SMP,
    body: { status: { containerStatuses: [{ name: 'z', ready: true }, { $patch: 'replace' }] } },
  });
  t.deepEqual(replaced.body.status.containerStatuses, [{ name: 'z', ready: true }]);
  const spec = await call(api, 'PATCH', '/api/v1/namespaces/rest/pods/smp', {
    contentType: SMP,
    body: { metadata: { labels: { l: 'v' } }, spec: { containers: [{ name: 'b', image: 'busybox:2' }], activeDeadlineSeconds: 5 } },
  });
  t.deepEqual(spec.body.spec.containers.map((c: any) => `${c.name}=${c.image}`), ['a=busybox:1', 'b=busybox:2']);
  const node = await call(api, 'POST', '/api/v1/nodes', { body: { metadata: { name: 'smp-node' } } });
  t.is(node.status, 201);
  await call(api, 'PATCH', '/api/v1/nodes/smp-node/status', { contentType: SMP, body: { status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'Hostname', address: 'h' }] } } });
  const addr = await call(api, 'PATCH', '/api/v1/nodes/smp-node/status', {
    contentType: SMP,
    body: { status: { addresses: [{ type: 'InternalIP', address: '10.0.0.2' }], $setElementOrder$: undefined, conditions: [{ type: 'Ready', status: 'True' }] } },
  });
  t.deepEqual(addr.body.status.addresses, [{ type: 'InternalIP', address: '10.0.0.2' }, { type: 'Hostname', address: 'h' }]);
  const order = await call(api, 'PATCH', '/api/v1/nodes/smp-node/status', {
    contentType: SMP,
    body: { status: { '$setElementOrder/addresses': [{ type: 'Hostname' }, { type: 'InternalIP' }], addresses: [{ type: 'Hostname', address: 'h2' }] } },
  });
  t.deepEqual(order.body.status.addresses, [{ type: 'Hostname', address: 'h2' }, { type: 'InternalIP', address: '10.0.0.2' }]);
  const finalizers = await call(api, 'PATCH', '/api/v1/nodes/smp-node', { contentType: SMP, body: { metadata: { finalizers: ['a/b'] } } });
  const more = await call(api, 'PATCH', '/api/v1/nodes/smp-node', { contentType: SMP, body: { metadata: { finalizers: ['c/d'] } } });
  t.deepEqual(finalizers.body.metadata.finalizers, ['a/b']);
  t.deepEqual(more.body.metadata.finalizers, ['a/b', 'c/d'], 'primitive lists with a merge strategy are unioned');
  const removed = await call(api, 'PATCH', '/api/v1/nodes/smp-node', { contentType: SMP, body: { metadata: { '$deleteFromPrimitiveList/finalizers': ['a/b', 'c/d'] } } });
  t.is(removed.body.metadata.finalizers?.length ?? 0, 0);
});

test('JSON patch (RFC 6902) including test', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/rest/configmaps', { body: { metadata: { name: 'jp', labels: { 'a/b': '1' } }, data: { x: '1' } } });
  const path = '/api/v1/namespaces/rest/configmaps/jp';
  const r = await call(api, 'PATCH', path, {
    contentType: JSONPATCH,
    body: [
      { op: 'test', path: '/data/x', value: '1' },
      { op: 'add', path: '/data/y', value: '2' },
      { op: 'replace', path: '/data/x', value: '3' },
      { op: 'remove', path: '/metadata/labels/a~1b' },
      { op: 'copy', from: '/data/y', path: '/data/z' },
      { op: 'move', from: '/data/z', path: '/data/w' },
    ],
  });
  t.is(r.status, 200, JSON.stringify(r.body));
  t.deepEqual(r.body.data, { x: '3', y: '2', w: '2' });
  t.deepEqual(r.body.metadata.labels ?? {}, {});
  const failed = await call(api, 'PATCH', path, { contentType: JSONPATCH, body: [{ op: 'test', path: '/data/x', value: 'nope' }, { op: 'add', path: '/data/q', value: 'q' }] });
  t.is(failed.status, 422);
  t.is((await call(api, 'GET', path)).body.data.q, undefined, 'a failed test applies nothing');
  const rvTest = await call(api, 'PATCH', path, { contentType: JSONPATCH, body: [{ op: 'test', path: '/metadata/resourceVersion', value: r.body.metadata.resourceVersion }, { op: 'add', path: '/data/v', value: 'v' }] });
  t.is(rvTest.status, 200);
  const list = await call(api, 'PATCH', path, { contentType: JSONPATCH, body: [{ op: 'add', path: '/metadata/finalizers', value: [] }, { op: 'add', path: '/metadata/finalizers/-', value: 'x/y' }] });
  t.deepEqual(list.body.metadata.finalizers, ['x/y']);
  const badBody = await call(api, 'PATCH', path, { contentType: JSONPATCH, body: { op: 'add' } });
  t.is(badBody.status, 400);
});

test('deleting a namespace removes its content', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'doomed' } } });
  await call(api, 'POST', '/api/v1/namespaces/doomed/configmaps', { body: { metadata: { name: 'c' } } });
  const del = await call(api, 'DELETE', '/api/v1/namespaces/doomed');
  t.is(del.status, 200);
  t.is((await call(api, 'GET', '/api/v1/namespaces/doomed/configmaps/c')).status, 404);
  t.is((await call(api, 'GET', '/api/v1/namespaces/doomed')).status, 404);
});

test('pod eviction deletes the pod gracefully; deletecollection with a selector', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: pod('evictme', { nodeName: 'n1' }) });
  const ev = await call(api, 'POST', '/api/v1/namespaces/rest/pods/evictme/eviction', { body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'evictme' } } });
  t.is(ev.status, 201);
  t.truthy((await call(api, 'GET', '/api/v1/namespaces/rest/pods/evictme')).body.metadata.deletionTimestamp);
  for (const n of ['dc1', 'dc2', 'dc3']) await call(api, 'POST', '/api/v1/namespaces/rest/secrets', { body: { metadata: { name: n, labels: { dc: n === 'dc3' ? 'no' : 'yes' } } } });
  const dc = await call(api, 'DELETE', `/api/v1/namespaces/rest/secrets?labelSelector=${encodeURIComponent('dc=yes')}`);
  t.is(dc.status, 200);
  const left = await call(api, 'GET', `/api/v1/namespaces/rest/secrets?labelSelector=dc`);
  t.deepEqual(left.body.items.map((s: any) => s.metadata.name), ['dc3']);
});

test('every kind is served at its path', async (t) => {
  const paths = [
    '/api/v1/namespaces', '/api/v1/nodes', '/api/v1/pods', '/api/v1/services', '/api/v1/configmaps', '/api/v1/secrets',
    '/api/v1/serviceaccounts', '/api/v1/events', '/apis/events.k8s.io/v1/events', '/apis/discovery.k8s.io/v1/endpointslices',
    '/apis/coordination.k8s.io/v1/leases', '/apis/certificates.k8s.io/v1/certificatesigningrequests',
  ];
  for (const p of paths) {
    const r = await call(api, 'GET', p);
    t.is(r.status, 200, p);
    t.true(r.body.kind.endsWith('List'), p);
  }
  const ev = await call(api, 'POST', '/api/v1/namespaces/rest/events', {
    body: { metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'p', namespace: 'rest' }, reason: 'Started', type: 'Normal', message: 'm' },
  });
  t.is(ev.status, 201);
  const sel = await call(api, 'GET', `/api/v1/namespaces/rest/events?fieldSelector=${encodeURIComponent('involvedObject.kind=Pod,involvedObject.name=p,reason=Started')}`);
  t.is(sel.body.items.length, 1);
  const kubernetes = await call(api, 'GET', '/api/v1/namespaces/default/services/kubernetes');
  t.is(kubernetes.body.spec.clusterIP, '10.96.0.1');
});

test('pod spec is immutable except images and friends; pods/binding assigns a node once', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/rest/pods', { body: pod('immut') });
  const move = await call(api, 'PATCH', '/api/v1/namespaces/rest/pods/immut', { body: { spec: { nodeName: 'n9' } }, contentType: MERGE });
  t.is(move.status, 422);
  t.regex(move.body.message, /pod updates may not change fields/);
  const image = await call(api, 'PATCH', '/api/v1/namespaces/rest/pods/immut', { body: { spec: { containers: [{ name: 'c', image: 'busybox:2' }] } }, contentType: SMP });
  t.is(image.status, 200);
  const bind = (node: string) =>
    call(api, 'POST', '/api/v1/namespaces/rest/pods/immut/binding', { body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'immut' }, target: { kind: 'Node', name: node } } });
  t.is((await bind('n1')).status, 201);
  t.is((await call(api, 'GET', '/api/v1/namespaces/rest/pods/immut')).body.spec.nodeName, 'n1');
  const again = await bind('n2');
  t.is(again.status, 409);
  t.regex(again.body.message, /already assigned to node "n1"/);
});

test('namespace controllers: every namespace gets a default ServiceAccount and kube-root-ca.crt', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'ctrl' } } });
  const sa = await call(api, 'GET', '/api/v1/namespaces/ctrl/serviceaccounts/default');
  t.is(sa.status, 200);
  const ca = await call(api, 'GET', '/api/v1/namespaces/ctrl/configmaps/kube-root-ca.crt');
  t.is(ca.body.data['ca.crt'], api.caPem);
  await call(api, 'DELETE', '/api/v1/namespaces/ctrl/configmaps/kube-root-ca.crt');
  t.is((await call(api, 'GET', '/api/v1/namespaces/ctrl/configmaps/kube-root-ca.crt')).status, 200, 'put back after a deletion');
});

test('a resourceVersion newer than the server is 504 Timeout with the ResourceVersionTooLarge cause', async (t) => {
  const ahead = api.currentResourceVersion() + 1000;
  const list = await call(api, 'GET', `/api/v1/pods?resourceVersion=${ahead}`);
  t.is(list.status, 504);
  t.like(list.body, { reason: 'Timeout', code: 504 });
  t.is(list.body.details.causes[0].reason, 'ResourceVersionTooLarge');
  const w = watch(api, `/api/v1/pods?watch=1&resourceVersion=${ahead}`);
  t.is(await w.ended, 'end');
  t.is(w.events[0]?.type, 'ERROR');
  t.is(w.events[0]?.object.code, 504);
});
