import test from 'ava';
import { Class, type Message, Rcode, Type } from '../../dns/codec';
import { createCacheStage } from '../../dns/cache';
import { makeRequest, reply } from '../../dns/handler';

function setup(size = 100) {
  let now = 1_000_000;
  let calls = 0;
  let rcode: number = Rcode.NOERROR;
  const cache = createCacheStage({ size, maxTtl: 3600, negativeTtl: 5, prefetchHits: 3, prefetchPercent: 20, now: () => now });
  const next = (req: ReturnType<typeof makeRequest>): Message => {
    calls++;
    const res = reply(req, rcode);
    if (rcode === Rcode.NOERROR) res.answers = [{ name: req.question.name, type: Type.A, class: Class.IN, ttl: 100, data: '192.0.2.1' }];
    else res.authorities = [{ name: 'example', type: Type.SOA, class: Class.IN, ttl: 900, data: { mname: 'a', rname: 'b', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 900 } }];
    return res;
  };
  const ask = async (name: string) => cache.serve(makeRequest({ name, type: Type.A, class: Class.IN }), next);
  return { cache, ask, advance: (ms: number) => { now += ms; }, calls: () => calls, setRcode: (r: number) => { rcode = r; } };
}

test('positive entries live for their TTL, counted down', async (t) => {
  const c = setup();
  await c.ask('a.example');
  c.advance(40_000);
  const hit = await c.ask('a.example');
  t.is(c.calls(), 1);
  t.is(hit.answers[0]!.ttl, 60);
  c.advance(61_000);
  await c.ask('a.example');
  t.is(c.calls(), 2, 'expired entry fetched again');
});

test('negative entries are capped at 5 s', async (t) => {
  const c = setup();
  c.setRcode(Rcode.NXDOMAIN);
  const first = await c.ask('nx.example');
  t.is(first.rcode, Rcode.NXDOMAIN);
  c.advance(4_000);
  await c.ask('nx.example');
  t.is(c.calls(), 1);
  c.advance(1_500);
  await c.ask('nx.example');
  t.is(c.calls(), 2, 'a Service created meanwhile would be seen after 5 s');
});

test('SERVFAIL is not cached, size is bounded (LRU)', async (t) => {
  const c = setup(2);
  c.setRcode(Rcode.SERVFAIL);
  await c.ask('s.example');
  await c.ask('s.example');
  t.is(c.calls(), 2);
  c.setRcode(Rcode.NOERROR);
  await c.ask('1.example');
  await c.ask('2.example');
  await c.ask('1.example'); // 1 is now most recent
  await c.ask('3.example'); // evicts 2
  t.is(c.cache.entries(), 2);
  const before = c.calls();
  await c.ask('1.example');
  t.is(c.calls(), before);
  await c.ask('2.example');
  t.is(c.calls(), before + 1);
});

test('popular entries are prefetched before they expire', async (t) => {
  const c = setup();
  await c.ask('p.example');
  for (let i = 0; i < 3; i++) await c.ask('p.example');
  t.is(c.calls(), 1);
  c.advance(85_000); // 15 % of the TTL left, under the 20 % threshold
  const res = await c.ask('p.example');
  t.is(res.answers[0]!.ttl, 15, 'served from cache while prefetching');
  await new Promise((r) => setImmediate(r));
  t.is(c.calls(), 2, 'prefetched');
  c.advance(20_000); // the original entry would have expired by now
  await c.ask('p.example');
  t.is(c.calls(), 2, 'the prefetched entry answers');
});
