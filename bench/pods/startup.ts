/**
 * Pod startup latency in cluster mode, and keelson's RSS with 100 running pods (issue 4).
 *
 * One run, one private containerd, one test apiserver, `keelson run --components kubelet` (the real
 * CLI, cluster mode, admin credentials):
 *  1. direct CRI: 30 pods at once, each RunPodSandbox + CreateContainer + StartContainer with the
 *     configs keelson would send (runtime-config.ts); latency = start → StartContainer returned.
 *  2. keelson: 30 pods bound to the node created at once in the apiserver; latency = creation →
 *     the apiserver holds phase Running with every container ready (so it includes the watch,
 *     admission, the CRI work, the status patch).
 *  3. 70 more pods (100 in all), every one Running, then keelson's VmRSS sampled.
 * The image is present (imported) and pull policy IfNotPresent. Targets: p99 ≤ 2 s, keelson p50/p99
 * ≤ 1.15 × direct CRI, RSS ≤ 110 MB.
 *
 * Run: bench/pods/run.sh  (root)
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import { createCriClient } from '../../cri/client';
import { createCriRuntime } from '../../agent/pods/cri-runtime';
import { makeContainerConfig, makeSandboxConfig } from '../../agent/pods/runtime-config';
import { startTestApiserver } from '../../test/harness/apiserver';
import { startContainerd } from '../../test/harness/containerd';
import { BUSYBOX_IMAGE } from '../../test/harness/images';
import { startKeelson, waitFor } from '../../test/harness/keelson';

const BATCH = Number(process.env.KEELSON_BENCH_BATCH ?? 30);
const TOTAL = Number(process.env.KEELSON_BENCH_TOTAL ?? 100);
const NODE_NAME = 'bench-node';

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

function apiPod(i: number, prefix: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${prefix}-${i}`, namespace: 'default', uid: `bench-${prefix}-${i}-${process.pid}` },
    spec: {
      nodeName: NODE_NAME,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'app', image: BUSYBOX_IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sleep', '36000'] }],
    },
  };
}

async function main(): Promise<void> {
  const node = await startContainerd({ podSubnet: '10.88.64.0/22' });
  const api = await startTestApiserver();
  const dir = mkdtempSync(join(tmpdir(), 'keelson-bench-pods-'));
  const cri = createCriClient({ endpoint: node.endpoint });
  const runtime = createCriRuntime(cri);
  let keelson: ReturnType<typeof startKeelson> | undefined;
  try {
    // 1. direct CRI
    const podLogsDir = node.podLogDir;
    const direct = async (pod: Pod) => {
      const t0 = performance.now();
      const sbConfig = makeSandboxConfig(pod, 0, { podLogsDir });
      const sandboxId = await runtime.runPodSandbox(sbConfig);
      const ip = (await runtime.podSandboxStatus(sandboxId)).ip;
      const config = makeContainerConfig(pod, pod.spec!.containers[0], 0, { podIP: ip, hostIP: '' });
      const id = await runtime.createContainer(sandboxId, config, sbConfig);
      await runtime.startContainer(id);
      return performance.now() - t0;
    };
    await direct(apiPod(0, 'warmup'));
    const directStart = performance.now();
    const directLatencies = await Promise.all(Array.from({ length: BATCH }, (_, i) => direct(apiPod(i, 'cri'))));
    const directWall = performance.now() - directStart;
    // remove them, so both runs start from the same runtime state
    for (const sb of await runtime.listPodSandboxes({})) {
      await cri.stopPodSandbox({ pod_sandbox_id: sb.id });
      await cri.removePodSandbox({ pod_sandbox_id: sb.id });
    }

    // 2. keelson
    const config = join(dir, 'config.yaml');
    mkdirSync(join(dir, 'manifests'));
    writeFileSync(config, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 0\nstaticPodPath: ${join(dir, 'manifests')}\n`);
    keelson = startKeelson([
      'run', '--config', config, '--kubeconfig', api.kubeconfigPath, '--root-dir', join(dir, 'root'), '--components', 'kubelet',
      '--hostname-override', NODE_NAME, '--container-runtime-endpoint', node.endpoint, '--pod-logs-dir', join(dir, 'logs'), '--log-level', 'warn',
    ]);
    await keelson.waitForLine(/keelson running/, 30_000).catch(() => undefined);
    await waitFor('Node registered', async () => api.store.get('Node', undefined, NODE_NAME), 30_000, 100);
    // a warm-up pod through keelson too
    api.store.create({ ...apiPod(0, 'kwarm'), metadata: { name: 'kwarm-0', namespace: 'default' } } as never);
    await waitFor('warm-up pod Running', async () => (api.store.get('Pod', 'default', 'kwarm-0')?.status?.phase === 'Running' ? true : undefined), 30_000, 20);

    const created = new Map<string, number>();
    const done = new Map<string, number>();
    const keelsonStart = performance.now();
    for (let i = 0; i < BATCH; i++) {
      const name = `k-${i}`;
      created.set(name, performance.now());
      api.store.create({ ...apiPod(i, 'k'), metadata: { name, namespace: 'default' } } as never);
    }
    await waitFor('batch Running', async () => {
      for (const name of created.keys()) {
        if (done.has(name)) continue;
        const p = api.store.get('Pod', 'default', name);
        if (p?.status?.phase === 'Running' && (p.status.containerStatuses ?? []).every((c: { ready: boolean }) => c.ready)) done.set(name, performance.now());
      }
      return done.size === created.size ? true : undefined;
    }, 120_000, 5);
    const keelsonWall = performance.now() - keelsonStart;
    const keelsonLatencies = [...created].map(([name, t0]) => done.get(name)! - t0);

    // 3. up to TOTAL running pods, then RSS
    for (let i = BATCH; i < TOTAL - 1; i++) api.store.create({ ...apiPod(i, 'k'), metadata: { name: `k-${i}`, namespace: 'default' } } as never);
    await waitFor(`${TOTAL} pods Running`, async () => {
      const running = api.store.list('Pod', 'default').filter((p) => p.status?.phase === 'Running').length;
      return running >= TOTAL ? true : undefined;
    }, 300_000, 500);
    await new Promise((r) => setTimeout(r, 10_000));
    const pid = keelson.child.pid!;
    const rss: number[] = [];
    for (let i = 0; i < 10; i++) {
      rss.push(rssKiB(pid));
      await new Promise((r) => setTimeout(r, 500));
    }
    const patches = api.requestLog().filter((r) => r.method === 'PATCH' && r.path.endsWith('/status') && r.path.includes('/pods/')).length;

    const d = summary(directLatencies);
    const k = summary(keelsonLatencies);
    const ms = (v: number) => `${v.toFixed(0)} ms`.padStart(8);
    console.log(`runtime: node ${process.version} ${process.arch}; ${BATCH} pods at once, image present; containerd ${node.snapshotter}`);
    console.log('                                   p50       p99       max   batch wall');
    console.log(`direct CRI (sandbox+create+start) ${ms(d.p50)}  ${ms(d.p99)}  ${ms(d.max)}  ${ms(directWall)}`);
    console.log(`keelson (bound → Running in API)  ${ms(k.p50)}  ${ms(k.p99)}  ${ms(k.max)}  ${ms(keelsonWall)}`);
    console.log(`keelson overhead: p50 ${((k.p50 / d.p50 - 1) * 100).toFixed(0)} %, p99 ${((k.p99 / d.p99 - 1) * 100).toFixed(0)} % (target ≤ 15 %); p99 target ≤ 2000 ms: ${k.p99 <= 2000 ? 'met' : 'NOT met'}`);
    console.log(`keelson RSS with ${TOTAL} running pods: min ${(Math.min(...rss) / 1024).toFixed(1)} MB, max ${(Math.max(...rss) / 1024).toFixed(1)} MB (target ≤ 110 MB: ${Math.max(...rss) / 1024 <= 110 ? 'met' : 'NOT met'}); pods/status patches in the run: ${patches}`);
  } finally {
    await keelson?.stop();
    cri.close();
    await node.stop();
    await api.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
