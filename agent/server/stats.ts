/**
 * `/stats/summary` (kubelet's stats.k8s.io Summary, the source of metrics-server and eviction
 * tooling): the node from /proc and statfs (cpu, memory, root and image filesystems, process
 * count), each pod and container from CRI ListContainerStats (cpu, memory, writable layer) plus the
 * size of its log files. Pod totals come from CRI ListPodSandboxStats when the runtime has them, or
 * are the sum of the pod's containers (containerd 1.6 answers sandbox stats only for sandboxes with
 * a cgroup parent). A container the runtime has no cgroup stats for (CRI leaves cpu and memory
 * unset, e.g. containerd's shim could not load its cgroup) gets zero usage stamped now, as kubelet
 * reports it, so every container always has its cpu and memory objects.
 */
import { readFileSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { CriClient } from '../../cri/client';
import type * as T from '../../cri/types';
import type { Pod } from 'kubernetes-types/core/v1';
import { podLogDir } from '../pods/log-paths';

export interface CpuStats {
  time: string;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
}
export interface MemoryStats {
  time: string;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}
export interface FsStats {
  time: string;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}
export interface ContainerStatsSummary {
  name: string;
  startTime?: string;
  /** Always set (zero usage when the runtime has none), as kubelet does. */
  cpu: CpuStats;
  memory: MemoryStats;
  rootfs?: FsStats;
  logs?: FsStats;
}
export interface PodStatsSummary {
  podRef: { name: string; namespace: string; uid: string };
  startTime?: string;
  containers: ContainerStatsSummary[];
  cpu?: CpuStats;
  memory?: MemoryStats;
  'ephemeral-storage'?: FsStats;
  process_stats?: { process_count?: number };
}
export interface Summary {
  node: {
    nodeName: string;
    systemContainers: unknown[];
    startTime?: string;
    cpu?: CpuStats;
    memory?: MemoryStats;
    fs?: FsStats;
    runtime?: { imageFs?: FsStats; containerFs?: FsStats };
    rlimit?: { time: string; maxpid?: number; curproc?: number };
  };
  pods: PodStatsSummary[];
}

export interface StatsProviderOptions {
  cri: CriClient;
  nodeName: string;
  /** The kubelet's root directory: its filesystem is the node fs. */
  rootDir: string;
  /** Base of container logs (kubelet's podLogsDir): their size is the containers' `logs`. */
  podLogsDir?: string;
  /** Pods the kubelet runs (their start times). */
  pods(): Pod[];
  /** The /proc to read (tests may point elsewhere). */
  procDir?: string;
  now?: () => number;
}

export interface StatsProvider {
  summary(options?: { onlyCpuAndMemory?: boolean }): Promise<Summary>;
}

const CLOCK_TICKS = 100; // USER_HZ on every Linux architecture keelson supports
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const num = (v: T.UInt64Value | null | undefined): number | undefined => (v ? Number(v.value) : undefined);
const nanosIso = (ns: string | undefined, fallback: number): string => {
  const n = ns ? Number(BigInt(ns) / 1_000_000n) : 0;
  return iso(n > 0 ? n : fallback);
};

function readKeyValues(path: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\S+?):?\s+(\d+)/.exec(line);
    if (m) map.set(m[1]!, Number(m[2]));
  }
  return map;
}

/** Total busy CPU time of the node in nanoseconds (user+nice+system+irq+softirq+steal). */
function nodeCpuNanos(proc: string): number {
  const line = readFileSync(join(proc, 'stat'), 'utf8').split('\n').find((l) => l.startsWith('cpu '))!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return (busy * 1e9) / CLOCK_TICKS;
}

function fsStats(path: string, time: string): FsStats | undefined {
  try {
    const s = statfsSync(path);
    return {
      time,
      availableBytes: s.bavail * s.bsize,
      capacityBytes: s.blocks * s.bsize,
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      inodesFree: s.ffree,
      inodes: s.files,
      inodesUsed: s.files - s.ffree,
    };
  } catch {
    return undefined;
  }
}

/** Bytes and files under a folder (the container's log files). */
function folderUsage(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  try {
    for (const name of readdirSync(dir)) {
      const st = statSync(join(dir, name));
      if (st.isFile()) {
        bytes += st.size;
        files++;
      }
    }
  } catch {
    // no logs yet
  }
  return { bytes, files };
}

function cpuOf(c: T.CpuUsage | null | undefined, fallback: number): CpuStats | undefined {
  if (!c) return undefined;
  return { time: nanosIso(c.timestamp, fallback), usageNanoCores: num(c.usage_nano_cores), usageCoreNanoSeconds: num(c.usage_core_nano_seconds) };
}

