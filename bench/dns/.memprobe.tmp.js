// usage: node memprobe.js MODE   (bare | feed | dns)
const v8 = require('v8');
const mode = process.argv[2];
const path = '/work/main/dist/';
(async () => {
  let keep;
  if (mode !== 'bare') {
    const { benchServices, toObjects } = require(path + 'bench/dns/objects');
    const { services, slices } = toObjects(benchServices(Number(process.env.N ?? 5000)));
    keep = { services, slices };
    if (mode === 'dns') {
      const pino = require('pino');
      const { createDnsComponent } = require(path + 'dns/component');
      const { DNS_DEFAULTS } = require(path + 'dns/config');
      const { createMemoryFeed } = require(path + 'test/harness/feed');
      const dns = createDnsComponent({ input: { services: createMemoryFeed(services), endpointSlices: createMemoryFeed(slices) },
        config: { ...DNS_DEFAULTS, listen: ['127.0.70.9'], port: 5399, forward: false, upstreams: [], manageAddress: false, healthPort: 0, readyPort: 0, metricsPort: 0, pods: 'disabled' },
        logger: pino({ level: 'warn' }) });
      await dns.start();
      keep.dns = dns;
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  global.gc && gc();
  await new Promise((r) => setTimeout(r, 300));
  const m = process.memoryUsage();
  const h = v8.getHeapStatistics();
  const mb = (x) => (x / 1048576).toFixed(1);
  console.log(mode, 'rss', mb(m.rss), 'heapUsed', mb(m.heapUsed), 'heapTotal', mb(m.heapTotal), 'external', mb(m.external), 'ab', mb(m.arrayBuffers), 'v8 physical', mb(h.total_physical_size));
  if (process.argv[3] === 'spaces') for (const s of v8.getHeapSpaceStatistics()) console.log('  ', s.space_name, mb(s.space_used_size), mb(s.physical_space_size));
  process.exit(0);
})();
process.on('exit', () => { const s = require('fs').readFileSync('/proc/self/status','utf8'); console.log(s.split('\n').filter(l => /RssAnon|RssFile|VmRSS/.test(l)).join(' ').replace(/\s+/g,' ')); });
