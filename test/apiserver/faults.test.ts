import test from 'ava';
import { startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { createTestPki } from '../harness/pki';
import type { TestPki } from '../harness/pki';
import { call, sleep, watch } from './helpers';

let pki: TestPki;

test.before(async () => {
  pki = await createTestPki();
});

test.after.always(() => pki?.cleanup());

async function server(t: { teardown(fn: () => unknown): void }, opts: Parameters<typeof startTestApiserver>[0] = {}): Promise<TestApiserver> {
  const api = await startTestApiserver({ pki, ...opts });
  t.teardown(() => api.stop());
  return api;
}

test('dropWatches aborts every open watch; lists keep working', async (t) => {
  const api = await server(t);
  const a = watch(api, '/api/v1/pods?watch=1');
  const b = watch(api, '/api/v1/namespaces/default/configmaps?watch=1');
  await Promise.all([a.status, b.status]);
  t.is(api.openWatches().length, 2);
  t.is(api.faults.dropWatches(), 2);
  t.is(await a.ended, 'error');
  t.is(await b.ended, 'error');
  t.is(api.openWatches().length, 0);
  t.is((await call(api, 'GET', '/api/v1/pods')).status, 200);
});

test('stallWatches holds events and bookmarks, then delivers them; forever until resumed', async (t) => {
  const api = await server(t, { bookmarkIntervalMs: 50 });
  const rv = api.currentResourceVersion();
  const w = watch(api, `/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=${rv}`);
  await w.status;
  await w.waitFor(1); // a bookmark
  t.is(api.faults.stallWatches(500), 1);
  await sleep(50); // let bytes written before the stall arrive
  const stalledAt = w.events.length;
  api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'during-stall', namespace: 'default' } });
  await sleep(200);
  t.is(w.events.length, stalledAt, 'nothing at all is sent while stalled, not even bookmarks');
  const events = await w.waitFor(stalledAt + 1, 2000);
  t.true(events.slice(stalledAt).some((e) => e.type === 'ADDED' && e.object.metadata.name === 'during-stall'));

  api.faults.stallWatches('forever');
  await sleep(50);
  const count = w.events.length;
  api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'forever', namespace: 'default' } });
  await sleep(300);
  t.is(w.events.length, count);
  api.faults.resumeWatches();
  const after = await w.waitFor(count + 1);
  t.true(after.some((e) => e.object.metadata.name === 'forever'));
  // A watch opened after the stall is not stalled.
  api.faults.stallWatches('forever');
  const fresh = watch(api, `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${api.currentResourceVersion()}`);
  t.teardown(() => (w.close(), fresh.close()));
  await fresh.status;
  api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fresh', namespace: 'default' } });
  const [ev] = await fresh.waitFor(1);
  t.is(ev!.object.metadata.name, 'fresh');
});

test('stallWatches with includeNew holds new watches too, headers included, until it ends', async (t) => {
  const api = await server(t);
  api.faults.stallWatches(400, { includeNew: true });
  const started = Date.now();
  const w = watch(api, `/api/v1/namespaces/default/secrets?watch=1&resourceVersion=${api.currentResourceVersion()}`);
  t.teardown(() => w.close());
  api.store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'held', namespace: 'default' } });
  t.is(await w.status, 200);
  t.true(Date.now() - started >= 350, `headers after ${Date.now() - started} ms`);
  const [ev] = await w.waitFor(1);
  t.is(ev!.object.metadata.name, 'held');
  api.faults.stallWatches('forever', { includeNew: true });
  const held = watch(api, '/api/v1/namespaces/default/secrets?watch=1');
  t.teardown(() => held.close());
  const early = await Promise.race([held.status, sleep(200).then(() => 'pending')]);
  t.is(early, 'pending');
  api.faults.resumeWatches();
  t.is(await held.status, 200);
  const compactedRv = api.currentResourceVersion();
  api.store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'later', namespace: 'default' } });
  api.faults.compact();
  api.faults.stallWatches('forever', { includeNew: true });
  const expired = watch(api, `/api/v1/namespaces/default/secrets?watch=1&resourceVersion=${compactedRv - 1}`);
  t.is(await expired.ended, 'end', 'errors at the start of a watch are not held');
  t.is(expired.events[0]?.object.code, 410);
  api.faults.resumeWatches();
});

