/**
 * The informer against the test apiserver under every fault it injects: for each, objects are
 * created, updated and deleted while the fault is active, and the informer's cache must end EQUAL
 * to the server's state (same keys, same resourceVersions), with handler events that replay to that
 * same state (no add of a known key, no update or delete of an unknown one, no spurious update).
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { ConfigMap, Pod } from 'kubernetes-types/core/v1';
import { createKubeClient } from '../../agent/kube/client';
import type { KubeClient } from '../../agent/kube/client';
import type { Informer } from '../../agent/kube/informer';
import { createInformerFactory } from '../../agent/kube/informer-factory';
import type { InformerFactory } from '../../agent/kube/informer-factory';
import { loadKubeconfig, reloadClientCertificate } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import type { KubeObject } from '../../agent/kube/resources';
import { createLogger } from '../../agent/log';
import { startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { createTestPki } from '../harness/pki';
import type { TestPki } from '../harness/pki';

const STALL_MS = 1500;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Env {
  api: TestApiserver;
  client: KubeClient;
  factory: InformerFactory;
  logs: Array<Record<string, unknown>>;
}

// One CA for every apiserver of this file: fewer openssl runs.
let pki: TestPki | undefined;
test.before(async () => {
  pki = await createTestPki();
});
test.after.always(() => pki?.cleanup());

async function setup(t: ExecutionContext, kubeconfigPath?: (api: TestApiserver) => Promise<string>): Promise<Env> {
  const api = await startTestApiserver({ bookmarkIntervalMs: 200, pki });
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ format: 'json', level: 'debug', sink: { write: (line) => void logs.push(JSON.parse(line)) } });
  const config = loadKubeconfig(kubeconfigPath ? await kubeconfigPath(api) : api.kubeconfigPath);
  const client = createKubeClient(config, { logger, timeoutMs: 2000 });
  const factory = createInformerFactory({
    client,
    logger,
    stallTimeoutMs: STALL_MS,
    backoff: { initialMs: 50, maxMs: 400, resetAfterMs: 2000 },
    pageSize: 7,
  });
  t.teardown(async () => {
    await factory.stop();
    client.close();
    api.resumeWatches();
    await api.stop();
  });
  return { api, client, factory, logs };
}

async function until(condition: () => boolean, withinMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > withinMs) throw new Error(`condition not met within ${withinMs} ms`);
    await delay(10);
  }
}

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

function versions(objects: KubeObject[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of [...objects].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) out[keyOf(o)] = o.metadata!.resourceVersion!;
  return out;
}

/** Replays handler events into its own map and records any event inconsistent with it. */
function mirror<T extends KubeObject>(informer: Informer<T>) {
  const state = new Map<string, string>();
  const violations: string[] = [];
  const counts = { add: 0, update: 0, delete: 0 };
  informer.subscribe({
    onAdd(o) {
      counts.add++;
      if (state.has(keyOf(o))) violations.push(`add of known ${keyOf(o)}`);
      state.set(keyOf(o), o.metadata!.resourceVersion!);
    },
    onUpdate(old, o) {
      counts.update++;
      if (state.get(keyOf(o)) !== old.metadata!.resourceVersion) violations.push(`update of ${keyOf(o)} from ${old.metadata!.resourceVersion}, mirror has ${state.get(keyOf(o))}`);
      if (old.metadata!.resourceVersion === o.metadata!.resourceVersion) violations.push(`spurious update of ${keyOf(o)}`);
      state.set(keyOf(o), o.metadata!.resourceVersion!);
    },
    onDelete(o) {
      counts.delete++;
      if (!state.has(keyOf(o))) violations.push(`delete of unknown ${keyOf(o)}`);
      state.delete(keyOf(o));
    },
  });
  return { state, violations, counts, snapshot: () => versions([...state].map(([k, rv]) => ({ metadata: { namespace: k.split('/')[0] || undefined, name: k.split('/')[1], resourceVersion: rv } }))) };
}

