import test from 'ava';
import { startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { call, pod, sleep, watch } from './helpers';

let api: TestApiserver;

test.before(async () => {
  api = await startTestApiserver({ bookmarkIntervalMs: 150 });
});

test.after.always(async () => {
  await api?.stop();
});

test.serial('resourceVersion is one global counter, increasing on every write', async (t) => {
  const before = api.currentResourceVersion();
  const a = await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'rv-a' }, data: { x: '1' } } });
  const b = await call(api, 'POST', '/apis/coordination.k8s.io/v1/namespaces/default/leases', { body: { metadata: { name: 'rv-b' }, spec: {} } });
  const c = await call(api, 'PUT', '/api/v1/namespaces/default/configmaps/rv-a', { body: { ...a.body, data: { x: '2' } } });
  t.is(a.status, 201);
  t.is(b.status, 201);
  t.is(c.status, 200);
  const versions = [a, b, c].map((r) => Number(r.body.metadata.resourceVersion));
  t.deepEqual(versions, [before + 1, before + 2, before + 3]);
  t.is(typeof a.body.metadata.resourceVersion, 'string');
  t.is(api.currentResourceVersion(), before + 3);
  t.truthy(a.body.metadata.uid);
  t.regex(a.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // A no-op update writes nothing.
  const same = await call(api, 'PUT', '/api/v1/namespaces/default/configmaps/rv-a', { body: c.body });
  t.is(same.body.metadata.resourceVersion, c.body.metadata.resourceVersion);
  t.is(api.currentResourceVersion(), before + 3);
});

test('list then watch from its version sees exactly the later events', async (t) => {
  const ns = 'lw';
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } });
  await call(api, 'POST', `/api/v1/namespaces/${ns}/secrets`, { body: { metadata: { name: 'one' } } });
  const list = await call(api, 'GET', `/api/v1/namespaces/${ns}/secrets`);
  t.is(list.body.kind, 'SecretList');
  t.deepEqual(list.body.items.map((i: any) => i.metadata.name), ['one']);
  t.is(list.body.items[0].kind, undefined, 'list items carry no kind, as kube-apiserver');
  const rv = list.body.metadata.resourceVersion;
  // Changes between the list and the watch must be replayed.
  await call(api, 'POST', `/api/v1/namespaces/${ns}/secrets`, { body: { metadata: { name: 'two' } } });
  const w = watch(api, `/api/v1/namespaces/${ns}/secrets?watch=1&resourceVersion=${rv}`);
  t.teardown(() => w.close());
  t.is(await w.status, 200);
  await call(api, 'PATCH', `/api/v1/namespaces/${ns}/secrets/one`, { body: { data: { k: 'v' } }, contentType: 'application/merge-patch+json' });
  await call(api, 'DELETE', `/api/v1/namespaces/${ns}/secrets/two`);
  await call(api, 'POST', `/api/v1/namespaces/default/secrets`, { body: { metadata: { name: 'other-ns' } } });
  const events = await w.waitFor(3);
  await sleep(50);
  t.deepEqual(
    w.events.map((e) => `${e.type} ${e.object.metadata.name}`),
    ['ADDED two', 'MODIFIED one', 'DELETED two'],
  );
  t.is(events[0]!.object.kind, 'Secret');
  const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
  t.true(rvs.every((v, i) => v > Number(rv) && (i === 0 || v > rvs[i - 1]!)));
});

test('watch from "0" starts with ADDED for current objects', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'w0' } } });
  await call(api, 'POST', '/api/v1/namespaces/w0/secrets', { body: { metadata: { name: 'a' } } });
  await call(api, 'POST', '/api/v1/namespaces/w0/secrets', { body: { metadata: { name: 'b' } } });
  const w = watch(api, '/api/v1/namespaces/w0/secrets?watch=true&resourceVersion=0');
  t.teardown(() => w.close());
  const events = await w.waitFor(2);
  t.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED a', 'ADDED b']);
});

