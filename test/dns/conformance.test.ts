import test from 'ava';
import { createDnsComponent } from '../../dns/component';
import { Type } from '../../dns/codec';
import { CASES, LISTEN } from './conformance-cases';
import { fixtureFeeds } from './fixtures';
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
