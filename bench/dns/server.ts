/**
 * A DNS-only keelson for the bench: the dns component started with N Services in a memory feed.
 * Usage: node dist/bench/dns/server.js --listen 127.0.70.1 --port 5300 --services 5000 [--upstream ip:port]
 * Prints one JSON line when ready; on SIGUSR2 prints {"rssMB":…} (VmRSS of /proc/self/status).
 */
import fs from 'node:fs';
import pino from 'pino';
import { createDnsComponent } from '../../dns/component';
import { DNS_DEFAULTS } from '../../dns/config';
import { createMemoryFeed } from '../../test/harness/feed';
import { benchServices, toObjects } from './objects';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : process.argv[i + 1]!;
}

function rssMB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : -1;
}

async function main(): Promise<void> {
  const n = Number(arg('services', '5000'));
  const upstream = arg('upstream', '');
  const { services, slices } = toObjects(benchServices(n));
  const dns = createDnsComponent({
    input: { services: createMemoryFeed(services), endpointSlices: createMemoryFeed(slices) },
    config: {
      ...DNS_DEFAULTS, listen: [arg('listen', '127.0.70.1')], port: Number(arg('port', '5300')),
      forward: upstream !== '', upstreams: upstream ? [upstream] : [], manageAddress: false,
      healthPort: 0, readyPort: 0, metricsPort: 0, pods: 'disabled',
    },
    logger: pino({ level: 'warn' }),
  });
  await dns.start();
  process.stdout.write(JSON.stringify({ ready: true, ...dns.index.stats(), rssMB: rssMB() }) + '\n');
  process.on('SIGUSR2', () => process.stdout.write(JSON.stringify({ rssMB: rssMB(), heapMB: Math.round(process.memoryUsage().heapUsed / 1e5) / 10 }) + '\n'));
  const stop = () => void dns.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
