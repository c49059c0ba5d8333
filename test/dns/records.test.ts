/** The ZoneIndex's bookkeeping: slices before Services, slices changing Service, PTR entries following, checkpoint round trip. */
import test from 'ava';
import { createZoneIndex, type ZoneIndex } from '../../dns/records';
import { clusterIP, ep, headless, NAMESPACES, PODS, SERVICES, slice, SLICES } from './fixtures';

const Z = 'cluster.local';
const a = (idx: ZoneIndex, name: string) => idx.lookup(`${name}.svc.${Z}`)?.a?.slice().sort();

test('a slice that arrives before its Service is used once the Service comes; the Service can go and come back', (t) => {
  const idx = createZoneIndex(Z);
  idx.upsertSlice(slice('default', 'late', 'a', [ep('10.1.0.1')], [{ name: 'http', port: 80 }]));
  t.is(idx.lookup(`late.default.svc.${Z}`), undefined);
  t.is(idx.ptr('10.1.0.1'), undefined, 'no PTR without the Service');
  const svc = headless('default', 'late', [{ name: 'http', port: 80 }]);
  idx.upsertService(svc);
  t.deepEqual(a(idx, 'late.default'), ['10.1.0.1']);
  t.deepEqual(idx.ptr('10.1.0.1'), [`10-1-0-1.late.default.svc.${Z}`]);
  idx.deleteService(svc);
  t.is(idx.lookup(`late.default.svc.${Z}`), undefined);
  t.is(idx.ptr('10.1.0.1'), undefined);
  t.false(idx.namespaceExists('default'));
  idx.upsertService(svc);
  t.deepEqual(a(idx, 'late.default'), ['10.1.0.1'], 'the slice was kept while the Service was away');
  t.deepEqual(idx.stats(), { services: 1, endpointSlices: 1, ptrs: 1, pods: 0, namespaces: 1 });
});

test('a slice relabelled to another Service moves its endpoints and PTR entries', (t) => {
  const idx = createZoneIndex(Z);
  idx.upsertService(headless('default', 'one'));
  idx.upsertService(headless('default', 'two'));
  idx.upsertSlice(slice('default', 'one', 'x', [ep('10.2.0.1'), ep('10.2.0.2')], []));
  t.deepEqual(a(idx, 'one.default'), ['10.2.0.1', '10.2.0.2']);
  const moved = slice('default', 'two', 'x', [ep('10.2.0.1')], []);
  moved.metadata = { ...moved.metadata, name: 'one-x' }; // same slice object name, new label
  idx.upsertSlice(moved);
  t.is(idx.lookup(`one.default.svc.${Z}`), undefined, 'the old Service has no ready endpoint left');
  t.deepEqual(a(idx, 'two.default'), ['10.2.0.1']);
  t.deepEqual(idx.ptr('10.2.0.1'), [`10-2-0-1.two.default.svc.${Z}`]);
  t.is(idx.ptr('10.2.0.2'), undefined);
  idx.deleteSlice(moved);
  t.is(idx.lookup(`two.default.svc.${Z}`), undefined);
  t.is(idx.stats().ptrs, 0);
});

test('an updated slice keeps its place; cluster IP changes move the PTR; two Services on one IP share it', (t) => {
  const idx = createZoneIndex(Z);
  idx.upsertService(headless('default', 'h'));
  idx.upsertSlice(slice('default', 'h', 'a', [ep('10.3.0.1')], []));
  idx.upsertSlice(slice('default', 'h', 'b', [ep('10.3.0.2')], []));
  idx.upsertSlice(slice('default', 'h', 'a', [ep('10.3.0.3')], []));
  t.deepEqual(idx.lookup(`h.default.svc.${Z}`)?.a, ['10.3.0.3', '10.3.0.2'], 'slice a still first');
  idx.upsertService(clusterIP('default', 'c', ['10.96.3.1'], [{ name: 'http', port: 80 }]));
  idx.upsertService(clusterIP('other', 'c', ['10.96.3.1'], [{ name: 'http', port: 80 }]));
  t.deepEqual(idx.ptr('10.96.3.1')?.sort(), [`c.default.svc.${Z}`, `c.other.svc.${Z}`]);
  idx.upsertService(clusterIP('default', 'c', ['10.96.3.2'], [{ name: 'http', port: 80 }]));
  t.deepEqual(idx.ptr('10.96.3.1'), [`c.other.svc.${Z}`]);
  t.deepEqual(idx.ptr('10.96.3.2'), [`c.default.svc.${Z}`]);
  t.deepEqual(idx.lookup(`_http._tcp.c.default.svc.${Z}`), { a: ['10.96.3.2'], srv: [{ port: 80, target: `c.default.svc.${Z}` }] });
});

test('the checkpoint objects rebuild an index that answers the same', (t) => {
  const first = createZoneIndex(Z);
  first.useNamespaceObjects();
  for (const s of SERVICES) first.upsertService(s);
  for (const s of SLICES) first.upsertSlice(s);
  for (const p of PODS) first.upsertPod(p);
  for (const n of NAMESPACES) first.upsertNamespace(n);
  const saved = JSON.parse(JSON.stringify(first.objects())) as ReturnType<ZoneIndex['objects']>;
  const second = createZoneIndex(Z);
  second.useNamespaceObjects();
  for (const s of saved.services) second.upsertService(s);
  for (const s of saved.endpointSlices) second.upsertSlice(s);
  for (const p of saved.pods) second.upsertPod(p);
  for (const n of saved.namespaces) second.upsertNamespace(n);
  t.deepEqual(second.stats(), first.stats());
  const names = ['web.default', 'dual.default', 'v6only.default', 'headless.default', 'db-0.headless.default', '_mysql._tcp.headless.default',
    'headless-empty.default', 'ext.default', 'ext-ip.default', '_http._tcp.web.default', '10-244-1-5.web.default', 'no-slices.default', 'v6-0.headless-v6.default'];
  for (const n of names) t.deepEqual(second.lookup(`${n}.svc.${Z}`), first.lookup(`${n}.svc.${Z}`), n);
  for (const ip of ['10.96.0.10', '10.244.2.1', '10.244.2.3', 'fd00::20', 'fd00:244::5']) t.deepEqual(second.ptr(ip), first.ptr(ip), ip);
  t.true(second.podHasIP('default', '10.244.1.5'));
  t.false(second.podHasIP('default', '10.244.1.9'), 'the terminating pod stays out');
  t.true(second.namespaceExists('emptyns'));
});
