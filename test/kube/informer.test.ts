import test from 'ava';
import type { ConfigMap } from 'kubernetes-types/core/v1';
import { ApiStatusError } from '../../agent/kube/api-error';
import { KeelsonError, ErrorCodes } from '../../agent/errors';
import { compareResourceVersions, createInformer } from '../../agent/kube/informer';
import type { InformerOptions } from '../../agent/kube/informer';
import { Resources } from '../../agent/kube/resources';
import { createLogger } from '../../agent/log';
import { createMemoryFeed } from '../harness/feed';
import type { Feed } from '../harness/feed';
import { createFakeClock, flush } from './fake-clock';
import { createScriptedClient, status } from './fake-client';

function cm(name: string, rv: string, uid = `uid-${name}`, data: Record<string, string> = {}): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'default', name, resourceVersion: rv, uid }, data };
}

function capture() {
  const records: Array<Record<string, unknown>> = [];
  const logger = createLogger({ format: 'json', level: 'debug', sink: { write: (line) => void records.push(JSON.parse(line)) } });
  return { logger, records, messages: (level?: number) => records.filter((r) => level === undefined || r.level === level).map((r) => r.msg) };
}

function recorder() {
  const events: string[] = [];
  return {
    events,
    handler: {
      onAdd: (o: ConfigMap) => events.push(`add ${o.metadata!.name}@${o.metadata!.resourceVersion}`),
      onUpdate: (a: ConfigMap, b: ConfigMap) => events.push(`update ${b.metadata!.name}@${a.metadata!.resourceVersion}->${b.metadata!.resourceVersion}`),
      onDelete: (o: ConfigMap) => events.push(`delete ${o.metadata!.name}@${o.metadata!.resourceVersion}`),
      onSynced: () => events.push('synced'),
    },
  };
}

function setup(extra: Partial<InformerOptions<ConfigMap>> = {}) {
  const clock = createFakeClock();
  const fake = createScriptedClient<ConfigMap>();
  const log = capture();
  const informer = createInformer<ConfigMap>({
    client: fake.client,
    resource: Resources.configmaps,
    logger: log.logger,
    clock,
    pageSize: 0,
    ...extra,
  });
  return { clock, fake, log, informer };
}

test('compareResourceVersions orders integers and refuses to order opaque versions', (t) => {
  t.is(compareResourceVersions('9', '10'), -1);
  t.is(compareResourceVersions('10', '9'), 1);
  t.is(compareResourceVersions('10', '10'), 0);
  t.is(compareResourceVersions('123456789012345678901', '123456789012345678902'), -1);
  t.is(compareResourceVersions('abc', '10'), undefined);
  t.is(compareResourceVersions(undefined, '10'), undefined);
});

test('lists, replays to late subscribers, then watches from the list version', async (t) => {
  const { fake, informer, clock } = setup();
  fake.lists.push({ items: [cm('a', '5'), cm('b', '6')], metadata: { resourceVersion: '10' } });
  const early = recorder();
  informer.subscribe(early.handler);
  t.false(informer.hasSynced());
  informer.start();
  await informer.waitForSync();
  t.deepEqual(early.events, ['add a@5', 'add b@6', 'synced']);
  const w = await fake.watch(0);
  t.is(w.options.resourceVersion, '10');
  t.true(w.options.allowWatchBookmarks);
  // random() = 0.5 → the middle of 300..600
  t.is(w.options.timeoutSeconds, 450);
  const late = recorder();
  informer.subscribe(late.handler);
  t.deepEqual(late.events, ['add a@5', 'add b@6', 'synced']);
  t.is(informer.get('default', 'a')?.metadata?.resourceVersion, '5');
  t.is(informer.get('default', 'zzz'), undefined);
  await informer.stop();
  t.is(clock.pendingTimers(), 0);
});

test('watch events: duplicates and stale versions produce no spurious events', async (t) => {
  const { fake, informer } = setup();
  fake.lists.push({ items: [cm('a', '5')], metadata: { resourceVersion: '10' } });
  const rec = recorder();
  informer.subscribe(rec.handler);
  informer.start();
  const w = await fake.watch(0);
  w.open();
  w.emit({ type: 'ADDED', object: cm('b', '11') });
  w.emit({ type: 'ADDED', object: cm('b', '11') }); // duplicate
  w.emit({ type: 'MODIFIED', object: cm('a', '12') });
  w.emit({ type: 'MODIFIED', object: cm('a', '7') }); // out of order, older than what we hold
  w.emit({ type: 'MODIFIED', object: cm('a', '12') }); // duplicate
  w.emit({ type: 'DELETED', object: cm('b', '13') });
  w.emit({ type: 'DELETED', object: cm('b', '13') }); // duplicate delete
  w.emit({ type: 'MODIFIED', object: cm('c', '14') }); // modify of an unknown object is an add
  w.emit({ type: 'ADDED', object: { metadata: { namespace: 'default' } } as ConfigMap }); // malformed: skipped
  t.deepEqual(rec.events, ['add a@5', 'synced', 'add b@11', 'update a@5->12', 'delete b@13', 'add c@14']);
  t.deepEqual(informer.list().map((o) => `${o.metadata!.name}@${o.metadata!.resourceVersion}`).sort(), ['a@12', 'c@14']);
  t.is(informer.health().details.resourceVersion, '14');
  await informer.stop();
});

