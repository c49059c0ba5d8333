// Writes a heap snapshot of the DNS-only bench process at N services and summarizes self sizes by type/name.
const v8 = require('v8'); const fs = require('fs');
(async () => {
  const { benchServices, toObjects } = require('/work/main/dist/bench/dns/objects');
  const { services, slices } = toObjects(benchServices(Number(process.env.N ?? 5000)));
  const pino = require('pino');
  const { createDnsComponent } = require('/work/main/dist/dns/component');
  const { DNS_DEFAULTS } = require('/work/main/dist/dns/config');
  const { createMemoryFeed } = require('/work/main/dist/test/harness/feed');
  const dns = createDnsComponent({ input: { services: createMemoryFeed(services), endpointSlices: createMemoryFeed(slices) },
    config: { ...DNS_DEFAULTS, listen: ['127.0.70.9'], port: 5399, forward: false, upstreams: [], manageAddress: false, healthPort: 0, readyPort: 0, metricsPort: 0, pods: 'disabled' }, logger: pino({ level: 'warn' }) });
  await dns.start();
  global.keep = dns;
  const file = v8.writeHeapSnapshot('/tmp/kp/dns.heapsnapshot');
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const m = snap.snapshot.meta; const nf = m.node_fields.length; const types = m.node_types[0];
  const iType = m.node_fields.indexOf('type'), iName = m.node_fields.indexOf('name'), iSize = m.node_fields.indexOf('self_size');
  const agg = new Map();
  for (let i = 0; i < snap.nodes.length; i += nf) {
    const t = types[snap.nodes[i + iType]]; let name = snap.strings[snap.nodes[i + iName]];
    if (t === 'string' || t === 'concatenated string' || t === 'sliced string') name = t;
    const k = `${t}:${name.slice(0, 60)}`; const a = agg.get(k) ?? [0, 0]; a[0]++; a[1] += snap.nodes[i + iSize]; agg.set(k, a);
  }
  const top = [...agg].sort((a, b) => b[1][1] - a[1][1]).slice(0, 30);
  for (const [k, [n, s]] of top) console.log((s / 1048576).toFixed(2).padStart(7), 'MB', String(n).padStart(8), k);
  process.exit(0);
})();
