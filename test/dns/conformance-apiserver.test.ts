/**
 * The conformance table against objects SERVED BY THE TEST APISERVER: the fixtures are created
 * there, and the DNS input comes from agent/kube's real informers (client, list-watch, cache),
 * wired as agent/run.ts wires them. The table runs in-process and over UDP and TCP with dig; then
 * one change made through the apiserver (an endpoint added) shows up in the answers.
 */
import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createKubeClient } from '../../agent/kube/client';
import { createInformerFactory, type InformerFactory } from '../../agent/kube/informer-factory';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { clusterFeeds } from '../../agent/cluster-feeds';
import { Type } from '../../dns/codec';
import { createDnsComponent, type DnsComponent } from '../../dns/component';
import { startTestApiserver, type Obj, type TestApiserver } from '../harness/apiserver';
import { integrationTest } from '../harness/requirements';
import { CASES, LISTEN } from './conformance-cases';
import { ep, headless, NAMESPACES, PODS, SERVICES, slice, SLICES } from './fixtures';
import { decode, digMany, observe, query, silentLogger, testConfig, type Observed } from './helpers';

const itest = integrationTest({ commands: ['dig'] });

/** Fixture pods as the apiserver wants them: a container, bound to a node (so deletion is graceful). */
function podObject(p: Pod): Obj {
  const { deletionTimestamp: _gone, ...metadata } = p.metadata!;
  return { ...p, metadata, spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'registry.local/app:1' }] } };
}

let api: TestApiserver;
let informers: InformerFactory;
let dns: DnsComponent;

async function setUp(): Promise<void> {
  api = await startTestApiserver({ fixtures: [...NAMESPACES, ...SERVICES, ...SLICES, ...PODS.map(podObject)] as Obj[] });
  // A terminating pod gets its deletionTimestamp from a graceful DELETE, as in a real cluster.
  for (const p of PODS) if (p.metadata?.deletionTimestamp) api.store.delete('Pod', p.metadata.namespace, p.metadata.name!);
  const client = createKubeClient(loadKubeconfig(api.kubeconfigPath), { logger: silentLogger });
  informers = createInformerFactory({ client, logger: silentLogger });
  // A DNS-only daemon's feeds: slim copies of every object in the caches.
  const { services, endpointSlices, pods, namespaces } = clusterFeeds(informers, ['dns']);
  dns = createDnsComponent({ input: { services, endpointSlices, pods: pods!, namespaces: namespaces! }, config: testConfig({ listen: [LISTEN] }), logger: silentLogger });
  informers.start();
  await dns.start();
  await informers.waitForSync();
  if (!dns.ready()) throw new Error('dns not ready after the informers synced');
}
const ready = setUp();
test.before(() => ready);

test.after.always(async () => {
  await dns?.stop();
  await informers?.stop();
  await api?.stop();
});

test('the records come from the apiserver: built-in `kubernetes` Service answers too', async (t) => {
  const res = decode(await dns.handlePacket(query('kubernetes.default.svc.cluster.local', Type.A), 'udp'));
  t.deepEqual(res.answers.map((r) => r.data), ['10.96.0.1']);
  t.true(dns.index.stats().services >= SERVICES.length + 1);
});

for (const c of CASES) {
  test(`apiserver in-process: ${c.name} ${c.type} → ${c.rcode}`, async (t) => {
    const res = decode(await dns.handlePacket(query(c.name, Type[c.type as keyof typeof Type]), 'udp'));
    const o = observe(res);
    t.is(o.rcode, c.rcode);
    t.is(o.aa, c.aa, 'AA flag');
    t.deepEqual(o.answer, [...c.answer].sort(), 'answer');
    t.deepEqual(o.authority, [...c.authority].sort(), 'authority');
    if (c.additional) t.deepEqual(o.additional, [...c.additional].sort(), 'additional');
    t.is(res.questions[0]?.name, c.name, 'question echoed as asked');
  });
}

// One dig process per protocol asks every question of the table (each a real query on the socket);
// each case then checks its own answer.
const viaDig: Record<'udp' | 'tcp', Map<string, Observed>> = { udp: new Map(), tcp: new Map() };
itest.before(async () => {
  await ready;
  const port = dns.endpoints().dns[0]!.port;
  viaDig.udp = await digMany(LISTEN, port, CASES, false);
  viaDig.tcp = await digMany(LISTEN, port, CASES, true);
});

for (const c of CASES) {
  for (const proto of ['udp', 'tcp'] as const) {
    itest(`apiserver dig ${proto}: ${c.name} ${c.type} → ${c.rcode}`, (t) => {
      const o = viaDig[proto].get(`${c.name}. ${c.type}`);
      if (!o) return t.fail(`dig printed no answer for ${c.name} ${c.type}`);
      t.is(o.rcode, c.rcode);
      t.is(o.aa, c.aa, 'AA flag');
      t.deepEqual(o.answer, [...c.answer].sort(), 'answer');
      t.deepEqual(o.authority, [...c.authority].sort(), 'authority');
      if (c.additional) t.deepEqual(o.additional, [...c.additional].sort(), 'additional');
    });
  }
}

itest('an endpoint added through the apiserver shows up in the answers (in-process and dig)', async (t) => {
  const name = 'grow.default.svc.cluster.local';
  api.store.create(headless('default', 'grow', [{ name: 'http', port: 80 }]) as Obj);
  const one = api.store.create(slice('default', 'grow', 'a', [ep('10.244.7.1')], [{ name: 'http', port: 80 }]) as Obj) as EndpointSlice;
  const answers = async () => decode(await dns.handlePacket(query(name, Type.A), 'udp')).answers.map((r) => r.data).sort();
  const until = async (want: string[]) => {
    for (let i = 0; i < 200 && JSON.stringify(await answers()) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 25));
  };
  await until(['10.244.7.1']);
  t.deepEqual(await answers(), ['10.244.7.1']);
  api.store.update({ ...one, endpoints: [ep('10.244.7.1'), ep('10.244.7.2', true, 'grow-1')] } as Obj);
  await until(['10.244.7.1', '10.244.7.2']);
  t.deepEqual(await answers(), ['10.244.7.1', '10.244.7.2']);
  const port = dns.endpoints().dns[0]!.port;
  for (const tcp of [false, true]) {
    const got = await digMany(LISTEN, port, [{ name, type: 'A' }, { name: `grow-1.${name}`, type: 'A' }, { name: '2.7.244.10.in-addr.arpa', type: 'PTR' }], tcp);
    t.deepEqual(got.get(`${name}. A`)?.answer, [`${name}. 5 A 10.244.7.1`, `${name}. 5 A 10.244.7.2`]);
    t.deepEqual(got.get(`grow-1.${name}. A`)?.answer, [`grow-1.${name}. 5 A 10.244.7.2`]);
    t.deepEqual(got.get('2.7.244.10.in-addr.arpa. PTR')?.answer, [`2.7.244.10.in-addr.arpa. 5 PTR grow-1.${name}.`]);
  }
});