test('bookmarks arrive periodically and on demand, carrying only the version', async (t) => {
  const list = await call(api, 'GET', '/api/v1/nodes');
  const w = watch(api, `/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=${list.body.metadata.resourceVersion}`);
  t.teardown(() => w.close());
  const [first] = await w.waitFor(1, 2000);
  t.is(first!.type, 'BOOKMARK');
  t.deepEqual(Object.keys(first!.object).sort(), ['apiVersion', 'kind', 'metadata']);
  t.is(first!.object.kind, 'Node');
  t.deepEqual(Object.keys(first!.object.metadata), ['resourceVersion']);
  t.true(Number(first!.object.metadata.resourceVersion) >= Number(list.body.metadata.resourceVersion));
  const noBookmarks = watch(api, `/api/v1/nodes?watch=1&resourceVersion=${list.body.metadata.resourceVersion}`);
  t.teardown(() => noBookmarks.close());
  await noBookmarks.status;
  const count = w.events.length;
  t.true(api.sendBookmark() >= 1);
  await w.waitFor(count + 1);
  t.is(noBookmarks.events.length, 0, 'no bookmarks without allowWatchBookmarks');
});

test('timeoutSeconds ends the stream cleanly', async (t) => {
  const started = Date.now();
  const w = watch(api, '/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1');
  t.is(await w.ended, 'end');
  const elapsed = Date.now() - started;
  t.true(elapsed >= 900 && elapsed < 3000, `ended after ${elapsed} ms`);
});

