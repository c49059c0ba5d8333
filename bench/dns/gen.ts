/**
 * Writes the bench inputs into a directory: Knot zone files and configs (the server under test for
 * cluster names, and the upstream for external names), the Unbound config, and dnsperf query files.
 * Usage: node dist/bench/dns/gen.js DIR SERVICES
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchServices, zoneRecords } from './objects';

export const ADDR = { keelson: '127.0.70.1', knot: '127.0.70.2', upstream: '127.0.70.3', unbound: '127.0.70.4' };
export const PORT = 5300;
export const EXTERNAL_NAMES = 1000;

function main(): void {
  const dir = process.argv[2]!;
  const n = Number(process.argv[3] ?? '5000');
  fs.mkdirSync(dir, { recursive: true });
  const list = benchServices(n);
  const soa = (zone: string) => [
    `$ORIGIN ${zone}.`, `@ 5 IN SOA ns.dns.${zone}. hostmaster.${zone}. 1 7200 1800 86400 5`, `@ 5 IN NS ns.dns.${zone}.`, `ns.dns 5 IN A 127.0.70.2`,
  ];
  fs.writeFileSync(path.join(dir, 'cluster.local.zone'), [...soa('cluster.local'), ...zoneRecords(list)].join('\n') + '\n');
  const ext = Array.from({ length: EXTERNAL_NAMES }, (_, i) => `host-${i} 3600 IN A 198.51.${(i >> 8) & 255}.${i & 255}`);
  fs.writeFileSync(path.join(dir, 'ext.bench.zone'), [...soa('ext.bench'), ...ext].join('\n') + '\n');
  const knot = (name: string, addr: string, zone: string) => `server:
    listen: ${addr}@${PORT}
    rundir: ${dir}/${name}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: ${dir}/${name}
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: ${dir}
    semantic-checks: off
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: ${zone}
    file: ${dir}/${zone}.zone
`;
  for (const sub of ['knot', 'upstream']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.writeFileSync(path.join(dir, 'knot.conf'), knot('knot', ADDR.knot, 'cluster.local'));
  fs.writeFileSync(path.join(dir, 'upstream.conf'), knot('upstream', ADDR.upstream, 'ext.bench'));
  fs.writeFileSync(path.join(dir, 'unbound.conf'), `server:
  interface: ${ADDR.unbound}@${PORT}
  port: ${PORT}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  qname-minimisation: no
  do-not-query-localhost: no
  msg-cache-size: 32m
  rrset-cache-size: 64m
  prefetch: yes
forward-zone:
  name: "."
  forward-addr: ${ADDR.upstream}@${PORT}
`);
  const cluster = list.map((s) => `${s.name}.${s.ns}.svc.cluster.local A`);
  fs.writeFileSync(path.join(dir, 'q-cluster.txt'), cluster.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'q-external.txt'), Array.from({ length: EXTERNAL_NAMES }, (_, i) => `host-${i}.ext.bench A`).join('\n') + '\n');
}

main();
