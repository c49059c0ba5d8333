/** Forwarding, truncation → TCP retry, failover, loop detection and cache, against test upstreams on 127.0.20.x. */
import dgram from 'node:dgram';
import test from 'ava';
import { Class, type Message, Rcode, type ResourceRecord, Type } from '../../dns/codec';
import { createDnsComponent } from '../../dns/component';
import type { DnsConfig } from '../../dns/config';
import { fixtureFeeds } from './fixtures';
import { decode, query, silentLogger, testConfig } from './helpers';
import { startUpstream, type TestUpstream } from './upstream';

const a = (name: string, ip: string, ttl = 300): ResourceRecord => ({ name, type: Type.A, class: Class.IN, ttl, data: ip });
const soa = (minimum: number): ResourceRecord => ({ name: 'example.net', type: Type.SOA, class: Class.IN, ttl: 600, data: { mname: 'ns.example.net', rname: 'h.example.net', serial: 1, refresh: 1, retry: 1, expire: 1, minimum } });

/** Answers like a small authoritative server for a few test names. */
function zoneAnswer(q: Message, proto: 'udp' | 'tcp'): Partial<Message> | undefined {
  const { name, type } = q.questions[0]!;
  const n = name.toLowerCase();
  if (n === 'big.example.net') {
    if (proto === 'udp') return { tc: true };
    return { answers: Array.from({ length: 60 }, (_, i) => a(name, `192.0.2.${i + 1}`)) };
  }
  if (n === 'missing.example.net') return { rcode: Rcode.NXDOMAIN, authorities: [soa(300)] };
  if (n === 'short.example.net' && type === Type.A) return { answers: [a(name, '192.0.2.77', 1)] };
  if (n === 'example.org' && type === Type.A) return { answers: [a(name, '192.0.2.80')] };
  if (type === Type.A) return { answers: [a(name, '192.0.2.10')] };
  return { authorities: [soa(60)] };
}

async function setup(t: { teardown(fn: () => unknown): void }, upstreams: TestUpstream[], over: Partial<DnsConfig> = {}) {
  for (const u of upstreams) t.teardown(() => u.close());
  const config = testConfig({
    listen: ['127.0.20.1'], forward: true, upstreams: upstreams.map((u) => `${u.address}:${u.port}`),
    forwardTimeoutMs: 300, healthCheckIntervalMs: 100, maxFails: 2, ...over,
  });
  const dns = createDnsComponent({ input: fixtureFeeds(), config, logger: silentLogger });
  await dns.start();
  t.teardown(() => dns.stop());
  const ask = async (name: string, type: number = Type.A, opts: { edns?: number; tcp?: boolean } = {}) =>
    decode(await dns.handlePacket(query(name, type, { edns: opts.edns }), opts.tcp ? 'tcp' : 'udp'));
  return { dns, ask };
}

test('forwards names outside the zone and answers as a recursive resolver', async (t) => {
  const up = await startUpstream('127.0.20.2', zoneAnswer);
  const { ask } = await setup(t, [up]);
  const res = await ask('www.example.net');
  t.is(res.rcode, Rcode.NOERROR);
  t.false(res.aa);
  t.true(res.ra);
  t.deepEqual(res.answers.map((r) => r.data), ['192.0.2.10']);
  t.is(up.queries.filter((q) => q.name === 'www.example.net').length, 1);
  // cluster names never go upstream
  const web = await ask('web.default.svc.cluster.local');
  t.deepEqual(web.answers.map((r) => r.data), ['10.96.0.10']);
  t.false(up.queries.some((q) => q.name.includes('cluster.local')));
});

test('caches positive answers with counted-down TTLs and coalesces misses', async (t) => {
  const up = await startUpstream('127.0.20.3', zoneAnswer);
  const { dns, ask } = await setup(t, [up]);
  const [r1, r2] = await Promise.all([ask('cached.example.net'), ask('cached.example.net')]);
  t.is(r1.answers[0]?.data, '192.0.2.10');
  t.is(r2.answers[0]?.data, '192.0.2.10');
  const again = await ask('CACHED.example.net');
  t.is(again.answers[0]?.data, '192.0.2.10');
  t.true(again.answers[0]!.ttl <= 300);
  t.is(up.queries.filter((q) => q.name.toLowerCase() === 'cached.example.net').length, 1, 'one upstream query for three client queries');
  t.regex(dns.metrics.render(), /coredns_cache_hits_total\{[^}]*type="success"\} [1-9]/);
});

