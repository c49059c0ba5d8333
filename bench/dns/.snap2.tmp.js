const v8 = require('v8'); const fs = require('fs');
const { benchServices, toObjects } = require('/work/main/dist/bench/dns/objects');
const { createZoneIndex } = require('/work/main/dist/dns/records');
const o = toObjects(benchServices(5000));
function summarize(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const m = snap.snapshot.meta; const nf = m.node_fields.length; const types = m.node_types[0];
  const iType = m.node_fields.indexOf('type'), iName = m.node_fields.indexOf('name'), iSize = m.node_fields.indexOf('self_size');
  const agg = new Map();
  for (let i = 0; i < snap.nodes.length; i += nf) {
    const t = types[snap.nodes[i + iType]]; let name = snap.strings[snap.nodes[i + iName]];
    if (t.includes('string')) name = t;
    const k = `${t}:${name.slice(0, 40)}`; const a = agg.get(k) ?? [0, 0]; a[0]++; a[1] += snap.nodes[i + iSize]; agg.set(k, a);
  }
  return agg;
}
global.gc();
const before = summarize(v8.writeHeapSnapshot('/tmp/kp/a.heapsnapshot'));
const idx = createZoneIndex('cluster.local');
for (const s of o.services) idx.upsertService(s);
for (const s of o.slices) idx.upsertSlice(s);
global.gc();
const after = summarize(v8.writeHeapSnapshot('/tmp/kp/b.heapsnapshot'));
const diff = [];
for (const [k, [n, s]] of after) { const [n0, s0] = before.get(k) ?? [0, 0]; if (s - s0 > 20000) diff.push([k, n - n0, s - s0]); }
diff.sort((a, b) => b[2] - a[2]);
for (const [k, n, s] of diff) console.log((s / 1048576).toFixed(2).padStart(6), 'MB', String(n).padStart(7), k);
global.keep = [o, idx];
