const fs = require('fs');
const rss = () => (Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status','utf8'))[1])/1024).toFixed(1);
const steps = [];
const mark = (s) => { global.gc(); steps.push(`${s}=${rss()}`); };
(async () => {
mark('bare');
const pino = require('pino'); mark('pino');
const log = pino({ level: 'warn' }); mark('pino()');
const { createDnsComponent } = require('/work/main/dist/dns/component'); mark('dns-modules');
const { DNS_DEFAULTS } = require('/work/main/dist/dns/config');
const { createMemoryFeed } = require('/work/main/dist/test/harness/feed');
const dns = createDnsComponent({ input: { services: createMemoryFeed([]), endpointSlices: createMemoryFeed([]) },
  config: { ...DNS_DEFAULTS, listen: ['127.0.70.9'], port: 5399, forward: process.env.FWD === '1', upstreams: ['127.0.70.3:5300'], manageAddress: false, healthPort: 0, readyPort: 0, metricsPort: 0, pods: 'disabled' }, logger: log });
mark('created');
await dns.start(); mark('started');
await new Promise((r) => setTimeout(r, 500)); mark('idle');
console.log(steps.join(' '));
process.exit(0);
})();
