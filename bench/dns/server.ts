/**
 * A DNS-only keelson for the bench: the dns component started with N Services in a memory feed.
 * Usage: node dist/bench/dns/server.js --listen 127.0.70.1 --port 5300 --services 5000 [--upstream ip:port]
 *        [--objects bench|served|slim]
 * Prints one JSON line when ready; on SIGUSR2 prints the memory figures again (see memory()) and the
 * GC pauses and event-loop delay since the previous SIGUSR2.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import pino from 'pino';
import { releaseMemory } from '../../agent/memory';
import { createDnsComponent } from '../../dns/component';
import { DNS_DEFAULTS } from '../../dns/config';
import { createMemoryFeed } from '../../test/harness/feed';
import { slimEndpointSlice, slimService } from '../../dns/transform';
import { asServed, benchServices, toObjects } from './objects';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : process.argv[i + 1]!;
}

/** VmRSS split into private (anon) and file-backed pages (the node binary's code, shared), and V8's heap. */
function memory(): Record<string, number> {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? -1);
  const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;
  const m = process.memoryUsage();
  return {
    rssMB: mb(kb('VmRSS') * 1024), anonMB: mb(kb('RssAnon') * 1024), fileMB: mb(kb('RssFile') * 1024),
    heapUsedMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external),
  };
}

/** GC pauses and event-loop delay since the last report: where tail latency comes from. */
function pauses(): () => Record<string, number> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let count = 0, total = 0, max = 0, major = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      count++;
      total += e.duration;
      max = Math.max(max, e.duration);
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind !== 1) major++; // 1: scavenge
    }
  }).observe({ entryTypes: ['gc'] });
  const ms = (x: number) => Math.round(x * 100) / 100;
  return () => {
    const out = { gcCount: count, gcNonScavenge: major, gcTotalMs: ms(total), gcMaxMs: ms(max), loopDelayP99Ms: ms(loop.percentile(99) / 1e6), loopDelayMaxMs: ms(loop.max / 1e6) };
    count = total = max = major = 0;
    loop.reset();
    return out;
  };
}

async function main(): Promise<void> {
  const report = pauses();
  const n = Number(arg('services', '5000'));
  const upstream = arg('upstream', '');
  // --objects bench: minimal objects; served: as an apiserver serves them; slim: served, then
  // through dns/transform.ts as a DNS-only informer cache would keep them.
  const shape = arg('objects', 'bench');
  let { services, slices } = toObjects(benchServices(n));
  if (shape === 'served') ({ services, slices } = asServed({ services, slices }));
  if (shape === 'slim') ({ services, slices } = asServed({ services, slices }, { service: slimService, slice: slimEndpointSlice }));
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
  releaseMemory('start-up'); // as the daemon does once the first sync is done
  process.stdout.write(JSON.stringify({ ready: true, ...dns.index.stats(), ...memory() }) + '\n');
  process.on('SIGUSR2', () => process.stdout.write(JSON.stringify({ ...memory(), ...report() }) + '\n'));
  const stop = () => void dns.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
