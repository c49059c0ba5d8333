/**
 * Test helper process (not a test): the dns component with the fixture objects and the production
 * defaults for the listen address (169.254.20.10:53, created on lo). Run only inside a test netns.
 */
import { createDnsComponent } from '../../dns/component';
import { DNS_DEFAULTS } from '../../dns/config';
import { fixtureFeeds } from './fixtures';
import { silentLogger } from './helpers';

const dns = createDnsComponent({
  input: fixtureFeeds(),
  config: { ...DNS_DEFAULTS, forward: false, upstreams: [] },
  logger: silentLogger,
});
dns.start().then(
  () => process.stdout.write(JSON.stringify({ ready: true, endpoints: dns.endpoints() }) + '\n'),
  (err: unknown) => {
    process.stdout.write(JSON.stringify({ error: String(err), code: (err as { code?: string }).code }) + '\n');
    process.exit(1);
  },
);
process.on('SIGTERM', () => void dns.stop().then(() => process.exit(0)));