test('a normal close resumes from the last version, bookmarks included, without relisting', async (t) => {
  const { fake, informer } = setup();
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  informer.start();
  const w0 = await fake.watch(0);
  w0.open();
  w0.emit({ type: 'ADDED', object: cm('a', '11') });
  w0.emit({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: '20' } } });
  w0.close();
  const w1 = await fake.watch(1);
  t.is(w1.options.resourceVersion, '20');
  t.is(fake.listCalls.length, 1);
  t.is(informer.health().details.reconnects, 1);
  t.true(informer.health().healthy);
  await informer.stop();
});

test('a stalled stream (no bytes within the bound) is aborted and the watch resumes', async (t) => {
  const { fake, informer, clock, log } = setup({ stallTimeoutMs: 90_000 });
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  informer.start();
  const w0 = await fake.watch(0);
  w0.open();
  await clock.advance(60_000);
  w0.progress(); // a bookmark's bytes
  w0.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } as ConfigMap });
  await clock.advance(89_000);
  t.false(w0.ended, 'activity 89 s ago is within the bound');
  await clock.advance(1_000);
  t.true(w0.ended);
  t.is((w0.endedWith as KeelsonError).code, ErrorCodes.WATCH_STALLED);
  const w1 = await fake.watch(1);
  t.is(w1.options.resourceVersion, '15');
  t.is(fake.listCalls.length, 1);
  t.true(log.messages().some((m) => String(m).includes('stalled')));
  await informer.stop();
});

test('410 Expired relists and delivers only the difference (adds, updates, deletes, recreations)', async (t) => {
  const { fake, informer, log, clock } = setup();
  fake.lists.push({ items: [cm('keep', '5'), cm('change', '6'), cm('gone', '7'), cm('recreated', '8', 'uid-old')], metadata: { resourceVersion: '10' } });
  fake.lists.push({
    items: [cm('keep', '5'), cm('change', '30'), cm('new', '31'), cm('recreated', '32', 'uid-new')],
    metadata: { resourceVersion: '40' },
  });
  const rec = recorder();
  informer.subscribe(rec.handler);
  informer.start();
  const w0 = await fake.watch(0);
  w0.open();
  await clock.advance(5_000);
  w0.emit({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version: 10 (25)') });
  t.true(w0.ended, 'the watch is ended by the ERROR event');
  const w1 = await fake.watch(1);
  t.is(w1.options.resourceVersion, '40');
  t.deepEqual(rec.events.slice(5), ['delete gone@7', 'update change@6->30', 'add new@31', 'delete recreated@8', 'add recreated@32']);
  t.is(informer.health().details.relists, 1);
  t.true(informer.health().healthy);
  t.true(log.messages().includes('resourceVersion no longer served, relisting'));
  await informer.stop();
});

test('a 410 straight after a relist backs off instead of relisting in a loop', async (t) => {
  const { fake, informer, clock } = setup();
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  fake.lists.push({ items: [], metadata: { resourceVersion: '11' } });
  informer.start();
  const w0 = await fake.watch(0);
  w0.fail(new ApiStatusError({ code: 410, reason: 'Gone', message: 'gone' }, 'ConfigMap */*', 'WATCH'));
  await flush();
  t.is(fake.listCalls.length, 1, 'waits before listing again');
  t.false(informer.health().healthy);
  await clock.advance(1_000);
  t.is(fake.listCalls.length, 2);
  await fake.watch(1);
  await informer.stop();
});

test('a 410 answer to the watch request and ResourceVersionTooLarge both relist', async (t) => {
  const { fake, informer, clock } = setup();
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  fake.lists.push({ items: [], metadata: { resourceVersion: '11' } });
  fake.lists.push({ items: [], metadata: { resourceVersion: '3' } });
  informer.start();
  const w0 = await fake.watch(0);
  await clock.advance(5_000);
  w0.fail(new ApiStatusError({ code: 410, reason: 'Gone', message: 'gone' }, 'ConfigMap */*', 'WATCH'));
  const w1 = await fake.watch(1);
  t.is(w1.options.resourceVersion, '11');
  await clock.advance(5_000);
  w1.open();
  w1.emit({
    type: 'ERROR',
    object: { ...status(504, 'Timeout', 'Too large resource version'), details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] } },
  });
  const w2 = await fake.watch(2);
  t.is(w2.options.resourceVersion, '3', 'after the relist the older version of the restarted server is used');
  t.is(informer.health().details.relists, 2);
  await informer.stop();
});