test('expireWatches ends open watches with an ERROR 410 Expired event', async (t) => {
  const api = await server(t);
  const w = watch(api, `/api/v1/pods?watch=1&resourceVersion=${api.currentResourceVersion()}`);
  await w.status;
  t.is(api.faults.expireWatches(), 1);
  t.is(await w.ended, 'end');
  t.is(w.events.length, 1);
  t.like(w.events[0], { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
});

test('failNext returns Status errors for the next n matching requests', async (t) => {
  const api = await server(t);
  api.faults.failNext(2, 503, { path: '/api/v1/pods' });
  const first = await call(api, 'GET', '/api/v1/pods');
  t.is(first.status, 503);
  t.like(first.body, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'ServiceUnavailable', code: 503 });
  t.is((await call(api, 'GET', '/api/v1/nodes')).status, 200, 'other paths unaffected');
  t.is((await call(api, 'GET', '/api/v1/pods')).status, 503);
  t.is((await call(api, 'GET', '/api/v1/pods')).status, 200);
  api.faults.failNext(1, 429);
  const limited = await call(api, 'GET', '/api/v1/nodes');
  t.is(limited.status, 429);
  t.is(limited.body.reason, 'TooManyRequests');
  t.is(limited.headers['retry-after'], '1');
  api.faults.failNext(1);
  const internal = await call(api, 'GET', '/api/v1/nodes');
  t.is(internal.status, 500);
  t.is(internal.body.reason, 'InternalError');
  api.faults.failNext(1, 500, { watch: true });
  t.is((await call(api, 'GET', '/api/v1/nodes')).status, 200, 'watch-only rule spares lists');
  const w = watch(api, '/api/v1/nodes?watch=1');
  t.is(await w.status, 500);
});

test('restart keeps port and state; watches are cut; loseState resets to fixtures', async (t) => {
  const fixture = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fixture', namespace: 'default' } };
  const api = await server(t, { fixtures: [fixture] });
  const port = api.port;
  api.store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'runtime', namespace: 'default' } });
  const rv = api.currentResourceVersion();
  const w = watch(api, '/api/v1/secrets?watch=1');
  await w.status;
  await api.faults.restart();
  t.is(await w.ended, 'error');
  t.is(api.port, port);
  const list = await call(api, 'GET', '/api/v1/namespaces/default/secrets');
  t.deepEqual(list.body.items.map((i: any) => i.metadata.name), ['fixture', 'runtime']);
  t.is(list.body.metadata.resourceVersion, String(rv));
  // History survives a plain restart: a watch resumes from the old version.
  const resumed = watch(api, `/api/v1/namespaces/default/secrets?watch=1&resourceVersion=${rv - 1}`);
  t.teardown(() => resumed.close());
  const [ev] = await resumed.waitFor(1);
  t.is(ev!.object.metadata.name, 'runtime');

  const down = api.faults.restart({ downMs: 300 });
  await sleep(100);
  await t.throwsAsync(call(api, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
  await down;
  t.is((await call(api, 'GET', '/healthz')).status, 200);

  await api.faults.restart({ loseState: true });
  const after = await call(api, 'GET', '/api/v1/namespaces/default/secrets');
  t.deepEqual(after.body.items.map((i: any) => i.metadata.name), ['fixture']);
  t.true(Number(after.body.metadata.resourceVersion) > rv, 'versions stay monotonic across a state loss');
  const old = watch(api, `/api/v1/secrets?watch=1&resourceVersion=${rv}`);
  await old.ended;
  t.is(old.events[0]?.object.code, 410, 'versions from before the state loss are expired');
});

test('setLatency delays responses; the request log records method, path, query, user, watch', async (t) => {
  const api = await server(t);
  api.clearRequestLog();
  api.faults.setLatency(150);
  const started = Date.now();
  await call(api, 'GET', '/api/v1/nodes?limit=5');
  t.true(Date.now() - started >= 140);
  api.faults.setLatency(0);
  const w = watch(api, '/api/v1/pods?watch=true&resourceVersion=0');
  t.teardown(() => w.close());
  await w.status;
  await call(api, 'GET', '/api/v1/pods', { token: 'wrong' });
  const log = api.requestLog();
  t.like(log[0], { method: 'GET', path: '/api/v1/nodes', query: { limit: '5' }, user: 'admin', watch: false, code: 200 });
  t.like(log[1], { method: 'GET', path: '/api/v1/pods', user: 'admin', watch: true });
  t.like(log[2], { path: '/api/v1/pods', user: '', code: 401 });
});
