/**
 * The conformance table: query name, type → rcode, AA, answer, authority (and additional where it
 * matters). It runs against the in-process handler and over real UDP and TCP with dig, against the
 * objects of fixtures.ts, with pods verified and forwarding off.
 */
export interface ConformanceCase {
  name: string;
  type: string;
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED' | 'SERVFAIL';
  aa: boolean;
  answer: string[];
  authority: string[];
  additional?: string[];
}

export const LISTEN = '127.0.10.53';
const S = 'svc.cluster.local';
const SOA = ['cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5'];
const rr = (name: string, type: string, data: string) => `${name}. 5 ${type} ${data}`;
const yes = (name: string, type: string, answer: string[], additional?: string[]): ConformanceCase => ({ name, type, rcode: 'NOERROR', aa: true, answer, authority: [], ...(additional ? { additional } : {}) });
const nodata = (name: string, type: string): ConformanceCase => ({ name, type, rcode: 'NOERROR', aa: true, answer: [], authority: SOA });
const nx = (name: string, type = 'A'): ConformanceCase => ({ name, type, rcode: 'NXDOMAIN', aa: true, answer: [], authority: SOA });

const web = `web.default.${S}`;
const hl = `headless.default.${S}`;

export const CASES: ConformanceCase[] = [
  // zone apex, schema version, nameserver
  yes('cluster.local', 'SOA', SOA),
  yes('cluster.local', 'NS', [rr('cluster.local', 'NS', 'ns.dns.cluster.local.')], [rr('ns.dns.cluster.local', 'A', LISTEN)]),
  nodata('cluster.local', 'A'),
  yes('dns-version.cluster.local', 'TXT', [rr('dns-version.cluster.local', 'TXT', '"1.1.0"')]),
  nodata('dns-version.cluster.local', 'A'),
  yes('ns.dns.cluster.local', 'A', [rr('ns.dns.cluster.local', 'A', LISTEN)]),
  nodata('ns.dns.cluster.local', 'AAAA'),
  nodata('svc.cluster.local', 'A'),
  nodata('pod.cluster.local', 'A'),
  nodata(`default.${S}`, 'A'),
  nodata(`emptyns.${S}`, 'A'),
  nx(`missing.${S}`),
  nx('foo.cluster.local'),
  nx('a.b.foo.cluster.local', 'AAAA'),
  // ClusterIP
  yes(web, 'A', [rr(web, 'A', '10.96.0.10')]),
  yes('WEB.Default.SVC.Cluster.Local', 'A', [rr(web, 'A', '10.96.0.10')]),
  nodata(web, 'AAAA'),
  nodata(web, 'TXT'),
  nodata(web, 'MX'),
  nodata(web, 'CNAME'),
  yes(web, 'SRV', [rr(web, 'SRV', `0 33 80 ${web}.`), rr(web, 'SRV', `0 33 9090 ${web}.`), rr(web, 'SRV', `0 33 53 ${web}.`)].sort(), [rr(web, 'A', '10.96.0.10')]),
  yes(`_http._tcp.${web}`, 'SRV', [rr(`_http._tcp.${web}`, 'SRV', `0 100 80 ${web}.`)], [rr(web, 'A', '10.96.0.10')]),
  yes(`_metrics._tcp.${web}`, 'SRV', [rr(`_metrics._tcp.${web}`, 'SRV', `0 100 9090 ${web}.`)]),
  yes(`_dns._udp.${web}`, 'SRV', [rr(`_dns._udp.${web}`, 'SRV', `0 100 53 ${web}.`)]),
  yes(`_HTTP._TCP.${web}`, 'SRV', [rr(`_http._tcp.${web}`, 'SRV', `0 100 80 ${web}.`)]),
  nx(`_http._udp.${web}`, 'SRV'),
  nx(`_nope._tcp.${web}`, 'SRV'),
  yes(`_http._tcp.${web}`, 'A', [rr(`_http._tcp.${web}`, 'A', '10.96.0.10')]),
  nx(`nothere.default.${S}`),
  nx(`web.missing.${S}`),
  nx(`web.other.${S}`),
  yes(`10-244-1-5.${web}`, 'A', [rr(`10-244-1-5.${web}`, 'A', '10.244.1.5')]),
  nx(`10-244-1-6.${web}`),
  nx(`a.b.c.${web}`),
  nx(`x.y.z.w.${web}`, 'SRV'),
  // dual stack and IPv6
  yes(`dual.default.${S}`, 'A', [rr(`dual.default.${S}`, 'A', '10.96.0.20')]),
  yes(`dual.default.${S}`, 'AAAA', [rr(`dual.default.${S}`, 'AAAA', 'fd00::20')]),
  yes(`v6only.default.${S}`, 'AAAA', [rr(`v6only.default.${S}`, 'AAAA', 'fd00::30')]),
  nodata(`v6only.default.${S}`, 'A'),
  // headless
  yes(hl, 'A', [rr(hl, 'A', '10.244.2.1'), rr(hl, 'A', '10.244.2.2'), rr(hl, 'A', '10.244.2.3')]),
  nodata(hl, 'AAAA'),
  yes(hl, 'SRV', [rr(hl, 'SRV', `0 33 3306 db-0.${hl}.`), rr(hl, 'SRV', `0 33 3306 db-1.${hl}.`), rr(hl, 'SRV', `0 33 3306 10-244-2-3.${hl}.`)].sort(),
    [rr(`db-0.${hl}`, 'A', '10.244.2.1'), rr(`db-1.${hl}`, 'A', '10.244.2.2'), rr(`10-244-2-3.${hl}`, 'A', '10.244.2.3')].sort()),
  yes(`db-0.${hl}`, 'A', [rr(`db-0.${hl}`, 'A', '10.244.2.1')]),
  yes(`db-1.${hl}`, 'A', [rr(`db-1.${hl}`, 'A', '10.244.2.2')]),
  yes(`10-244-2-3.${hl}`, 'A', [rr(`10-244-2-3.${hl}`, 'A', '10.244.2.3')]),
  nodata(`db-0.${hl}`, 'AAAA'),
  yes(`db-0.${hl}`, 'SRV', [rr(`db-0.${hl}`, 'SRV', `0 100 3306 db-0.${hl}.`)], [rr(`db-0.${hl}`, 'A', '10.244.2.1')]),
  nx(`db-3.${hl}`),
  nx(`10-244-2-4.${hl}`),
  nx(`db-9.${hl}`),
  yes(`_mysql._tcp.${hl}`, 'SRV', [rr(`_mysql._tcp.${hl}`, 'SRV', `0 33 3306 db-0.${hl}.`), rr(`_mysql._tcp.${hl}`, 'SRV', `0 33 3306 db-1.${hl}.`), rr(`_mysql._tcp.${hl}`, 'SRV', `0 33 3306 10-244-2-3.${hl}.`)].sort()),
  nx(`headless-empty.default.${S}`),
  nx(`headless-empty.default.${S}`, 'SRV'),
  yes(`headless-v6.default.${S}`, 'AAAA', [rr(`headless-v6.default.${S}`, 'AAAA', 'fd00:244::5')]),
  yes(`v6-0.headless-v6.default.${S}`, 'AAAA', [rr(`v6-0.headless-v6.default.${S}`, 'AAAA', 'fd00:244::5')]),
  nodata(`headless-v6.default.${S}`, 'A'),
  // ExternalName
  yes(`ext.default.${S}`, 'A', [rr(`ext.default.${S}`, 'CNAME', 'example.org.')]),
  yes(`ext.default.${S}`, 'CNAME', [rr(`ext.default.${S}`, 'CNAME', 'example.org.')]),
  yes(`ext-internal.default.${S}`, 'A', [rr(`ext-internal.default.${S}`, 'CNAME', `${web}.`), rr(web, 'A', '10.96.0.10')]),
  yes(`ext-internal.default.${S}`, 'AAAA', [rr(`ext-internal.default.${S}`, 'CNAME', `${web}.`)]),
  nx(`ext-ip.default.${S}`),
  // other namespace, NodePort, no endpoints
  yes(`api.other.${S}`, 'A', [rr(`api.other.${S}`, 'A', '10.96.1.1')]),
  yes(`_grpc._tcp.api.other.${S}`, 'SRV', [rr(`_grpc._tcp.api.other.${S}`, 'SRV', `0 100 8443 api.other.${S}.`)], [rr(`api.other.${S}`, 'A', '10.96.1.1')]),
  yes(`nodeport.default.${S}`, 'A', [rr(`nodeport.default.${S}`, 'A', '10.96.0.40')]),
  yes(`no-slices.default.${S}`, 'A', [rr(`no-slices.default.${S}`, 'A', '10.96.0.50')]),
  // PTR
  yes('10.0.96.10.in-addr.arpa', 'PTR', [rr('10.0.96.10.in-addr.arpa', 'PTR', `${web}.`)]),
  yes('1.2.244.10.in-addr.arpa', 'PTR', [rr('1.2.244.10.in-addr.arpa', 'PTR', `db-0.${hl}.`)]),
  yes('3.2.244.10.in-addr.arpa', 'PTR', [rr('3.2.244.10.in-addr.arpa', 'PTR', `10-244-2-3.${hl}.`)]),
  yes('5.1.244.10.in-addr.arpa', 'PTR', [rr('5.1.244.10.in-addr.arpa', 'PTR', `10-244-1-5.${web}.`)]),
  yes('0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa', 'PTR',
    [rr('0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa', 'PTR', `dual.default.${S}.`)]),
  { name: '9.9.9.10.in-addr.arpa', type: 'PTR', rcode: 'REFUSED', aa: false, answer: [], authority: [] },
  // pods (verified)
  yes('10-244-1-5.default.pod.cluster.local', 'A', [rr('10-244-1-5.default.pod.cluster.local', 'A', '10.244.1.5')]),
  yes('fd00-244--7.default.pod.cluster.local', 'AAAA', [rr('fd00-244--7.default.pod.cluster.local', 'AAAA', 'fd00:244::7')]),
  nodata('10-244-1-5.default.pod.cluster.local', 'AAAA'),
  nx('10-244-1-5.other.pod.cluster.local'),
  nx('10-244-1-99.default.pod.cluster.local'),
  nx('10-244-1-9.default.pod.cluster.local'),
  nx('010-244-1-5.default.pod.cluster.local'),
  nx('not-an-ip.default.pod.cluster.local'),
  nodata('default.pod.cluster.local', 'A'),
  nx('nope.pod.cluster.local'),
  nx('a.10-244-1-5.default.pod.cluster.local'),
  // outside the zone with forwarding off
  { name: 'example.com', type: 'A', rcode: 'REFUSED', aa: false, answer: [], authority: [] },
  { name: 'cluster.local.example.com', type: 'A', rcode: 'REFUSED', aa: false, answer: [], authority: [] },
];