function memoryOf(m: T.MemoryUsage | null | undefined, fallback: number): MemoryStats | undefined {
  if (!m) return undefined;
  return {
    time: nanosIso(m.timestamp, fallback),
    ...(m.available_bytes ? { availableBytes: num(m.available_bytes) } : {}),
    usageBytes: num(m.usage_bytes),
    workingSetBytes: num(m.working_set_bytes),
    rssBytes: num(m.rss_bytes),
    pageFaults: num(m.page_faults),
    majorPageFaults: num(m.major_page_faults),
  };
}

function sum(values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length ? defined.reduce((a, b) => a + b, 0) : undefined;
}

export function createStatsProvider(options: StatsProviderOptions): StatsProvider {
  const proc = options.procDir ?? '/proc';
  const now = options.now ?? Date.now;
  let lastCpu: { at: number; nanos: number } | undefined;
  const bootMs = (() => {
    try {
      const btime = readKeyValues(join(proc, 'stat')).get('btime');
      return btime ? btime * 1000 : undefined;
    } catch {
      return undefined;
    }
  })();

  async function nodeCpu(time: string): Promise<CpuStats> {
    let sample = { at: now(), nanos: nodeCpuNanos(proc) };
    if (!lastCpu || sample.at - lastCpu.at < 50) {
      // no earlier sample to take a rate from: take one now, 100 ms apart
      const first = lastCpu && sample.at - lastCpu.at < 50 ? lastCpu : sample;
      if (first === sample) {
        await new Promise((r) => setTimeout(r, 100));
        sample = { at: now(), nanos: nodeCpuNanos(proc) };
      }
      lastCpu = first;
    }
    const elapsedNs = (sample.at - lastCpu.at) * 1e6;
    const rate = elapsedNs > 0 ? Math.round(((sample.nanos - lastCpu.nanos) / elapsedNs) * 1e9) : undefined;
    lastCpu = sample;
    return { time, usageCoreNanoSeconds: Math.round(sample.nanos), ...(rate !== undefined ? { usageNanoCores: rate } : {}) };
  }

  function nodeMemory(time: string): MemoryStats {
    const mem = readKeyValues(join(proc, 'meminfo'));
    const kb = (k: string) => (mem.get(k) ?? 0) * 1024;
    const usage = kb('MemTotal') - kb('MemFree');
    const workingSet = Math.max(0, usage - kb('Inactive(file)'));
    let vm = new Map<string, number>();
    try {
      vm = readKeyValues(join(proc, 'vmstat'));
    } catch {
      // optional
    }
    return {
      time,
      availableBytes: kb('MemTotal') - workingSet,
      usageBytes: usage,
      workingSetBytes: workingSet,
      rssBytes: kb('AnonPages'),
      pageFaults: vm.get('pgfault'),
      majorPageFaults: vm.get('pgmajfault'),
    };
  }

  function rlimit(time: string) {
    try {
      const maxpid = Number(readFileSync(join(proc, 'sys/kernel/pid_max'), 'utf8').trim());
      const curproc = Number(readFileSync(join(proc, 'loadavg'), 'utf8').split(/\s+/)[3]?.split('/')[1]);
      return { time, maxpid, curproc };
    } catch {
      return undefined;
    }
  }

  async function sandboxStats(): Promise<Map<string, T.PodSandboxStats>> {
    try {
      const { stats } = await options.cri.listPodSandboxStats({});
      return new Map(stats.filter((s) => s.attributes).map((s) => [s.attributes!.id, s]));
    } catch {
      return new Map();
    }
  }

  return {
    async summary(opts = {}) {
      const at = now();
      const time = iso(at);
      const [cpu, { stats: containerStats }, { items: sandboxes }, { containers }, bySandbox] = await Promise.all([
        nodeCpu(time),
        options.cri.listContainerStats({}),
        options.cri.listPodSandbox({ filter: { state: { state: 'SANDBOX_READY' } } }),
        options.cri.listContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } }),
        sandboxStats(),
      ]);
      const running = new Map(containers.map((c) => [c.id, c]));
      const apiPods = new Map(options.pods().map((p) => [p.metadata?.uid ?? '', p]));
      const pods: PodStatsSummary[] = [];
      for (const sandbox of sandboxes) {
        const uid = sandbox.labels['io.kubernetes.pod.uid'] ?? sandbox.metadata?.uid ?? '';
        const apiPod = apiPods.get(uid);
        if (!apiPod) continue; // not a pod this kubelet runs
        const ns = sandbox.metadata?.namespace ?? '';
        const name = sandbox.metadata?.name ?? '';
        const mine = containerStats.filter((s) => s.attributes && running.get(s.attributes.id)?.pod_sandbox_id === sandbox.id);
        const containerSummaries: ContainerStatsSummary[] = mine.map((s) => {
          const c = running.get(s.attributes!.id)!;
          const summary: ContainerStatsSummary = {
            name: c.metadata?.name ?? s.attributes!.metadata?.name ?? '',
            startTime: nanosIso(c.created_at, at),
            cpu: cpuOf(s.cpu, at) ?? { time, usageNanoCores: 0, usageCoreNanoSeconds: 0 },
            memory: memoryOf(s.memory, at) ?? { time, workingSetBytes: 0 },
          };
          if (!opts.onlyCpuAndMemory) {
            const layer = s.writable_layer;
            if (layer) {
              const fs = layer.fs_id?.mountpoint ? fsStats(layer.fs_id.mountpoint, time) : undefined;
              summary.rootfs = { ...(fs ?? { time }), time: nanosIso(layer.timestamp, at), usedBytes: num(layer.used_bytes), inodesUsed: num(layer.inodes_used) };
            }
            if (options.podLogsDir) {
              const dir = join(podLogDir(options.podLogsDir, ns, name, uid), summary.name);
              const usage = folderUsage(dir);
              summary.logs = { ...(fsStats(dir, time) ?? { time }), usedBytes: usage.bytes, inodesUsed: usage.files };
            }
          }
          return summary;
        });
        const sb = bySandbox.get(sandbox.id)?.linux;
        const podCpu: CpuStats = sb?.cpu
          ? cpuOf(sb.cpu, at)!
          : { time, usageNanoCores: sum(containerSummaries.map((c) => c.cpu?.usageNanoCores)), usageCoreNanoSeconds: sum(containerSummaries.map((c) => c.cpu?.usageCoreNanoSeconds)) };
        const podMemory: MemoryStats = sb?.memory
          ? memoryOf(sb.memory, at)!
          : {
              time,
              usageBytes: sum(containerSummaries.map((c) => c.memory?.usageBytes)),
              workingSetBytes: sum(containerSummaries.map((c) => c.memory?.workingSetBytes)),
              rssBytes: sum(containerSummaries.map((c) => c.memory?.rssBytes)),
              pageFaults: sum(containerSummaries.map((c) => c.memory?.pageFaults)),
              majorPageFaults: sum(containerSummaries.map((c) => c.memory?.majorPageFaults)),
            };
        const pod: PodStatsSummary = {
          podRef: { name, namespace: ns, uid },
          startTime: apiPod.status?.startTime ?? nanosIso(sandbox.created_at, at),
          containers: containerSummaries,
          cpu: podCpu,
          memory: podMemory,
        };
        if (!opts.onlyCpuAndMemory) {
          const used = sum(containerSummaries.flatMap((c) => [c.rootfs?.usedBytes, c.logs?.usedBytes]));
          const inodes = sum(containerSummaries.flatMap((c) => [c.rootfs?.inodesUsed, c.logs?.inodesUsed]));
          pod['ephemeral-storage'] = { ...(fsStats(options.rootDir, time) ?? { time }), usedBytes: used ?? 0, inodesUsed: inodes ?? 0 };
          const processes = num(sb?.process?.process_count);
          if (processes !== undefined) pod.process_stats = { process_count: processes };
        }
        pods.push(pod);
      }
      pods.sort((a, b) => `${a.podRef.namespace}/${a.podRef.name}`.localeCompare(`${b.podRef.namespace}/${b.podRef.name}`));

      const node: Summary['node'] = {
        nodeName: options.nodeName,
        systemContainers: [],
        ...(bootMs ? { startTime: iso(bootMs) } : {}),
        cpu,
        memory: nodeMemory(time),
      };
      if (!opts.onlyCpuAndMemory) {
        node.fs = fsStats(options.rootDir, time);
        try {
          const info = await options.cri.imageFsInfo();
          const image = info.image_filesystems[0];
          if (image) {
            const fs = image.fs_id?.mountpoint ? fsStats(image.fs_id.mountpoint, time) : undefined;
            node.runtime = { imageFs: { ...(fs ?? { time }), usedBytes: num(image.used_bytes), inodesUsed: num(image.inodes_used) } };
          }
        } catch {
          // the runtime may not report its image filesystem
        }
        const r = rlimit(time);
        if (r) node.rlimit = r;
      }
      return { node, pods };
    },
  };
}
