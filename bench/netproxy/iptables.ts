/**
 * netproxy iptables-mode benchmark (root; everything happens in network namespaces it creates).
 * For each iptables variant (nft, legacy), at N services × M endpoints (default 1 000 × 10,
 * every Service a TCP NodePort):
 *   keelson     full sync (start → rules in the kernel), one EndpointSlice change → rules in the
 *               kernel (median of several), RSS of this process after the full sync;
 *   kube-proxy  the bare `iptables-restore --noflush` of the same ruleset (keelson renders
 *               kube-proxy's chain structure, so this is what kube-proxy's full sync hands the
 *               kernel), and of what kube-proxy's partial sync writes for one change (every
 *               shared chain — KUBE-SERVICES, KUBE-NODEPORTS, filter chains — rewritten, plus the
 *               changed Service's chains).
 * Usage: node dist/bench/netproxy/iptables.js [--services N] [--endpoints M] [--changes K] [--variants nft,legacy]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import pino from 'pino';
import { defaultProxyConfig } from '../../netproxy/config';
import { createProxyState } from '../../netproxy/desiredstate';
import { createCommandRunner } from '../../netproxy/exec';
import { createProxyComponent } from '../../netproxy/index';
import { endpointChain } from '../../netproxy/iptables/chains';
import { createIptablesPlanner } from '../../netproxy/iptables/planner';
import { scheduleMemoryRelease } from '../../agent/memory';
import { createMemoryFeed } from '../../test/harness/feed';
import { GEN_NODE, GEN_NODE_IP, GEN_POD_CIDR, endpointIPOf, generate, sliceFor } from './generate';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const SERVICES = Number(arg('services', '1000'));
const ENDPOINTS = Number(arg('endpoints', '10'));
const CHANGES = Number(arg('changes', '5'));
const VARIANTS = arg('variants', 'nft,legacy').split(',') as ('nft' | 'legacy')[];
const config = { ...structuredClone(defaultProxyConfig), mode: 'iptables' as const, clusterCIDR: [GEN_POD_CIDR], minSyncPeriodMs: 0, healthzBindAddress: '', metricsBindAddress: '' };

/** Resident size of the process's brk heap (glibc malloc's main arena). */
function mallocHeapMB(): number {
  const smaps = readFileSync('/proc/self/smaps', 'utf8');
  const at = smaps.indexOf('[heap]');
  if (at < 0) return 0;
  const m = /\nRss:\s+(\d+) kB/.exec(smaps.slice(at));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function netns(tag: string): { name: string; run: (argv: string[], input?: string) => { ms: number; code: number; stderr: string; stdout: string } } {
  const name = `kb-ipt-${process.pid}-${tag}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    run(argv, input) {
      const t0 = performance.now();
      const r = spawnSync('nsenter', [`--net=/var/run/netns/${name}`, '--', ...argv], { input: input ?? '', maxBuffer: 1 << 30 });
      return { ms: performance.now() - t0, code: r.status ?? -1, stderr: r.stderr.toString(), stdout: r.stdout.toString() };
    },
  };
}
const created: string[] = [];
process.on('exit', () => {
  for (const n of created) spawnSync('ip', ['netns', 'delete', n]);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130)); // runs the cleanup above

/** The restore input keelson's planner renders for a full sync, and kube-proxy's partial sync for one changed Service. */
function kubeProxyTexts(services: Service[], slices: EndpointSlice[], changed: EndpointSlice) {
  const state = createProxyState({ nodeName: GEN_NODE, logger: pino({ level: 'silent' }) });
  for (const s of services) state.recordService(undefined, s);
  for (const s of slices) state.recordEndpointSlice(undefined, s);
  const first = state.build(true);
  const planner = createIptablesPlanner({ config, nodeIPs: [GEN_NODE_IP] });
  const full = planner.plan({ state: first.state, changed: first.changed, full: true }, [4]);
  full.commit();
  const fullText = full.families[0]!.text;
  state.recordEndpointSlice(slices[0], changed);
  const after = state.build();
  const key = [...after.changed][0]!;
  const again = createIptablesPlanner({ config, nodeIPs: [GEN_NODE_IP] }).plan({ state: after.state, changed: [], full: true }, [4]).families[0]!.text;
  // kube-proxy's partial sync: both tables' shared chains rewritten whole, plus the changed Service's chains.
  const ports = after.state.services.get(key)!;
  const owned = new Set<string>();
  for (const line of again.split('\n')) {
    const m = /^-A (KUBE-(?:SVC|SVL|EXT|FW)-\w+) /.exec(line);
    if (m && line.includes(`${key}`)) owned.add(m[1]!);
  }
  for (const sp of ports) for (const ep of [...sp.internal.endpoints, ...sp.external.endpoints]) owned.add(endpointChain(`${key}:${sp.portName}`, 'tcp', ep));
  for (const line of again.split('\n')) {
    const m = /^-A (KUBE-SVC-\w+) .*-j (KUBE-SEP-\w+)$/.exec(line);
    if (m && owned.has(m[2]!)) owned.add(m[1]!);
  }
  const removed = endpointChain(`${key}:p`, 'tcp', { ip: endpointIPOf(0, 0, ENDPOINTS), port: 8080 });
  const keep = (chain: string) => !/^KUBE-(SVC|SVL|EXT|FW|SEP)-/.test(chain) || owned.has(chain);
  const partial: string[] = [];
  let table = '';
  for (const line of again.split('\n')) {
    if (line.startsWith('*')) table = line;
    if (table === '*mangle') continue;
    const decl = /^:(\S+) /.exec(line);
    const rule = /^-[AI] (\S+) /.exec(line);
    if (decl && !keep(decl[1]!)) continue;
    if (rule && !keep(rule[1]!)) continue;
    if (/^-I (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) /.test(line)) continue;
    if (line === 'COMMIT' && table === '*nat') partial.push(`:${removed} - [0:0]`, `-X ${removed}`);
    partial.push(line);
  }
  return { fullText, partialText: partial.join('\n'), rules: full.rules };
}

async function benchVariant(variant: 'nft' | 'legacy', gen: { services: Service[]; slices: EndpointSlice[] }) {
  const out: Record<string, string | number> = { variant };
  const restore = `iptables-${variant}-restore`;
  const changedSlice = (gen: number) => sliceFor(0, ENDPOINTS, 'TCP', gen);

  // keelson's whole pipeline: feed → desired state → render → restore, in a namespace of its own.
  {
    const ns = netns(`${variant}-keelson`);
    created.push(ns.name);
    if (variant === 'legacy') ns.run(['iptables-legacy', '-N', 'KEELSON-BENCH-HOST-RULES']); // the host "uses" legacy
    const feeds = { services: createMemoryFeed<Service>(gen.services), endpointSlices: createMemoryFeed<EndpointSlice>(gen.slices) };
    const proxy = createProxyComponent({
      input: feeds,
      config,
      logger: pino({ level: 'warn' }),
      nodeName: GEN_NODE,
      nodeIPs: [GEN_NODE_IP],
      exec: createCommandRunner(['nsenter', `--net=/var/run/netns/${ns.name}`, '--']),
      afterFullSync: () => scheduleMemoryRelease('proxy full sync'),
    });
    const t0 = performance.now();
    await proxy.start();
    await proxy.flush();
    out.keelsonFull = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1500)); // the daemon's memory release runs 1 s after a full sync
    const usage = process.memoryUsage();
    out.rssMB = Math.round(usage.rss / 1e6);
    out.heapMB = Math.round(usage.heapUsed / 1e6);
    out.heapTotalMB = Math.round(usage.heapTotal / 1e6);
    out.externalMB = Math.round(usage.external / 1e6);
    out.mallocMB = mallocHeapMB();
    const used = ns.run([`iptables-${variant}-save`, '-t', 'nat']).stdout;
    if (!used.includes('KUBE-SVC-')) throw new Error(`keelson did not program the ${variant} variant`);
    const times: number[] = [];
    for (let g = 1; g <= CHANGES; g++) {
      const s = performance.now();
      feeds.endpointSlices.upsert(changedSlice(g));
      await proxy.flush();
      times.push(performance.now() - s);
    }
    const live = ns.run([`iptables-${variant}-save`, '-t', 'nat']).stdout;
    if (!live.includes(`--to-destination ${endpointIPOf(0, ENDPOINTS - 1 + CHANGES, ENDPOINTS)}:8080`)) throw new Error('the last change is not in the kernel');
    out.keelsonChange = median(times);
    out.keelsonChangeMax = Math.max(...times);
    await proxy.stop();
    spawnSync('ip', ['netns', 'delete', ns.name]);
    // At once: on the nft variant at 10 000 Services the bare restore below takes as long again.
    console.log(`  [${variant}] keelson full sync ${sec(Number(out.keelsonFull))}, one change live ${sec(Number(out.keelsonChange))} (median), RSS ${out.rssMB} MB`);
  }
  // kube-proxy's structure through the bare tool.
  const { fullText, partialText, rules } = kubeProxyTexts(gen.services, gen.slices, changedSlice(1));
  out.rules = rules;
  out.restoreBytes = fullText.length;
  {
    const ns = netns(`${variant}-bare`);
    created.push(ns.name);
    const full = ns.run([restore, '-w', '5', '--noflush'], fullText);
    if (full.code !== 0) throw new Error(`${restore} failed: ${full.stderr.slice(0, 500)}`);
    const partial = ns.run([restore, '-w', '5', '--noflush'], partialText);
    if (partial.code !== 0) throw new Error(`${restore} (partial) failed: ${partial.stderr.slice(0, 500)}`);
    out.bareFull = full.ms;
    out.barePartial = partial.ms;
    out.barePartialBytes = partialText.length;
    spawnSync('ip', ['netns', 'delete', ns.name]);
  }

  return out;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  const gen = generate(SERVICES, ENDPOINTS, 'nodeport');
  console.log(`netproxy iptables bench: ${SERVICES} services × ${ENDPOINTS} endpoints (TCP NodePort), ${CHANGES} single-EndpointSlice changes, ${execFileSync('iptables-nft', ['--version']).toString().trim()}`);
  for (const v of VARIANTS) {
    const r = await benchVariant(v, gen);
    console.log(`\n[${v}] ${r.rules} rules, restore input ${(Number(r.restoreBytes) / 1e6).toFixed(1)} MB`);
    console.log(`  keelson    full sync ${sec(Number(r.keelsonFull))}   one change live ${sec(Number(r.keelsonChange))} (median, max ${sec(Number(r.keelsonChangeMax))})   RSS ${r.rssMB} MB (V8 heap ${r.heapMB} MB used of ${r.heapTotalMB} MB, external ${r.externalMB} MB, malloc heap ${r.mallocMB} MB)`);
    console.log(`  kube-proxy structure, bare iptables-${v}-restore: full ${sec(Number(r.bareFull))}   partial sync for one change ${sec(Number(r.barePartial))} (${(Number(r.barePartialBytes) / 1e3).toFixed(0)} kB)`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