test('label and field selectors on list, including pods by spec.nodeName', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'sel' } } });
  const make = (name: string, nodeName: string | undefined, labels: Record<string, string>) =>
    call(api, 'POST', '/api/v1/namespaces/sel/pods', { body: pod(name, { namespace: 'sel', nodeName, labels }) });
  t.is((await make('p1', 'node-a', { app: 'web', tier: 'fe' })).status, 201);
  await make('p2', 'node-b', { app: 'web' });
  await make('p3', undefined, { app: 'db', tier: 'be' });
  const names = async (query: string) =>
    (await call(api, 'GET', `/api/v1/namespaces/sel/pods?${query}`)).body.items.map((p: any) => p.metadata.name);
  const enc = encodeURIComponent;
  t.deepEqual(await names(`fieldSelector=${enc('spec.nodeName=node-a')}`), ['p1']);
  t.deepEqual(await names(`fieldSelector=${enc('spec.nodeName=')}`), ['p3']);
  t.deepEqual(await names(`fieldSelector=${enc('spec.nodeName!=node-a')}`), ['p2', 'p3']);
  t.deepEqual(await names(`fieldSelector=${enc('metadata.name=p2')}`), ['p2']);
  t.deepEqual(await names(`fieldSelector=${enc('metadata.namespace=sel,status.phase=Pending')}`), ['p1', 'p2', 'p3']);
  t.deepEqual(await names(`labelSelector=${enc('app=web')}`), ['p1', 'p2']);
  t.deepEqual(await names(`labelSelector=${enc('app==web,tier')}`), ['p1']);
  t.deepEqual(await names(`labelSelector=${enc('app!=web')}`), ['p3']);
  t.deepEqual(await names(`labelSelector=${enc('tier in (fe,be)')}`), ['p1', 'p3']);
  t.deepEqual(await names(`labelSelector=${enc('tier notin (fe)')}`), ['p2', 'p3']);
  t.deepEqual(await names(`labelSelector=${enc('!tier')}`), ['p2']);
  const all = await call(api, 'GET', `/api/v1/pods?fieldSelector=${enc('spec.nodeName=node-b')}`);
  t.deepEqual(all.body.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`), ['sel/p2']);
  const bad = await call(api, 'GET', `/api/v1/pods?fieldSelector=${enc('spec.bogus=x')}`);
  t.is(bad.status, 400);
  t.is(bad.body.kind, 'Status');
  t.regex(bad.body.message, /field label not supported: spec.bogus/);
  const badLabel = await call(api, 'GET', `/api/v1/pods?labelSelector=${enc('a in (')}`);
  t.is(badLabel.status, 400);
});

test('watch with a selector: objects entering the selection are ADDED, leaving it DELETED', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'wsel' } } });
  const list = await call(api, 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent('spec.nodeName=node-x')}`);
  const w = watch(api, `/api/v1/pods?watch=1&resourceVersion=${list.body.metadata.resourceVersion}&fieldSelector=${encodeURIComponent('spec.nodeName=node-x')}`);
  const lw = watch(api, `/api/v1/namespaces/wsel/pods?watch=1&resourceVersion=${list.body.metadata.resourceVersion}&labelSelector=${encodeURIComponent('role=x')}`);
  t.teardown(() => (w.close(), lw.close()));
  await Promise.all([w.status, lw.status]);
  await call(api, 'POST', '/api/v1/namespaces/wsel/pods', { body: pod('unbound', { namespace: 'wsel' }) });
  await call(api, 'POST', '/api/v1/namespaces/wsel/pods', { body: pod('bound', { namespace: 'wsel', nodeName: 'node-x', labels: { role: 'x' } }) });
  // The unbound pod gains the label, then is bound to node-x: it enters both selections.
  const patched = await call(api, 'PATCH', '/api/v1/namespaces/wsel/pods/unbound', {
    body: { metadata: { labels: { role: 'x' } } },
    contentType: 'application/merge-patch+json',
  });
  t.is(patched.status, 200, JSON.stringify(patched.body));
  const bound = await call(api, 'POST', '/api/v1/namespaces/wsel/pods/unbound/binding', {
    body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'unbound' }, target: { apiVersion: 'v1', kind: 'Node', name: 'node-x' } },
  });
  t.is(bound.status, 201);
  // Relabel the bound pod: it leaves the label selection.
  await call(api, 'PATCH', '/api/v1/namespaces/wsel/pods/bound', { body: { metadata: { labels: { role: 'y' } } }, contentType: 'application/merge-patch+json' });
  const events = await lw.waitFor(4);
  t.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED bound', 'ADDED unbound', 'MODIFIED unbound', 'DELETED bound']);
  t.deepEqual(events[3]!.object.metadata.labels, { role: 'x' }, 'DELETED carries the last matching state');
  t.is(events[3]!.object.metadata.resourceVersion, String(api.currentResourceVersion()));
  const nodeEvents = await w.waitFor(3);
  t.deepEqual(nodeEvents.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED bound', 'ADDED unbound', 'MODIFIED bound']);
  t.is(nodeEvents[1]!.object.spec.nodeName, 'node-x');
});

test('watching one object by name in the path', async (t) => {
  const created = await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'single' } } });
  await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'single-other' } } });
  const w = watch(api, `/api/v1/watch/namespaces/default/configmaps/single?resourceVersion=${created.body.metadata.resourceVersion}`);
  t.teardown(() => w.close());
  await w.status;
  await call(api, 'PATCH', '/api/v1/namespaces/default/configmaps/single-other', { body: { data: { a: 'b' } }, contentType: 'application/merge-patch+json' });
  await call(api, 'PATCH', '/api/v1/namespaces/default/configmaps/single', { body: { data: { a: 'b' } }, contentType: 'application/merge-patch+json' });
  const events = await w.waitFor(1);
  await sleep(50);
  t.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['MODIFIED single']);
  t.is(events.length, 1);
});

