/**
 * netproxy benchmark, nftables mode (run by bench/netproxy/run.sh inside a bench network namespace).
 * For each size: keelson's proxy component in its own process (bench/netproxy/keelson.ts), then, in
 * the same run and namespace, `nft -f` alone loading kube-proxy's rule structure for the same
 * Services (bench/netproxy/kubeproxy-structure.ts) and one endpoint change in that structure.
 * Usage: bench.js [SIZES=1000,10000] [ENDPOINTS=10] [KUBEPROXY_TIMEOUT_S=400]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GEN_NODE_IP, GEN_POD_CIDR, generate } from './generate';
import { kubeProxyEndpointChange, kubeProxyRuleset, KP_TABLE } from './kubeproxy-structure';

const SIZES = (process.argv[2] ?? '1000,10000').split(',').map(Number);
const E = Number(process.argv[3] ?? 10);
const KP_TIMEOUT_MS = Number(process.argv[4] ?? 400) * 1000;
const KP_CHANGES = 5;
/** The V8 flags keelson runs with (scripts/node-flags; --expose-gc lets a full sync release its garbage). */
const NODE_FLAGS = readFileSync(join(__dirname, '..', '..', '..', 'scripts', 'node-flags'), 'utf8').split(/\s+/).filter(Boolean);

interface Timed {
  ms: number;
  code: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

function runTimed(argv: string[], timeoutMs: number, input?: string): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, code, timedOut, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const max = (xs: number[]) => Math.max(...xs);
const fmtMs = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

interface KeelsonResult {
  fullSyncMs: number;
  fullNftMs: number;
  fullBytes: number;
  resyncMs: number;
  changeMs: number[];
  changeNftMs: number[];
  verified: number;
  changes: number;
  rssMB: number;
  hwmMB: number;
}

async function keelson(n: number): Promise<KeelsonResult> {
  const r = await runTimed([process.execPath, ...NODE_FLAGS, join(__dirname, 'keelson.js'), String(n), String(E)], 30 * 60_000);
  if (r.code !== 0) throw new Error(`keelson bench process failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as KeelsonResult;
}

interface KubeProxyResult {
  loadMs?: number;
  timedOut: boolean;
  error?: string;
  chains: number;
  rules: number;
  bytes: number;
  changeMs: number[];
  deleteMs?: number;
}

async function kubeProxy(n: number, dir: string): Promise<KubeProxyResult> {
  const gen = generate(n, E, 'nodeport');
  const rs = kubeProxyRuleset(gen.services, gen.slices, GEN_POD_CIDR, GEN_NODE_IP);
  const file = join(dir, `kube-proxy-${n}.nft`);
  writeFileSync(file, rs.text);
  const out: KubeProxyResult = { timedOut: false, chains: rs.chains, rules: rs.rules, bytes: rs.text.length, changeMs: [] };
  const load = await runTimed(['nft', '-f', file], KP_TIMEOUT_MS);
  if (load.timedOut) {
    out.timedOut = true;
    out.loadMs = load.ms;
  } else if (load.code !== 0) {
    out.error = load.stderr.split('\n').slice(0, 3).join(' ');
  } else {
    out.loadMs = load.ms;
    for (let k = 0; k < KP_CHANGES; k++) {
      const i = Math.floor((k + 0.5) * (n / KP_CHANGES));
      const before = gen.slices[i]!;
      const after = structuredClone(before);
      after.endpoints![0]!.addresses = [`10.251.0.${k + 1}`];
      const tx = kubeProxyEndpointChange(gen.services[i]!, before, after, GEN_POD_CIDR);
      const r = await runTimed(['nft', '-f', '-'], KP_TIMEOUT_MS, tx);
      if (r.code !== 0) {
        out.error = `change: ${r.stderr.split('\n')[0]}`;
        break;
      }
      out.changeMs.push(r.ms);
      gen.slices[i] = after;
    }
  }
  const del = await runTimed(['nft', 'delete', 'table', ...KP_TABLE.split(' ')], KP_TIMEOUT_MS);
  if (del.code === 0) out.deleteMs = del.ms;
  return out;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root, inside the bench namespace (bench/netproxy/run.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'keelson-netproxy-bench-'));
  const rows: string[][] = [];
  const head = ['services×endpoints', 'keelson full sync', '(nft -f part)', 'keelson resync', 'keelson 1 change (median/max)', 'verified', 'keelson RSS (HWM)', 'kube-proxy structure nft -f', 'kube-proxy 1 change nft -f (median/max)', 'full ×', 'change ×'];
  try {
    for (const n of SIZES) {
      console.error(`# ${n} services × ${E} endpoints: keelson…`);
      const k = await keelson(n);
      console.error(`#   ${JSON.stringify(k)}`);
      console.error(`# ${n} services × ${E} endpoints: kube-proxy structure (timeout ${KP_TIMEOUT_MS / 1000} s)…`);
      const p = await kubeProxy(n, dir);
      console.error(`#   ${JSON.stringify(p)}`);
      const kpFull = p.timedOut ? `timeout > ${fmtMs(p.loadMs!)}` : p.error ? `error: ${p.error}` : fmtMs(p.loadMs!);
      const kpChange = p.changeMs.length ? `${fmtMs(median(p.changeMs))} / ${fmtMs(max(p.changeMs))}` : 'n/a';
      const fullX = p.loadMs !== undefined ? `${p.timedOut ? '>' : ''}${(p.loadMs / k.fullSyncMs).toFixed(1)}×` : 'n/a';
      const changeX = p.changeMs.length ? `${(median(p.changeMs) / median(k.changeMs)).toFixed(1)}×` : 'n/a';
      rows.push([
        `${n}×${E}`,
        fmtMs(k.fullSyncMs),
        fmtMs(k.fullNftMs),
        fmtMs(k.resyncMs),
        `${fmtMs(median(k.changeMs))} / ${fmtMs(max(k.changeMs))}`,
        `${k.verified}/${k.changes}`,
        `${k.rssMB} MB (${k.hwmMB} MB)`,
        `${kpFull} (${p.chains} chains)`,
        kpChange,
        fullX,
        changeX,
      ]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
