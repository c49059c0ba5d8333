/**
 * The Summary API over a fake CRI and a fake /proc: what the runtime reports is passed on, and a
 * running container the runtime has no cgroup stats for (CRI cpu and memory unset) still gets its
 * cpu and memory objects, with zero usage, as kubelet reports it.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import type { CriClient } from '../../cri/client';
import type * as T from '../../cri/types';
import { createStatsProvider } from '../../agent/server/stats';

const NOW = Date.parse('2026-01-02T03:04:05Z');
const nanos = (ms: number) => String(BigInt(ms) * 1_000_000n);
const u64 = (n: number): T.UInt64Value => ({ value: String(n) });

async function fakeProc(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-stats-proc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'sys/kernel'), { recursive: true });
  await writeFile(path.join(dir, 'stat'), 'cpu  100 0 50 1000 0 0 0 0 0 0\nbtime 1767000000\n');
  await writeFile(path.join(dir, 'meminfo'), 'MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 100 kB\nAnonPages: 200 kB\n');
  await writeFile(path.join(dir, 'sys/kernel/pid_max'), '4194304\n');
  await writeFile(path.join(dir, 'loadavg'), '0.1 0.2 0.3 2/345 999\n');
  return dir;
}

function container(id: string, name: string): T.Container {
  return {
    id, pod_sandbox_id: 'sb1', metadata: { name, attempt: 0 }, image: null, image_ref: '', state: 'CONTAINER_RUNNING', created_at: nanos(NOW - 5000),
    labels: {}, annotations: {}, image_id: '',
  } as T.Container;
}

function stats(id: string, name: string, withCgroup: boolean): T.ContainerStats {
  return {
    attributes: { id, metadata: { name, attempt: 0 }, labels: {}, annotations: {} },
    cpu: withCgroup ? { timestamp: nanos(NOW - 10), usage_core_nano_seconds: u64(7_000_000), usage_nano_cores: u64(1234) } : null,
    memory: withCgroup
      ? { timestamp: nanos(NOW - 10), working_set_bytes: u64(4096), available_bytes: null, usage_bytes: u64(8192), rss_bytes: u64(2048), page_faults: u64(1), major_page_faults: u64(0) }
      : null,
    writable_layer: null,
    swap: null,
  };
}

test('a container without cgroup stats gets zero cpu and memory stamped now; the other keeps what the runtime said', async (t) => {
  const procDir = await fakeProc(t);
  const cri = {
    listContainerStats: async () => ({ stats: [stats('c1', 'app', true), stats('c2', 'nocgroup', false)] }),
    listPodSandbox: async () => ({
      items: [{ id: 'sb1', metadata: { name: 'web', namespace: 'ns', uid: 'u1', attempt: 0 }, state: 'SANDBOX_READY', created_at: nanos(NOW - 6000), labels: { 'io.kubernetes.pod.uid': 'u1' }, annotations: {}, runtime_handler: '' }],
    }),
    listContainers: async () => ({ containers: [container('c1', 'app'), container('c2', 'nocgroup')] }),
    listPodSandboxStats: async () => ({ stats: [] }),
    imageFsInfo: async () => ({ image_filesystems: [] }),
  } as unknown as CriClient;
  const pod: Pod = { metadata: { name: 'web', namespace: 'ns', uid: 'u1' }, spec: { containers: [] } };
  const provider = createStatsProvider({ cri, nodeName: 'n1', rootDir: procDir, pods: () => [pod], procDir, now: () => NOW });
  for (const onlyCpuAndMemory of [false, true]) {
    const summary = await provider.summary({ onlyCpuAndMemory });
    const [web] = summary.pods;
    t.deepEqual(web!.containers.map((c) => c.name), ['app', 'nocgroup']);
    const [app, bare] = web!.containers;
    t.deepEqual(app!.cpu, { time: new Date(NOW - 10).toISOString().replace(/\.\d{3}Z$/, 'Z'), usageNanoCores: 1234, usageCoreNanoSeconds: 7_000_000 });
    t.like(app!.memory, { workingSetBytes: 4096, usageBytes: 8192, rssBytes: 2048 });
    t.deepEqual(bare!.cpu, { time: '2026-01-02T03:04:05Z', usageNanoCores: 0, usageCoreNanoSeconds: 0 });
    t.deepEqual(bare!.memory, { time: '2026-01-02T03:04:05Z', workingSetBytes: 0 });
    // pod totals (no sandbox stats from the runtime): the sum of its containers
    t.like(web!.cpu, { usageNanoCores: 1234, usageCoreNanoSeconds: 7_000_000 });
    t.like(web!.memory, { workingSetBytes: 4096 });
    // the JSON a client gets has both objects for every container
    const json = JSON.parse(JSON.stringify(summary));
    for (const c of json.pods[0].containers) {
      t.is(typeof c.cpu.usageCoreNanoSeconds, 'number', c.name);
      t.is(typeof c.memory.workingSetBytes, 'number', c.name);
    }
  }
});