test('caches negative answers for at most 5 seconds', async (t) => {
  const up = await startUpstream('127.0.20.4', zoneAnswer);
  const { ask } = await setup(t, [up]);
  const r1 = await ask('missing.example.net');
  t.is(r1.rcode, Rcode.NXDOMAIN);
  const r2 = await ask('missing.example.net');
  t.is(r2.rcode, Rcode.NXDOMAIN);
  t.true(r2.authorities[0]!.ttl <= 5, 'negative TTL capped at 5 s');
  t.true(r1.authorities[0]!.ttl <= 5);
  t.is(up.queries.filter((q) => q.name === 'missing.example.net').length, 1);
  // entries expire: a 1-second positive TTL is fetched again after it passes
  await ask('short.example.net');
  await new Promise((r) => setTimeout(r, 1100));
  await ask('short.example.net');
  t.is(up.queries.filter((q) => q.name === 'short.example.net').length, 2);
});

test('retries over TCP when the UDP answer is truncated, and truncates for the client', async (t) => {
  const up = await startUpstream('127.0.20.5', zoneAnswer);
  const { ask } = await setup(t, [up]);
  const tcp = await ask('big.example.net', Type.A, { tcp: true });
  t.is(tcp.answers.length, 60);
  t.false(tcp.tc);
  t.true(up.queries.some((q) => q.name === 'big.example.net' && q.proto === 'tcp'));
  // the cached 60 records do not fit 512 bytes: TC over UDP without EDNS
  const udp = await ask('big.example.net');
  t.true(udp.tc);
  t.true(udp.answers.length < 60);
});

test('fails over to the next upstream, marks the dead one down and back up', async (t) => {
  const dead = await startUpstream('127.0.20.6', zoneAnswer);
  const good = await startUpstream('127.0.20.7', zoneAnswer);
  dead.setDown(true);
  const { dns, ask } = await setup(t, [dead, good], { cacheSize: 0 });
  for (const name of ['f1.example.net', 'f2.example.net', 'f3.example.net']) {
    const res = await ask(name);
    t.is(res.rcode, Rcode.NOERROR, name);
    t.is(res.answers[0]?.data, '192.0.2.10');
  }
  const status = () => (dns.health().details!.upstreams as { upstream: string; healthy: boolean }[]);
  t.false(status().find((u) => u.upstream.startsWith('127.0.20.6'))!.healthy);
  const before = dead.queries.length;
  await ask('f4.example.net');
  t.is(dead.queries.length, before, 'a down upstream gets no client queries');
  dead.setDown(false);
  await new Promise((r) => setTimeout(r, 400));
  t.true(status().find((u) => u.upstream.startsWith('127.0.20.6'))!.healthy, 'health probe brought it back');
  t.regex(dns.metrics.render(), /coredns_forward_request_duration_seconds_count\{to="127\.0\.20\.7:\d+"\} [1-9]/);
});

test('SERVFAIL when every upstream is down', async (t) => {
  const dead = await startUpstream('127.0.20.8', zoneAnswer);
  dead.setDown(true);
  const { ask } = await setup(t, [dead]);
  const res = await ask('nowhere.example.net');
  t.is(res.rcode, Rcode.SERVFAIL);
});

test('ExternalName targets outside the zone are chased through the forwarder', async (t) => {
  const up = await startUpstream('127.0.20.9', zoneAnswer);
  const { ask } = await setup(t, [up]);
  const res = await ask('ext.default.svc.cluster.local');
  t.true(res.aa);
  t.deepEqual(res.answers.map((r) => [r.type, r.data]), [[Type.CNAME, 'example.org'], [Type.A, '192.0.2.80']]);
});

test('detects a forwarding loop (upstream sends our queries back to us) and stops using it', async (t) => {
  const port = 20000 + Math.floor(Math.random() * 40000);
  const relay = dgram.createSocket('udp4');
  t.teardown(() => new Promise<void>((r) => relay.close(() => r())));
  await new Promise<void>((r) => relay.bind(0, '127.0.20.11', () => r()));
  // A "resolver" that forwards every query to keelson (like systemd-resolved pointing back).
  const loop = await startUpstream('127.0.20.10', (q) => {
    relay.send(query(q.questions[0]!.name, q.questions[0]!.type), port, '127.0.20.1');
    return undefined;
  });
  const good = await startUpstream('127.0.20.12', zoneAnswer);
  const { dns, ask } = await setup(t, [loop, good], { port });
  const looping = () => (dns.health().details!.upstreams as { upstream: string; loop: boolean }[]).find((u) => u.upstream.startsWith('127.0.20.10'))!.loop;
  for (let i = 0; i < 40 && !looping(); i++) await new Promise((r) => setTimeout(r, 25));
  t.true(looping(), 'the loop probe came back');
  const before = loop.queries.length;
  const res = await ask('after-loop.example.net');
  t.is(res.answers[0]?.data, '192.0.2.10');
  t.is(loop.queries.length, before, 'the looping upstream is not used');
});