test.serial('compact: watch from an older version gets ERROR 410 Expired; lists at it get 410', async (t) => {
  const old = api.currentResourceVersion();
  await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'before-compact' } } });
  await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'before-compact-2' } } });
  const page = await call(api, 'GET', '/api/v1/namespaces/default/configmaps?limit=1');
  t.truthy(page.body.metadata.continue);
  await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'before-compact-3' } } });
  api.faults.compact();
  const w = watch(api, `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${old}`);
  t.is(await w.status, 200);
  t.is(await w.ended, 'end');
  t.is(w.events.length, 1);
  t.is(w.events[0]!.type, 'ERROR');
  t.like(w.events[0]!.object, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired' });
  t.regex(w.events[0]!.object.message, /too old resource version/);
  const exact = await call(api, 'GET', `/api/v1/namespaces/default/configmaps?resourceVersion=${old}&resourceVersionMatch=Exact`);
  t.is(exact.status, 410);
  t.is(exact.body.reason, 'Expired');
  const cont = await call(api, 'GET', `/api/v1/namespaces/default/configmaps?limit=1&continue=${page.body.metadata.continue}`);
  t.is(cont.status, 410);
  // The current version is still fine.
  const now = watch(api, `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${api.currentResourceVersion()}`);
  t.teardown(() => now.close());
  await now.status;
  await call(api, 'POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name: 'after-compact' } } });
  const [ev] = await now.waitFor(1);
  t.is(ev!.type, 'ADDED');
});

test('bounded history: versions that fell out of it are 410', async (t) => {
  const small = await startTestApiserver({ historySize: 5 });
  t.teardown(() => small.stop());
  const start = small.currentResourceVersion();
  for (let i = 0; i < 8; i++) small.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `h${i}`, namespace: 'default' } });
  const w = watch(small, `/api/v1/configmaps?watch=1&resourceVersion=${start}`);
  await w.ended;
  t.is(w.events[0]?.object.code, 410);
  const recent = watch(small, `/api/v1/configmaps?watch=1&resourceVersion=${small.currentResourceVersion() - 3}`);
  t.teardown(() => recent.close());
  const events = await recent.waitFor(3);
  t.deepEqual(events.map((e) => e.object.metadata.name), ['h5', 'h6', 'h7']);
});

test('paging with limit/continue is consistent at the first page version', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'paging' } } });
  for (const n of ['a', 'b', 'c', 'd', 'e']) await call(api, 'POST', '/api/v1/namespaces/paging/secrets', { body: { metadata: { name: n } } });
  const first = await call(api, 'GET', '/api/v1/namespaces/paging/secrets?limit=2');
  t.deepEqual(first.body.items.map((i: any) => i.metadata.name), ['a', 'b']);
  t.is(first.body.metadata.remainingItemCount, 3);
  await call(api, 'DELETE', '/api/v1/namespaces/paging/secrets/d');
  await call(api, 'POST', '/api/v1/namespaces/paging/secrets', { body: { metadata: { name: 'c2' } } });
  const second = await call(api, 'GET', `/api/v1/namespaces/paging/secrets?limit=2&continue=${first.body.metadata.continue}`);
  t.deepEqual(second.body.items.map((i: any) => i.metadata.name), ['c', 'd']);
  t.is(second.body.metadata.resourceVersion, first.body.metadata.resourceVersion);
  const third = await call(api, 'GET', `/api/v1/namespaces/paging/secrets?limit=2&continue=${second.body.metadata.continue}`);
  t.deepEqual(third.body.items.map((i: any) => i.metadata.name), ['e']);
  t.is(third.body.metadata.continue, undefined);
});

test('watch-list: sendInitialEvents streams the state, then a bookmark marking its end', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'wl' } } });
  for (const n of ['x', 'y']) await call(api, 'POST', '/api/v1/namespaces/wl/secrets', { body: { metadata: { name: n } } });
  const w = watch(api, '/api/v1/namespaces/wl/secrets?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan');
  t.teardown(() => w.close());
  const events = await w.waitFor(3);
  t.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name ?? ''}`), ['ADDED x', 'ADDED y', 'BOOKMARK ']);
  t.deepEqual(events[2]!.object.metadata.annotations, { 'k8s.io/initial-events-end': 'true' });
  const invalid = await call(api, 'GET', '/api/v1/namespaces/wl/secrets?watch=1&sendInitialEvents=true');
  t.is(invalid.status, 422);
});
