/**
 * keelson's RSS idle in standalone mode with one static pod, beside a bare Node.js process's RSS
 * measured in the same run on the same runtime. Target (issue 2): keelson ≤ 80 MB.
 *
 * Run: bench/standalone/run.sh  (root; starts a private containerd in its own network namespace)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd } from '../../test/harness/containerd';
import { BUSYBOX_IMAGE } from '../../test/harness/images';
import { keelsonStatus, startKeelson, waitFor, NODE } from '../../test/harness/keelson';

const IDLE_MS = Number(process.env.KEELSON_BENCH_IDLE_MS ?? 30_000);
const SAMPLES = 10;

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** The keelson node process under nsenter: nsenter execs nothing, so find its child. */
function childPid(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children[0] ?? pid;
}

async function sample(pid: number): Promise<{ min: number; max: number; last: number }> {
  const values: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    values.push(rssKiB(pid));
    await new Promise((r) => setTimeout(r, 500));
  }
  return { min: Math.min(...values), max: Math.max(...values), last: values[values.length - 1] };
}

const mb = (kib: number) => (kib / 1024).toFixed(1);

async function main(): Promise<void> {
  const node = await startContainerd({ podSubnet: '10.88.9.0/24' });
  const dir = mkdtempSync(join(tmpdir(), 'keelson-bench-rss-'));
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(
    join(manifests, 'demo.yaml'),
    `apiVersion: v1\nkind: Pod\nmetadata: {name: demo, namespace: default}\nspec:\n  containers:\n    - name: web\n      image: ${BUSYBOX_IMAGE}\n      command: ["sh", "-c", "exec httpd -f -p 8080"]\n`,
  );
  const rootDir = join(dir, 'root');
  const keelson = startKeelson(
    ['run', '--root-dir', rootDir, '--pod-manifest-path', manifests, '--pod-logs-dir', join(dir, 'pods'), '--container-runtime-endpoint', node.endpoint, '--log-level', 'warn'],
    { netns: node.netns },
  );
  const bare = spawn(NODE, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  try {
    await waitFor('demo pod Running', async () => {
      const { state } = await keelsonStatus(rootDir);
      return state?.pods?.some((p: any) => p.phase === 'Running') ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const keelsonPid = childPid(keelson.child.pid!);
    const [k, b] = await Promise.all([sample(keelsonPid), sample(bare.pid!)]);
    console.log(`runtime: node ${process.version} ${process.arch}; idle ${IDLE_MS / 1000} s after the pod was Running; ${SAMPLES} samples each`);
    console.log('process                               RSS min   RSS max   RSS last (MB)');
    console.log(`keelson run (standalone, 1 pod)      ${mb(k.min).padStart(7)}   ${mb(k.max).padStart(7)}   ${mb(k.last).padStart(7)}`);
    console.log(`bare node -e setInterval             ${mb(b.min).padStart(7)}   ${mb(b.max).padStart(7)}   ${mb(b.last).padStart(7)}`);
    console.log(`keelson over bare node: ${mb(k.max - b.max)} MB; target keelson <= 80 MB: ${k.max / 1024 <= 80 ? 'met' : 'NOT met'}`);
  } finally {
    bare.kill();
    await keelson.stop();
    await node.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
