/** The conformance table over real sockets: dig over UDP and over TCP against 127.0.10.53. */
import { integrationTest } from '../harness/requirements';
import { createDnsComponent } from '../../dns/component';
import { CASES, LISTEN } from './conformance-cases';
import { fixtureFeeds } from './fixtures';
import { dig, silentLogger, testConfig } from './helpers';

const itest = integrationTest({ commands: ['dig'] });
const config = testConfig({ listen: [LISTEN] });
const component = createDnsComponent({ input: fixtureFeeds(), config, logger: silentLogger });
itest.before(() => component.start());
itest.after.always(() => component.stop());

for (const c of CASES) {
  for (const proto of ['udp', 'tcp'] as const) {
    itest(`dig ${proto}: ${c.name} ${c.type} → ${c.rcode}`, async (t) => {
      const port = component.endpoints().dns[0]!.port;
      const o = await dig(LISTEN, port, c.name, c.type, proto === 'tcp');
      t.is(o.rcode, c.rcode);
      t.is(o.aa, c.aa, 'AA flag');
      t.deepEqual(o.answer, [...c.answer].sort(), 'answer');
      t.deepEqual(o.authority, [...c.authority].sort(), 'authority');
      if (c.additional) t.deepEqual(o.additional, [...c.additional].sort(), 'additional');
    });
  }
}