/** Waits until the informer holds exactly the server's objects, then asserts it and the mirror. */
async function assertConverged<T extends KubeObject>(
  t: ExecutionContext,
  informer: Informer<T>,
  server: () => KubeObject[],
  m: ReturnType<typeof mirror<T>>,
  withinMs = 15_000,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < withinMs) {
    if (JSON.stringify(versions(informer.list())) === JSON.stringify(versions(server()))) break;
    await delay(20);
  }
  const expected = versions(server());
  t.deepEqual(versions(informer.list()), expected, 'informer cache equals the server state');
  t.deepEqual(m.snapshot(), expected, 'handler events replay to the server state');
  t.deepEqual(m.violations, [], 'handler events are consistent');
  t.true(informer.health().healthy, informer.health().message);
  return Date.now() - started;
}

/** Creates, updates and deletes ConfigMaps (some existing before the fault, some made during it). */
function churner(api: TestApiserver, namespace = 'default') {
  const live: string[] = [];
  let n = 0;
  let seed = 7;
  const pick = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return live.splice(seed % live.length, 1)[0]!;
  };
  return {
    live,
    round(creates = 5, updates = 3, deletes = 2) {
      for (let i = 0; i < creates; i++) {
        const name = `cm-${n++}`;
        api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { v: '0' } });
        live.push(name);
      }
      for (let i = 0; i < updates && live.length; i++) {
        const name = live[(n + i * 3) % live.length]!;
        const cur = api.store.get('ConfigMap', namespace, name)!;
        api.store.update({ ...cur, data: { v: String(Number(cur.data.v) + 1) } });
      }
      for (let i = 0; i < deletes && live.length > 1; i++) api.store.delete('ConfigMap', namespace, pick());
    },
    /** Deletes one and creates it again under the same name (new uid). */
    recreate() {
      const name = live[0]!;
      api.store.delete('ConfigMap', namespace, name);
      api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { v: 'again' } });
    },
  };
}

async function startConfigMaps(env: Env) {
  const churn = churner(env.api);
  churn.round(12, 0, 0); // more than one list page
  const informer = env.factory.forResource(Resources.configmaps);
  const m = mirror(informer);
  env.factory.start();
  await informer.waitForSync();
  const server = () => env.api.store.list('ConfigMap');
  return { informer, m, churn, server };
}

const messages = (env: Env, msg: string) => env.logs.filter((r) => r.msg === msg).length;

test('dropped watches: resumes from the last version without relisting', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  await assertConverged(t, informer, server, m);
  for (let i = 0; i < 5; i++) {
    await until(() => env.api.openWatches().length > 0);
    churn.round();
    t.is(env.api.dropWatches(), 1);
    churn.round();
  }
  churn.recreate();
  await assertConverged(t, informer, server, m);
  const d = informer.health().details;
  t.is(d.relists, 0);
  t.true(d.reconnects >= 5, `reconnects ${d.reconnects}`);
  const watches = env.api.requestLog().filter((r) => r.watch && r.path.endsWith('/configmaps'));
  t.true(watches.length >= 6);
  t.true(watches.every((r) => Number(r.query.resourceVersion) > 0 && r.query.allowWatchBookmarks === 'true'), 'every watch resumes from a version');
  t.true(watches.every((r) => Number(r.query.timeoutSeconds) >= 300 && Number(r.query.timeoutSeconds) <= 600));
  t.true(m.counts.delete > 0 && m.counts.update > 0);
});

