/**
 * One process running keelson's proxy component (nftables mode) with N generated NodePort
 * Services × E endpoints, fed through the component's input feed, in the current network
 * namespace (bench/netproxy/run.sh puts it in a bench namespace). Prints one JSON line:
 *   fullSyncMs      start() → flush() resolved: desired-state build + render + `nft -f`
 *   fullNftMs       the `nft -f` part of it (the transaction is streamed: this includes rendering it)
 *   resyncMs        a forced full sync over the loaded table (hourly, or after a failure or drift)
 *   checkMs[]       the `nft list set` of each periodic consistency sync (syncPeriod, 4 s here)
 *   changeMs[]      one EndpointSlice update → flush() resolved (rules live), per change
 *   changeNftMs[]   the `nft -f` part of each
 *   verified        every change was then seen with one `nft get element`
 *   rssMB, hwmMB    VmRSS / VmHWM of this process after the syncs; heapMB: V8 heap in use,
 *                   heapTotalMB: V8 heap committed, anonMB: anonymous resident memory,
 *                   rssInputMB: VmRSS with only the generated objects loaded (the informer caches);
 *                   run with scripts/node-flags (--expose-gc lets a full sync release its garbage);
 *   hwmFirstMB, hwmResyncMB: VmHWM right after the first full sync and after the forced one
 * Usage: keelson.js SERVICES [ENDPOINTS=10] [CHANGES=15]
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createMemoryFeed } from '../../test/harness/feed';
import { defaultProxyConfig } from '../../netproxy/config';
import { createCommandRunner, type CommandRunner } from '../../netproxy/exec';
import { cleanup, createProxyComponent } from '../../netproxy/index';
import { scheduleMemoryRelease } from '../../agent/memory';
import { GEN_NODE, GEN_NODE_IP, GEN_POD_CIDR, clusterIPOf, generate } from './generate';

const N = Number(process.argv[2] ?? 1000);
const E = Number(process.argv[3] ?? 10);
const CHANGES = Number(process.argv[4] ?? 15);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Short, so that the bench sees the periodic consistency sync (30 s in production). */
const SYNC_PERIOD_MS = 4000;
let checkMs: number[] = [];

function statusMB(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

function rollupMB(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

async function main() {
  const base = createCommandRunner();
  let nftCalls: { ms: number; bytes: number }[] = [];
  const exec: CommandRunner = async (argv, options) => {
    const t0 = performance.now();
    let bytes = options?.input?.length ?? 0;
    const chunks = options?.inputChunks;
    const counted = chunks ? { inputChunks: (function* () { for (const c of chunks) { bytes += c.length; yield c; } })() } : {};
    const res = await base(argv, { ...options, ...counted });
    if (argv.join(' ').startsWith('nft list set ')) checkMs.push(performance.now() - t0);
    else if (argv[0] === 'nft' && argv.includes('-f')) nftCalls.push({ ms: performance.now() - t0, bytes });
    return res;
  };
  const gen = generate(N, E, 'nodeport');
  const feeds = { services: createMemoryFeed<Service>(gen.services), endpointSlices: createMemoryFeed<EndpointSlice>(gen.slices) };
  gen.services.length = 0; // the feed holds them now, as an informer cache would
  const proxy = createProxyComponent({
    input: feeds,
    config: { ...structuredClone(defaultProxyConfig), mode: 'nftables', clusterCIDR: [GEN_POD_CIDR], syncPeriodMs: SYNC_PERIOD_MS, healthzBindAddress: '', metricsBindAddress: '' },
    logger: pino({ level: 'warn' }),
    nodeName: GEN_NODE,
    nodeIPs: [GEN_NODE_IP],
    exec,
    afterFullSync: () => scheduleMemoryRelease('proxy full sync'),
  });

  const rssInputMB = statusMB('VmRSS');
  const t0 = performance.now();
  await proxy.start();
  await proxy.flush();
  const fullSyncMs = performance.now() - t0;
  const health = proxy.health();
  if (!health.healthy || nftCalls.length === 0) throw new Error(`the first full sync did not succeed: ${health.message ?? ''}`);
  const fullNftMs = nftCalls.reduce((a, c) => a + c.ms, 0);
  const fullBytes = nftCalls.reduce((a, c) => a + c.bytes, 0);
  const hwmFirstMB = statusMB('VmHWM');
  // A full rewrite over the loaded table (what the runner does hourly, after a failure or drift).
  await sleep(1100);
  await proxy.flush();
  nftCalls = [];
  const r0 = performance.now();
  await proxy.flush({ full: true });
  const resyncMs = performance.now() - r0;
  const hwmResyncMB = statusMB('VmHWM');
  // The syncPeriod resync in between: a consistency check (one `nft list set`) plus a partial sync.
  checkMs = [];
  await sleep(SYNC_PERIOD_MS + 500);
  await proxy.flush();

  const changeMs: number[] = [];
  const changeNftMs: number[] = [];
  let verified = 0;
  for (let k = 0; k < CHANGES; k++) {
    const i = Math.floor((k + 0.5) * (N / CHANGES));
    const old = feeds.endpointSlices.list().find((s) => s.metadata!.name === `svc-${i}-a`)!;
    const newIP = `10.250.${(k >> 8) & 255}.${(k & 255) + 1}`;
    const next: EndpointSlice = structuredClone(old);
    next.endpoints![0]!.addresses = [newIP];
    next.metadata!.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': new Date().toISOString() };
    nftCalls = [];
    const c0 = performance.now();
    feeds.endpointSlices.upsert(next);
    await proxy.flush();
    changeMs.push(performance.now() - c0);
    changeNftMs.push(nftCalls.reduce((a, c) => a + c.ms, 0));
    const keys = Array.from({ length: E }, (_, j) => `${clusterIPOf(i)} . tcp . 80 . ${j}`).join(', ');
    const got = await base(['nft', 'get', 'element', 'ip', 'keelson-proxy', 'endpoints-tcp', `{ ${keys} }`]);
    if (got.code === 0 && got.stdout.includes(`${newIP} . 8080`)) verified++;
    await sleep(1100); // past minSyncPeriod, so the runner's own follow-up run is done too
  }
  const rssMB = statusMB('VmRSS');
  const usage = process.memoryUsage();
  const heapMB = Math.round(usage.heapUsed / 1048576);
  const heapTotalMB = Math.round(usage.heapTotal / 1048576);
  const externalMB = Math.round(usage.external / 1048576);
  const anonMB = rollupMB('Anonymous');
  const hwmMB = statusMB('VmHWM');
  await proxy.stop();
  const c0 = performance.now();
  await cleanup('nftables', { logger: pino({ level: 'warn' }) });
  const cleanupMs = performance.now() - c0;
  console.log(JSON.stringify({ services: N, endpoints: E, fullSyncMs, fullNftMs, fullBytes, resyncMs, checkMs, changeMs, changeNftMs, verified, changes: CHANGES, rssMB, hwmMB, hwmFirstMB, hwmResyncMB, heapMB, heapTotalMB, rssInputMB, externalMB, anonMB, cleanupMs }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