test('errors back off with jitter, 800 ms doubling to 30 s, and reset after a healthy period', async (t) => {
  const random = [0, 0.999, 0.5];
  let i = 0;
  const clock = createFakeClock({ random: () => random[i++ % random.length]! });
  const fake = createScriptedClient<ConfigMap>();
  const log = capture();
  const informer = createInformer<ConfigMap>({ client: fake.client, resource: Resources.configmaps, logger: log.logger, clock, pageSize: 0, stallTimeoutMs: 600_000 });
  const unreachable = () => new KeelsonError(ErrorCodes.API_UNREACHABLE, 'connect ECONNREFUSED');
  for (let k = 0; k < 8; k++) fake.lists.push(unreachable());
  fake.lists.push({ items: [cm('a', '1')], metadata: { resourceVersion: '10' } });
  informer.start();
  await flush();
  const delays: number[] = [];
  for (let k = 0; k < 8; k++) {
    delays.push(clock.scheduled.at(-1)!);
    t.false(informer.health().healthy);
    await clock.advance(clock.scheduled.at(-1)!);
  }
  // nominal 800,1600,3200,6400,12800,25600,30000,30000 times a factor in [0.75, 1.25)
  const nominal = [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000];
  delays.forEach((d, k) => t.true(d >= nominal[k]! * 0.75 && d < nominal[k]! * 1.25, `delay ${k} = ${d}`));
  t.not(new Set(delays.map((d, k) => d / nominal[k]!)).size, 1, 'jitter varies');
  await informer.waitForSync();
  t.deepEqual(log.messages(40), ['list-watch failing, retrying with backoff'], 'one warning for eight failures');
  // recovered when the list succeeded
  t.true(informer.health().healthy);
  const w0 = await fake.watch(0);
  w0.open();
  t.deepEqual(log.messages(30).filter((m) => m === 'list-watch recovered'), ['list-watch recovered']);
  t.is(log.messages(20).filter((m) => m === 'list-watch still failing').length, 7, 'retries only at debug level');
  // after 2 min of health, the next failure starts again at ~800 ms
  await clock.advance(130_000);
  w0.fail(new ApiStatusError({ code: 500, reason: 'InternalError', message: 'boom' }, 'x', 'WATCH'));
  await flush();
  t.true(clock.scheduled.at(-1)! < 1000, `delay after reset ${clock.scheduled.at(-1)}`);
  t.is(informer.health().details.lastError?.includes('boom'), true);
  t.false(informer.health().healthy);
  await informer.stop();
});

test('a dropped stream that was open reconnects at once; a watch that closes immediately backs off', async (t) => {
  const { fake, informer, clock } = setup();
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  informer.start();
  const w0 = await fake.watch(0);
  w0.open();
  await clock.advance(5_000);
  w0.fail(new KeelsonError(ErrorCodes.API_UNREACHABLE, 'socket hang up'));
  const w1 = await fake.watch(1);
  t.true(informer.health().healthy, 'a drop after a healthy stream is not a failure');
  w1.open();
  w1.close(); // at once, with no event
  await flush();
  t.is(fake.watches.length, 2, 'no immediate reconnect: backing off');
  t.false(informer.health().healthy);
  await clock.advance(2_000);
  await fake.watch(2);
  await informer.stop();
});

test('paged list follows continue tokens; an expired token falls back to one full list', async (t) => {
  const { fake, informer } = setup({ pageSize: 2 });
  fake.lists.push({ items: [cm('a', '1'), cm('b', '2')], metadata: { resourceVersion: '10', continue: 'tok1' } });
  fake.lists.push(new ApiStatusError({ code: 410, reason: 'Expired', message: 'continue expired' }, 'x', 'GET'));
  fake.lists.push({ items: [cm('a', '1'), cm('b', '2'), cm('c', '3')], metadata: { resourceVersion: '12' } });
  informer.start();
  await informer.waitForSync();
  t.deepEqual(
    fake.listCalls.map((c) => [c.limit, c.continue]),
    [
      [2, undefined],
      [2, 'tok1'],
      [undefined, undefined],
    ],
  );
  t.is(informer.list().length, 3);
  t.is((await fake.watch(0)).options.resourceVersion, '12');
  await informer.stop();
});