test('stalled watch (no bytes, no bookmarks): detected within the bound, then reconnects and catches up', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  await delay(2000); // longer than the stall bound: bookmarks every 200 ms keep the quiet stream alive
  t.is(informer.health().details.reconnects, 0, 'bookmarks keep a quiet stream from looking stalled');
  t.is(env.api.stallWatches('forever'), 1);
  const stalledAt = Date.now();
  churn.round();
  churn.round();
  const took = await assertConverged(t, informer, server, m);
  const elapsed = Date.now() - stalledAt;
  // The bound counts from the last byte received (a bookmark shortly before the stall), so the
  // catch-up comes a little under STALL_MS after the stall began; the stall log proves the path.
  t.true(elapsed < STALL_MS + 5000, `caught up after ${elapsed} ms (${took} ms waiting)`);
  t.is(env.api.requestLog().filter((r) => r.watch && r.path === '/api/v1/configmaps').length, 2, 'one reconnect');
  t.is(messages(env, 'watch stalled (no data, not even bookmarks), reconnecting'), 1);
  t.is(informer.health().details.relists, 0);
});

test('5xx burst: backs off with jitter, reports unhealthy once, recovers and catches up', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  await until(() => env.api.openWatches().length > 0);
  env.api.failNext(6, 503, { watch: true });
  t.is(env.api.dropWatches(), 1);
  churn.round();
  await until(() => /503/.test(informer.health().message ?? ''));
  t.false(informer.health().healthy, 'unhealthy while the apiserver answers 503');
  churn.round();
  await assertConverged(t, informer, server, m);
  const failed = env.api.requestLog().filter((r) => r.watch && r.code === 503);
  t.is(failed.length, 6);
  const gaps = failed.slice(1).map((r, i) => r.time - failed[i]!.time);
  t.true(gaps.at(-1)! > gaps[0]!, `backoff grows: ${gaps.join(', ')} ms`);
  t.is(messages(env, 'list-watch failing, retrying with backoff'), 1);
  t.is(messages(env, 'list-watch recovered'), 1);
  t.is(informer.health().details.relists, 0);
});

test('history compacted while disconnected: 410 → relist delivers adds, updates and the lost deletes', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  const before = m.counts.delete;
  await until(() => env.api.openWatches().length > 0);
  env.api.failNext(3, 503, { watch: true });
  t.is(env.api.dropWatches(), 1);
  churn.round(4, 4, 5);
  churn.recreate();
  env.api.compact();
  await assertConverged(t, informer, server, m);
  t.is(informer.health().details.relists, 1);
  t.true(m.counts.delete - before >= 5, 'deletes made during the gap reach the handlers');
  t.true(env.logs.some((r) => r.msg === 'resourceVersion no longer served, relisting'));
  // and the watch works again after the relist
  churn.round();
  await assertConverged(t, informer, server, m);
});

test('apiserver restart (state kept): reconnects after connection refused and catches up without relist', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  await until(() => env.api.openWatches().length > 0);
  const restarted = env.api.restart({ downMs: 1500 });
  churn.round();
  await until(() => !informer.health().healthy, 1400);
  churn.round();
  await restarted;
  await assertConverged(t, informer, server, m);
  t.is(informer.health().details.relists, 0);
  t.regex(informer.health().details.lastError ?? '', /unreachable|ECONNREFUSED|closed/i);
});

test('apiserver restart that lost its state: our version is unknown → relist, phantoms deleted', async (t) => {
  const env = await setup(t);
  const { informer, m, churn, server } = await startConfigMaps(env);
  const before = informer.list().length;
  // A write the informer cannot have seen (not even in a bookmark) just before the state is lost,
  // so the informer's version is older than anything the restarted server knows.
  env.api.store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bump', namespace: 'default' } });
  await env.api.restart({ loseState: true, downMs: 300 });
  // the new server state: some names as before (new objects), most gone
  env.api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: churn.live[0]!, namespace: 'default' }, data: { v: 'new life' } });
  env.api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-restart', namespace: 'default' }, data: {} });
  await assertConverged(t, informer, server, m);
  t.true(informer.health().details.relists >= 1);
  t.true(informer.list().length < before);
  t.is(informer.get('default', churn.live[1]!), undefined, 'no phantom object');
  t.is(informer.get('default', churn.live[0]!)?.data?.v, 'new life');
});

