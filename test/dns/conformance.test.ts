import test from 'ava';
import { createDnsComponent } from '../../dns/component';
import { Type } from '../../dns/codec';
import { CASES, LISTEN } from './conformance-cases';
import { createMemoryFeed } from '../harness/feed';
import { slimEndpointSlice, slimNamespace, slimPod, slimService } from '../../dns/transform';
import { fixtureFeeds, NAMESPACES, PODS, SERVICES, SLICES } from './fixtures';
import { decode, observe, query, silentLogger, testConfig } from './helpers';

const component = createDnsComponent({ input: fixtureFeeds(), config: testConfig({ listen: [LISTEN] }), logger: silentLogger });
test.before(() => component.start());
test.after.always(() => component.stop());

test('the conformance table has at least 60 cases', (t) => {
  t.true(CASES.length >= 60, `${CASES.length} cases`);
});

for (const c of CASES) {
  test(`in-process: ${c.name} ${c.type} → ${c.rcode}`, async (t) => {
    const res = decode(await component.handlePacket(query(c.name, Type[c.type as keyof typeof Type]), 'udp'));
    const o = observe(res);
    t.is(o.rcode, c.rcode);
    t.is(o.aa, c.aa, 'AA flag');
    t.deepEqual(o.answer, [...c.answer].sort(), 'answer');
    t.deepEqual(o.authority, [...c.authority].sort(), 'authority');
    if (c.additional) t.deepEqual(o.additional, [...c.additional].sort(), 'additional');
    t.is(res.id, 4242);
    t.is(res.questions[0]?.name, c.name, 'question echoed as asked');
  });
}

// The same table with every object passed through dns/transform.ts first, as a DNS-only informer
// cache would hold them: the slim copies must carry everything the answers depend on.
const slim = createDnsComponent({
  input: {
    services: createMemoryFeed(SERVICES.map(slimService)),
    endpointSlices: createMemoryFeed(SLICES.map(slimEndpointSlice)),
    pods: createMemoryFeed(PODS.map(slimPod)),
    namespaces: createMemoryFeed(NAMESPACES.map(slimNamespace)),
  },
  config: testConfig({ listen: [LISTEN] }),
  logger: silentLogger,
});
test.before(() => slim.start());
test.after.always(() => slim.stop());

test('slim objects (dns/transform.ts) answer the whole table exactly as full objects do', async (t) => {
  for (const c of CASES) {
    const o = observe(decode(await slim.handlePacket(query(c.name, Type[c.type as keyof typeof Type]), 'udp')));
    t.is(o.rcode, c.rcode, `${c.name} ${c.type}`);
    t.deepEqual(o.answer, [...c.answer].sort(), `${c.name} ${c.type} answer`);
    t.deepEqual(o.authority, [...c.authority].sort(), `${c.name} ${c.type} authority`);
    if (c.additional) t.deepEqual(o.additional, [...c.additional].sort(), `${c.name} ${c.type} additional`);
  }
});