test('a throwing handler is logged and does not disturb other handlers or the cache', async (t) => {
  const { fake, informer, log } = setup();
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  informer.subscribe({ onAdd: () => { throw new Error('bad handler'); }, onUpdate: () => {}, onDelete: () => {} });
  const rec = recorder();
  informer.subscribe(rec.handler);
  informer.start();
  const w = await fake.watch(0);
  w.open();
  w.emit({ type: 'ADDED', object: cm('a', '11') });
  t.deepEqual(rec.events, ['synced', 'add a@11']);
  t.is(informer.list().length, 1);
  t.true(log.records.some((r) => r.msg === 'informer handler failed on add' && r.object === 'default/a'));
  t.false(w.ended);
  await informer.stop();
});

test('health reports name, state, last sync time and details', async (t) => {
  const { fake, informer } = setup({ fieldSelector: 'metadata.name=a' });
  t.like(informer.health(), { healthy: false, message: 'not started' });
  t.is(informer.name, 'configmaps(fields=metadata.name=a)');
  fake.lists.push({ items: [cm('a', '1')], metadata: { resourceVersion: '10' } });
  informer.start();
  await informer.waitForSync();
  const h = informer.health();
  t.like(h, { name: 'configmaps(fields=metadata.name=a)', healthy: true, details: { resourceVersion: '10', relists: 0, reconnects: 0, objects: 1 } });
  t.truthy(h.lastSyncTime);
  t.is((await fake.watch(0)).options.fieldSelector, 'metadata.name=a');
  await informer.stop();
  t.like(informer.health(), { healthy: false, message: 'stopped' });
});

test('managedFields are dropped before caching unless another transform is given', async (t) => {
  const withFields = (o: ConfigMap): ConfigMap => ({ ...o, metadata: { ...o.metadata, managedFields: [{ manager: 'kubectl', operation: 'Update' }] } });
  const { fake, informer } = setup();
  fake.lists.push({ items: [withFields(cm('a', '1'))], metadata: { resourceVersion: '10' } });
  informer.start();
  const w = await fake.watch(0);
  w.emit({ type: 'ADDED', object: withFields(cm('b', '11')) });
  t.is(informer.get('default', 'a')?.metadata?.managedFields, undefined);
  t.is(informer.get('default', 'b')?.metadata?.managedFields, undefined);
  t.is(informer.get('default', 'b')?.metadata?.resourceVersion, '11');
  await informer.stop();

  const keep = setup({ transform: (o) => o });
  keep.fake.lists.push({ items: [withFields(cm('a', '1'))], metadata: { resourceVersion: '10' } });
  keep.informer.start();
  await keep.informer.waitForSync();
  t.is(keep.informer.get('default', 'a')?.metadata?.managedFields?.length, 1);
  await keep.informer.stop();
});

test('an informer is a Feed of test/harness/feed.ts (the contract dns/ and netproxy/ consume)', async (t) => {
  const { fake, informer } = setup();
  const feed: Feed<ConfigMap> = informer; // compile-time check of the shape
  const memory: Feed<ConfigMap> = createMemoryFeed<ConfigMap>([cm('a', '1')]);
  fake.lists.push({ items: [cm('a', '1')], metadata: { resourceVersion: '10' } });
  informer.start();
  await informer.waitForSync();
  const fromInformer = recorder();
  const fromMemory = recorder();
  feed.subscribe(fromInformer.handler);
  memory.subscribe(fromMemory.handler);
  t.deepEqual(fromInformer.events, fromMemory.events);
  t.deepEqual(feed.list(), memory.list());
  await informer.stop();
});

test('stalls in a row on a silent stream warn once, not once per reconnect', async (t) => {
  const { fake, informer, clock, log } = setup({ stallTimeoutMs: 1000 });
  fake.lists.push({ items: [], metadata: { resourceVersion: '10' } });
  informer.start();
  for (let i = 0; i < 3; i++) {
    (await fake.watch(i)).open();
    await clock.advance(1000);
  }
  const w3 = await fake.watch(3);
  w3.open();
  w3.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '11' } } as ConfigMap });
  await clock.advance(1000);
  await fake.watch(4);
  const stallWarnings = log.records.filter((r) => r.level === 40 && String(r.msg).startsWith('watch stalled')).length;
  const stallDebug = log.records.filter((r) => r.level === 20 && String(r.msg).startsWith('watch stalled')).length;
  t.is(stallWarnings, 2, 'the first stall, and the first after data flowed again');
  t.is(stallDebug, 2);
  t.is(informer.health().details.reconnects, 4);
  t.is(fake.listCalls.length, 1);
  await informer.stop();
});