test('pods by spec.nodeName: only this node\'s pods, through drops and graceful deletion', async (t) => {
  const env = await setup(t, (api) => api.writeKubeconfig({ user: 'system:node:node-a', groups: ['system:nodes'] }));
  const pod = (name: string, node: string): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'busybox' }] },
  });
  for (let i = 0; i < 4; i++) {
    env.api.store.create(pod(`a-${i}`, 'node-a') as never);
    env.api.store.create(pod(`b-${i}`, 'node-b') as never);
  }
  const selector = { fieldSelector: 'spec.nodeName=node-a' };
  const informer = env.factory.forResource(Resources.pods, selector);
  t.is(env.factory.forResource(Resources.pods, { fieldSelector: 'spec.nodeName=node-a' }), informer);
  const m = mirror(informer);
  env.factory.start();
  await informer.waitForSync();
  const server = () => env.api.store.list('Pod', undefined, selector);
  await assertConverged(t, informer, server, m);
  t.deepEqual(informer.list().map((p) => p.metadata!.name).sort(), ['a-0', 'a-1', 'a-2', 'a-3']);

  await until(() => env.api.openWatches().length > 0);
  env.api.store.delete('Pod', 'default', 'a-0'); // graceful: deletionTimestamp set, still there
  t.is(env.api.dropWatches(), 1);
  env.api.store.create(pod('a-4', 'node-a') as never);
  env.api.store.create(pod('b-4', 'node-b') as never);
  env.api.store.patchStatus('Pod', 'default', 'a-1', { phase: 'Running' });
  env.api.store.delete('Pod', 'default', 'a-2', { gracePeriodSeconds: 0 });
  await assertConverged(t, informer, server, m);
  t.truthy(informer.get('default', 'a-0')?.metadata?.deletionTimestamp);
  t.is(informer.get('default', 'a-1')?.status?.phase, 'Running');
  t.is(informer.get('default', 'b-4'), undefined);
  env.api.store.delete('Pod', 'default', 'a-0', { gracePeriodSeconds: 0 });
  await assertConverged(t, informer, server, m);
  t.deepEqual(informer.list().map((p) => p.metadata!.name).sort(), ['a-1', 'a-3', 'a-4']);
  const watch = env.api.requestLog().find((r) => r.watch && r.path === '/api/v1/pods');
  t.is(watch?.query.fieldSelector, 'spec.nodeName=node-a');
  t.is(watch?.user, 'system:node:node-a');
});

test('client CRUD against the apiserver: conflicts, not found, patches and graceful delete', async (t) => {
  const env = await setup(t);
  const { client } = env;
  const created = await client.create<ConfigMap>(Resources.configmaps, { metadata: { name: 'c1', namespace: 'default' }, data: { a: '1' } });
  t.truthy(created.metadata?.uid);
  const stale = { ...created, data: { a: 'stale' } };
  await client.update(Resources.configmaps, { ...created, data: { a: '2' } });
  const conflict = await t.throwsAsync(client.update(Resources.configmaps, stale));
  t.like((conflict as unknown as { status: object }).status, { code: 409, reason: 'Conflict' });
  t.is((conflict as unknown as { object: string }).object, 'ConfigMap default/c1');
  const merged = await client.patch<ConfigMap>(Resources.configmaps, 'c1', { data: { b: '3' } }, { type: 'merge', namespace: 'default' });
  t.deepEqual(merged.data, { a: '2', b: '3' });
  const jsonPatched = await client.patch<ConfigMap>(Resources.configmaps, 'c1', [{ op: 'remove', path: '/data/a' }], { type: 'json', namespace: 'default' });
  t.deepEqual(jsonPatched.data, { b: '3' });
  const missing = await t.throwsAsync(client.get(Resources.configmaps, 'nope', { namespace: 'default' }));
  t.like((missing as unknown as { status: object }).status, { code: 404, reason: 'NotFound' });
  const node = await client.create(Resources.nodes, { metadata: { name: 'n1' } });
  const withStatus = await client.updateStatus(Resources.nodes, { ...node, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  t.is(withStatus.status?.conditions?.[0]?.status, 'True');
  await client.create(Resources.pods, { metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] } });
  const graceful = (await client.delete(Resources.pods, 'p', { namespace: 'default' })) as Pod;
  t.truthy(graceful.metadata?.deletionTimestamp);
  await client.delete(Resources.pods, 'p', { namespace: 'default', options: { gracePeriodSeconds: 0 } });
  t.is(env.api.store.get('Pod', 'default', 'p'), undefined);
  const list = await client.list(Resources.configmaps, { namespace: 'default' });
  t.true(list.items.every((i) => i.kind === 'ConfigMap'));
  t.truthy(list.metadata.resourceVersion);
});

