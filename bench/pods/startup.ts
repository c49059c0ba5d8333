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
 * With KEELSON_BENCH_PROFILE=1 keelson logs at debug level and the batch is broken down per pod into
 * phases from its log: created in the API → worker started → sandbox created → container started →
 * status Running patched → seen Running by the bench (p50/p99 of each step).
 *
 * Run: bench/pods/run.sh  (root)
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
const PROFILE = process.env.KEELSON_BENCH_PROFILE === '1';

/** Per pod, the wall-clock time (ms) of each step keelson logs about it. */
function phasesFromLog(output: string): Map<string, Record<string, number>> {
  const steps: Record<string, string> = {
    'pod worker started': 'worker',
    'created pod sandbox': 'sandbox',
    'started container': 'started',
  };
  const byPod = new Map<string, Record<string, number>>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    let l: { msg?: string; pod?: string; time?: number; phase?: string };
    try {
      l = JSON.parse(line);
    } catch {
      continue;
    }
    if (!l.pod || typeof l.time !== 'number' || !l.msg) continue;
    const step = l.msg === 'pod status patched' && l.phase === 'Running' ? 'patched' : steps[l.msg];
    if (!step) continue;
    let e = byPod.get(l.pod);
    if (!e) byPod.set(l.pod, (e = {}));
    e[step] ??= l.time;
  }
  return byPod;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** CPU time (user + system, ms) the process has used. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
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
    const directSandbox: number[] = [];
    const directStartContainer: number[] = [];
    const direct = async (pod: Pod) => {
      const t0 = performance.now();
      const sbConfig = makeSandboxConfig(pod, 0, { podLogsDir });
      const sandboxId = await runtime.runPodSandbox(sbConfig);
      const ip = (await runtime.podSandboxStatus(sandboxId)).ip;
      const t1 = performance.now();
      const config = makeContainerConfig(pod, pod.spec!.containers[0], 0, { podIP: ip, hostIP: '' });
      const id = await runtime.createContainer(sandboxId, config, sbConfig);
      await runtime.startContainer(id);
      const t2 = performance.now();
      directSandbox.push(t1 - t0);
      directStartContainer.push(t2 - t1);
      return t2 - t0;
    };
    await direct(apiPod(0, 'warmup'));
    const directStart = performance.now();
    const directLatencies = await Promise.all(Array.from({ length: BATCH }, (_, i) => direct(apiPod(i, 'cri'))));
    const directWall = performance.now() - directStart;
    const directPhases = { sandbox: summary(directSandbox.slice(1)), container: summary(directStartContainer.slice(1)) };
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
      '--hostname-override', NODE_NAME, '--container-runtime-endpoint', node.endpoint, '--pod-logs-dir', join(dir, 'logs'), '--log-level', PROFILE ? 'debug' : 'warn',
    ]);
    await keelson.waitForLine(/keelson running/, 30_000).catch(() => undefined);
    await waitFor('Node registered', async () => api.store.get('Node', undefined, NODE_NAME), 30_000, 100);
    // a warm-up pod through keelson too
    api.store.create({ ...apiPod(0, 'kwarm'), metadata: { name: 'kwarm-0', namespace: 'default' } } as never);
    await waitFor('warm-up pod Running', async () => (api.store.get('Pod', 'default', 'kwarm-0')?.status?.phase === 'Running' ? true : undefined), 30_000, 20);

    const created = new Map<string, number>();
    const done = new Map<string, number>();
    const createdWall = new Map<string, number>();
    const doneWall = new Map<string, number>();
    const keelsonStart = performance.now();
    const cpuBefore = cpuMs(keelson.child.pid!);
    for (let i = 0; i < BATCH; i++) {
      const name = `k-${i}`;
      created.set(name, performance.now());
      createdWall.set(name, Date.now());
      api.store.create({ ...apiPod(i, 'k'), metadata: { name, namespace: 'default' } } as never);
    }
    await waitFor('batch Running', async () => {
      for (const name of created.keys()) {
        if (done.has(name)) continue;
        const p = api.store.get('Pod', 'default', name);
        if (p?.status?.phase === 'Running' && (p.status.containerStatuses ?? []).every((c: { ready: boolean }) => c.ready)) {
          done.set(name, performance.now());
          doneWall.set(name, Date.now());
        }
      }
      return done.size === created.size ? true : undefined;
    }, 120_000, 5);
    const keelsonWall = performance.now() - keelsonStart;
    const keelsonCpu = cpuMs(keelson.child.pid!) - cpuBefore;
    const keelsonLatencies = [...created].map(([name, t0]) => done.get(name)! - t0);
    if (PROFILE) {
      const logged = phasesFromLog(keelson.output());
      const order = ['created', 'worker', 'sandbox', 'started', 'patched', 'seen'];
      const gaps = new Map<string, number[]>();
      for (const name of created.keys()) {
        const e = { created: createdWall.get(name)!, ...logged.get(`default/${name}`), seen: doneWall.get(name)! } as Record<string, number>;
        for (let i = 1; i < order.length; i++) {
          const [a, b] = [order[i - 1], order[i]];
          if (e[a] === undefined || e[b] === undefined) continue;
          const key = `${a} → ${b}`;
          if (!gaps.has(key)) gaps.set(key, []);
          gaps.get(key)!.push(e[b] - e[a]);
        }
      }
      console.log('direct CRI phases per pod (ms)       p50      p99      max');
      for (const [key, g] of [['RunPodSandbox + status', directPhases.sandbox], ['CreateContainer + Start', directPhases.container]] as const) {
        console.log(`  ${key.padEnd(32)} ${g.p50.toFixed(0).padStart(6)}   ${g.p99.toFixed(0).padStart(6)}   ${g.max.toFixed(0).padStart(6)}`);
      }
      console.log('keelson phases per pod (ms)          p50      p99      max');
      for (const [key, values] of gaps) {
        const g = summary(values);
        console.log(`  ${key.padEnd(32)} ${g.p50.toFixed(0).padStart(6)}   ${g.p99.toFixed(0).padStart(6)}   ${g.max.toFixed(0).padStart(6)}`);
      }
    }

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
    console.log(`keelson CPU during the batch: ${keelsonCpu.toFixed(0)} ms (${(keelsonCpu / BATCH).toFixed(0)} ms per pod); load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
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
