/**
 * The conformance table over real sockets: dig over UDP and over TCP against 127.0.10.53. One dig
 * process per protocol asks every question (each a real query); each case checks its own answer.
 */
import { integrationTest } from '../harness/requirements';
import { createDnsComponent } from '../../dns/component';
import { CASES, LISTEN } from './conformance-cases';
import { fixtureFeeds } from './fixtures';
import { digMany, type Observed, silentLogger, testConfig } from './helpers';

const itest = integrationTest({ commands: ['dig'] });
const config = testConfig({ listen: [LISTEN] });
const component = createDnsComponent({ input: fixtureFeeds(), config, logger: silentLogger });
const viaDig: Record<'udp' | 'tcp', Map<string, Observed>> = { udp: new Map(), tcp: new Map() };
itest.before(async () => {
  await component.start();
  const port = component.endpoints().dns[0]!.port;
  viaDig.udp = await digMany(LISTEN, port, CASES, false);
  viaDig.tcp = await digMany(LISTEN, port, CASES, true);
});
itest.after.always(() => component.stop());

for (const c of CASES) {
  for (const proto of ['udp', 'tcp'] as const) {
    itest(`dig ${proto}: ${c.name} ${c.type} → ${c.rcode}`, (t) => {
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