test('certificate rotation: reload the files, setCredentials, and the same informers carry on as the new identity', async (t) => {
  const env = await setup(t);
  const dir = mkdtempSync(join(tmpdir(), 'keelson-rotate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await env.api.clientCertFor('system:node:edge-1', ['system:nodes']);
  const second = await env.api.clientCertFor('system:node:edge-1-next', ['system:nodes']);
  writeFileSync(join(dir, 'ca.crt'), env.api.caPem);
  writeFileSync(join(dir, 'kubelet.crt'), first.certPem);
  writeFileSync(join(dir, 'kubelet.key'), first.keyPem);
  const kubeconfigPath = join(dir, 'kubelet.conf');
  writeFileSync(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: test\n  cluster:\n    server: ${env.api.url}\n    certificate-authority: ca.crt`,
      'users:',
      '- name: node\n  user:\n    client-certificate: kubelet.crt\n    client-key: kubelet.key',
      'contexts:',
      '- name: node@test\n  context:\n    cluster: test\n    user: node',
      'current-context: node@test',
      '',
    ].join('\n'),
  );
  const config = loadKubeconfig(kubeconfigPath);
  const client = createKubeClient(config, { logger: createLogger({ level: 'silent', format: 'json' }) });
  t.teardown(() => client.close());
  const factory = createInformerFactory({ client, logger: createLogger({ level: 'silent', format: 'json' }), stallTimeoutMs: STALL_MS, backoff: { initialMs: 50, maxMs: 400 } });
  t.teardown(() => factory.stop());
  const informer = factory.forResource(Resources.nodes);
  const m = mirror(informer);
  env.api.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1' } });
  factory.start();
  await informer.waitForSync();
  await until(() => env.api.openWatches().length > 0);

  writeFileSync(join(dir, 'kubelet.crt'), second.certPem);
  writeFileSync(join(dir, 'kubelet.key'), second.keyPem);
  client.setCredentials(reloadClientCertificate(config));
  t.is(env.api.openWatches()[0]?.user, 'system:node:edge-1', 'the open watch is not interrupted');
  env.api.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-2' } });
  t.is(env.api.dropWatches(), 1); // at the latest when the server ends it
  env.api.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-3' } });
  await assertConverged(t, informer, () => env.api.store.list('Node'), m);
  const users = env.api.requestLog().filter((r) => r.watch && r.path === '/api/v1/nodes').map((r) => r.user);
  t.deepEqual(users, ['system:node:edge-1', 'system:node:edge-1-next']);
  t.is(factory.forResource(Resources.nodes), informer);
});

test('large objects (3 MiB) arrive through list and watch; the list is paged', async (t) => {
  const env = await setup(t);
  const { informer, m, server } = await startConfigMaps(env);
  const lists = env.api.requestLog().filter((r) => !r.watch && r.path === '/api/v1/configmaps');
  t.true(lists.length >= 2, 'more than one page');
  t.true(lists.every((r) => r.query.limit === '7'));
  t.truthy(lists[1]!.query.continue);
  const blob = 'z'.repeat(3 * 1024 * 1024);
  env.api.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big', namespace: 'default' }, data: { blob } });
  await assertConverged(t, informer, server, m);
  t.is(informer.get('default', 'big')?.data?.blob?.length, blob.length);
});
