/** The component's lifecycle: sync, live updates, checkpoint/offline, HTTP endpoints, pod modes. */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Rcode, Type } from '../../dns/codec';
import { createDnsComponent } from '../../dns/component';
import type { DnsConfig } from '../../dns/config';
import type { DnsInput } from '../../dns/input';
import { createMemoryFeed } from '../harness/feed';
import { clusterIP, ep, fixtureFeeds, headless, slice } from './fixtures';
import { decode, query, silentLogger, testConfig } from './helpers';

async function start(t: { teardown(fn: () => unknown): void }, input: DnsInput, over: Partial<DnsConfig> = {}, checkpointDir?: string) {
  const dns = createDnsComponent({ input, config: testConfig({ listen: ['127.0.40.1'], checkpointIntervalMs: 20, ...over }), logger: silentLogger, checkpointDir });
  await dns.start();
  let stopped = false;
  t.teardown(() => (stopped ? undefined : dns.stop()));
  const ask = async (name: string, type: number = Type.A) => decode(await dns.handlePacket(query(name, type), 'udp'));
  return { dns, ask, stop: async () => { stopped = true; await dns.stop(); } };
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.40.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('before the first sync: SERVFAIL for zone names (never a false NXDOMAIN), not ready; then answers', async (t) => {
  const feeds = fixtureFeeds(false);
  const { dns, ask } = await start(t, feeds);
  t.is((await ask('web.default.svc.cluster.local')).rcode, Rcode.SERVFAIL);
  t.is((await ask('nothere.default.svc.cluster.local')).rcode, Rcode.SERVFAIL);
  t.false(dns.health().healthy);
  t.is((await get(dns.endpoints().http['/ready']!, '/ready')).status, 503);
  t.is((await get(dns.endpoints().http['/health']!, '/health')).status, 200);
  for (const f of [feeds.services, feeds.endpointSlices, feeds.pods, feeds.namespaces]) f.markSynced();
  t.is((await ask('web.default.svc.cluster.local')).answers[0]?.data, '10.96.0.10');
  t.is((await ask('nothere.default.svc.cluster.local')).rcode, Rcode.NXDOMAIN);
  t.true(dns.health().healthy);
  t.is((await get(dns.endpoints().http['/ready']!, '/ready')).status, 200);
});

test('records follow the feed: new, changed and deleted services and endpoints', async (t) => {
  const feeds = fixtureFeeds();
  const { ask } = await start(t, feeds);
  const name = 'late.default.svc.cluster.local';
  t.is((await ask(name)).rcode, Rcode.NXDOMAIN);
  const svc = clusterIP('default', 'late', ['10.96.5.5'], [{ name: 'http', port: 80 }]);
  feeds.services.upsert(svc);
  t.is((await ask(name)).answers[0]?.data, '10.96.5.5');
  feeds.services.upsert(clusterIP('default', 'late', ['10.96.5.6'], [{ name: 'http', port: 80 }]));
  t.deepEqual((await ask(name)).answers.map((r) => r.data), ['10.96.5.6']);
  feeds.services.remove(svc);
  t.is((await ask(name)).rcode, Rcode.NXDOMAIN);
  // headless: an endpoint turning ready appears, a deleted slice disappears
  const hs = 'hs.default.svc.cluster.local';
  feeds.services.upsert(headless('default', 'hs', [{ name: 'http', port: 80 }]));
  t.is((await ask(hs)).rcode, Rcode.NXDOMAIN);
  const sl = slice('default', 'hs', 'x', [ep('10.244.9.1', false)], [{ name: 'http', port: 80 }]);
  feeds.endpointSlices.upsert(sl);
  t.is((await ask(hs)).rcode, Rcode.NXDOMAIN);
  feeds.endpointSlices.upsert(slice('default', 'hs', 'x', [ep('10.244.9.1', true)], [{ name: 'http', port: 80 }]));
  t.deepEqual((await ask(hs)).answers.map((r) => r.data), ['10.244.9.1']);
  feeds.endpointSlices.remove(sl);
  t.is((await ask(hs)).rcode, Rcode.NXDOMAIN);
});

test('a malformed Service is skipped without disturbing the others', async (t) => {
  const feeds = fixtureFeeds();
  const { ask } = await start(t, feeds);
  feeds.services.upsert({ metadata: { namespace: 'default', name: 'Bad_Name!' }, spec: { clusterIP: '10.1.1.1' } });
  feeds.services.upsert({ metadata: { namespace: 'default', name: 'noip' }, spec: { clusterIP: 'garbage', ports: [{ port: 1 }] } });
  feeds.endpointSlices.upsert({ metadata: { namespace: 'default', name: 'junk' }, addressType: 'IPv4', endpoints: [{ addresses: ['not-an-ip'] }] } as never);
  // shapes the types forbid but a broken apiserver object could carry
  feeds.services.upsert({ metadata: { namespace: 'default', name: 'weird' }, spec: { clusterIP: '10.96.9.9', clusterIPs: ['10.96.9.9'], ports: 'nope' } } as never);
  feeds.endpointSlices.upsert({ metadata: { namespace: 'default', name: 'web-weird', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: 42 } as never);
  t.is((await ask('dual.default.svc.cluster.local')).answers[0]?.data, '10.96.0.20');
  t.is((await ask('web.default.svc.cluster.local')).answers[0]?.data, '10.96.0.10');
  t.is((await ask('noip.default.svc.cluster.local')).rcode, Rcode.NXDOMAIN);
});

test('offline: after a restart, answers come from the checkpoint until the feed syncs', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keelson-dns-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const first = await start(t, fixtureFeeds(), {}, dir);
  await new Promise((r) => setTimeout(r, 100));
  await first.stop();
  const saved = JSON.parse(await fs.readFile(path.join(dir, 'dns-state.json'), 'utf8')) as { services: unknown[] };
  t.true(saved.services.length >= 10);

  // apiserver unreachable: feeds never sync
  const offline = fixtureFeeds(false);
  for (const f of Object.values(offline)) for (const o of f.list()) f.remove(o);
  const second = await start(t, offline, {}, dir);
  t.is((await second.ask('web.default.svc.cluster.local')).answers[0]?.data, '10.96.0.10');
  t.deepEqual((await second.ask('headless.default.svc.cluster.local')).answers.map((r) => r.data).sort(), ['10.244.2.1', '10.244.2.2', '10.244.2.3']);
  t.is((await second.ask('10-244-1-5.default.pod.cluster.local')).answers[0]?.data, '10.244.1.5');
  t.true(second.dns.health().healthy);
  t.is(second.dns.health().details!.fromCheckpoint, true);
  // link back: the feed syncs without `web`; stale checkpoint records go
  const { services, endpointSlices, pods, namespaces } = fixtureFeeds();
  for (const s of services.list()) if (s.metadata?.name !== 'web') offline.services.upsert(s);
  for (const s of endpointSlices.list()) offline.endpointSlices.upsert(s);
  for (const p of pods.list()) offline.pods.upsert(p);
  for (const n of namespaces.list()) offline.namespaces.upsert(n);
  for (const f of Object.values(offline)) f.markSynced();
  t.is((await second.ask('web.default.svc.cluster.local')).rcode, Rcode.NXDOMAIN);
  t.is((await second.ask('dual.default.svc.cluster.local')).answers[0]?.data, '10.96.0.20');
});

test('pods insecure answers any IP-shaped name in an existing namespace; disabled answers none', async (t) => {
  const insecure = await start(t, fixtureFeeds(), { pods: 'insecure' });
  t.is((await insecure.ask('1-2-3-4.default.pod.cluster.local')).answers[0]?.data, '1.2.3.4');
  t.is((await insecure.ask('1-2-3-4.missingns.pod.cluster.local')).rcode, Rcode.NXDOMAIN);
  t.is((await insecure.ask('1-2-3-999.default.pod.cluster.local')).rcode, Rcode.NXDOMAIN);
  const disabled = await start(t, fixtureFeeds(), { pods: 'disabled', listen: ['127.0.40.2'] });
  t.is((await disabled.ask('10-244-1-5.default.pod.cluster.local')).rcode, Rcode.NXDOMAIN);
});

test('without a namespaces feed, a namespace exists when a Service or Pod lives in it', async (t) => {
  const input: DnsInput = { services: createMemoryFeed(fixtureFeeds().services.list()), endpointSlices: createMemoryFeed([]) };
  const { ask } = await start(t, input);
  t.is((await ask('default.svc.cluster.local')).rcode, Rcode.NOERROR);
  t.is((await ask('emptyns.svc.cluster.local')).rcode, Rcode.NXDOMAIN);
  t.is((await ask('10-244-1-5.default.pod.cluster.local')).rcode, Rcode.NXDOMAIN, 'verified without pods: nothing verified');
});

test('/metrics exposes requests by type and rcode in Prometheus text format', async (t) => {
  const { dns, ask } = await start(t, fixtureFeeds());
  await ask('web.default.svc.cluster.local');
  await ask('web.default.svc.cluster.local', Type.AAAA);
  await ask('nothere.default.svc.cluster.local');
  const m = await get(dns.endpoints().http['/metrics']!, '/metrics');
  t.is(m.status, 200);
  t.regex(m.body, /coredns_dns_requests_total\{[^}]*proto="udp"[^}]*type="A"\} 2/);
  t.regex(m.body, /coredns_dns_requests_total\{[^}]*type="AAAA"\} 1/);
  t.regex(m.body, /coredns_dns_responses_total\{[^}]*rcode="NXDOMAIN"\} 1/);
  t.regex(m.body, /coredns_dns_responses_total\{[^}]*rcode="NOERROR"\} 2/);
  t.is((await get(dns.endpoints().http['/metrics']!, '/nope')).status, 404);
});
