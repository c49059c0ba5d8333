import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { podDnsConfig, podHostnameAndDomain, renderEtcHosts, type ClusterDnsSettings } from '../../agent/pods/dns';
import { sandboxHostname } from '../../agent/pods/runtime-config';

const HOST = { servers: ['192.0.2.53'], searches: ['lan.example'], options: ['edns0'] };
const SETTINGS: ClusterDnsSettings = { clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local', host: HOST };

const pod = (spec: object): Pod => ({ metadata: { name: 'web-0', namespace: 'shop', uid: 'u' }, spec: { containers: [], ...spec } });

const CLUSTER = { servers: ['10.96.0.10'], searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'lan.example'], options: ['ndots:5'] };

const CASES: [string, object, ClusterDnsSettings, object | undefined][] = [
  ['ClusterFirst (default)', {}, SETTINGS, CLUSTER],
  ['ClusterFirst on the host network → host', { hostNetwork: true }, SETTINGS, HOST],
  ['ClusterFirstWithHostNet on the host network → cluster', { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }, SETTINGS, CLUSTER],
  ['Default → host', { dnsPolicy: 'Default' }, SETTINGS, HOST],
  ['ClusterFirst without clusterDNS → host', {}, { ...SETTINGS, clusterDNS: [] }, HOST],
  ['None → only dnsConfig', { dnsPolicy: 'None', dnsConfig: { nameservers: ['1.1.1.1'], searches: ['a.example'], options: [{ name: 'ndots', value: '2' }] } }, SETTINGS,
    { servers: ['1.1.1.1'], searches: ['a.example'], options: ['ndots:2'] }],
  ['dnsConfig merges: servers and searches appended, options override by name', {
    dnsConfig: { nameservers: ['10.96.0.10', '9.9.9.9'], searches: ['extra.example'], options: [{ name: 'ndots', value: '1' }, { name: 'single-request' }] },
  }, SETTINGS, { servers: ['10.96.0.10', '9.9.9.9'], searches: [...CLUSTER.searches, 'extra.example'], options: ['ndots:1', 'single-request'] }],
  ['Default without a host resolv.conf → runtime default', { dnsPolicy: 'Default' }, { ...SETTINGS, host: undefined }, undefined],
];

for (const [title, spec, settings, expected] of CASES) {
  test(`dns: ${title}`, (t) => {
    t.deepEqual(podDnsConfig(pod(spec), settings), expected);
  });
}

test('dns: at most 3 servers and 32 search domains', (t) => {
  const many = { dnsPolicy: 'None', dnsConfig: { nameservers: ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4'], searches: Array.from({ length: 40 }, (_, i) => `d${i}.example`) } };
  const c = podDnsConfig(pod(many), SETTINGS)!;
  t.is(c.servers.length, 3);
  t.is(c.searches.length, 32);
});

test('hostname, subdomain, setHostnameAsFQDN and the managed /etc/hosts', (t) => {
  const p = pod({ hostname: 'db', subdomain: 'backend', hostAliases: [{ ip: '192.0.2.7', hostnames: ['legacy', 'legacy.lan'] }] });
  t.deepEqual(podHostnameAndDomain(p, 'cluster.local'), { hostname: 'db', domain: 'backend.shop.svc.cluster.local' });
  t.is(sandboxHostname(p, 'cluster.local'), 'db');
  t.is(sandboxHostname(pod({ hostname: 'db', subdomain: 'backend', setHostnameAsFQDN: true }), 'cluster.local'), 'db.backend.shop.svc.cluster.local');
  t.is(sandboxHostname(pod({ hostNetwork: true }), 'cluster.local'), '');
  t.is(sandboxHostname(pod({}), 'cluster.local'), 'web-0');
  const hosts = renderEtcHosts(p, ['10.1.0.9'], 'cluster.local');
  t.regex(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  t.regex(hosts, /^10\.1\.0\.9\tdb\.backend\.shop\.svc\.cluster\.local\tdb$/m);
  t.regex(hosts, /^192\.0\.2\.7\tlegacy\tlegacy\.lan$/m);
});
