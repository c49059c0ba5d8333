import test from 'ava';
import { DNS_DEFAULTS, parseDnsConfig, parseUpstream } from '../../dns/config';
import { parseResolvConf, upstreamsFromResolvConf } from '../../dns/resolvconf';

test('defaults: node-local address, port 53, cluster.local, TTL 5, pods verified, forwarding on', (t) => {
  const { config, problems } = parseDnsConfig({});
  t.deepEqual(problems, []);
  t.deepEqual(config.listen, ['169.254.20.10']);
  t.is(config.port, 53);
  t.is(config.clusterDomain, 'cluster.local');
  t.is(config.ttl, 5);
  t.is(config.pods, 'verified');
  t.true(config.forward);
  t.deepEqual([config.healthPort, config.readyPort, config.metricsPort], [8080, 8181, 9153]);
  t.deepEqual(parseDnsConfig(undefined).config, { ...DNS_DEFAULTS, listen: ['169.254.20.10'], upstreams: [] });
});

test('reads the dns: section and the top-level clusterDomain', (t) => {
  const { config, problems } = parseDnsConfig({
    clusterDomain: 'Edge.Example.',
    dns: { listen: ['169.254.20.10', '10.96.0.10'], port: 5353, ttl: 30, pods: 'insecure', upstreams: ['1.1.1.1', '[2001:db8::1]:5353'], forward: false, cacheSize: 50, healthPort: 18080, metricsAddress: '127.0.0.1' },
  });
  t.deepEqual(problems, []);
  t.is(config.clusterDomain, 'edge.example');
  t.deepEqual(config.listen, ['169.254.20.10', '10.96.0.10']);
  t.is(config.port, 5353);
  t.is(config.pods, 'insecure');
  t.deepEqual(config.upstreams, ['1.1.1.1', '[2001:db8::1]:5353']);
  t.false(config.forward);
  t.is(config.metricsAddress, '127.0.0.1');
});

test('bad fields are reported with their path and replaced by defaults', (t) => {
  const { config, problems } = parseDnsConfig({ clusterDomain: 'not a domain', dns: { listen: ['0.0.0.0'], port: 70000, pods: 'maybe', upstreams: ['dns.google'], forward: 'yes', bogus: 1 } });
  const fields = problems.map((p) => p.field).sort();
  t.deepEqual(fields, ['clusterDomain', 'dns.bogus', 'dns.forward', 'dns.listen', 'dns.pods', 'dns.port', 'dns.upstreams']);
  t.deepEqual(config.listen, ['169.254.20.10']);
  t.is(config.port, 53);
  t.is(parseDnsConfig({ dns: 'x' }).problems[0]?.field, 'dns');
});

test('upstream addresses and resolv.conf', (t) => {
  t.deepEqual(parseUpstream('9.9.9.9'), { host: '9.9.9.9', port: 53 });
  t.deepEqual(parseUpstream('9.9.9.9:5353'), { host: '9.9.9.9', port: 5353 });
  t.deepEqual(parseUpstream('[2001:DB8::1]:53'), { host: '2001:db8::1', port: 53 });
  t.is(parseUpstream('example.com'), undefined);
  t.deepEqual(parseResolvConf('# c\nnameserver 10.0.0.2\nsearch x\nnameserver fe80::1%eth0\nnameserver bad\n'), ['10.0.0.2', 'fe80::1']);
  const files: Record<string, string> = { '/etc/resolv.conf': 'nameserver 127.0.0.53\n', '/run/systemd/resolve/resolv.conf': 'nameserver 192.0.2.53\n' };
  t.deepEqual(upstreamsFromResolvConf('/etc/resolv.conf', (f) => files[f]!), ['192.0.2.53'], 'looks behind the systemd-resolved stub');
});
