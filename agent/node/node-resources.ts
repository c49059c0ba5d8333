/**
 * Capacity and allocatable, as the kubelet computes them: capacity from the host (cpu, memory,
 * ephemeral-storage of the root dir's filesystem, huge pages, pods = maxPods); allocatable =
 * capacity − systemReserved − kubeReserved − the hard eviction threshold (memory.available for
 * memory, nodefs.available for ephemeral-storage), never below zero. Thresholds may be absolute
 * quantities or percentages of capacity.
 */
import { bytes, milliCpu } from '../pods/quantity';
import type { FsStats, MemoryStats } from './host-info';

export interface ResourceSettings {
  maxPods: number;
  systemReserved: Record<string, string>;
  kubeReserved: Record<string, string>;
  evictionHard: Record<string, string>;
}

export interface NodeResources {
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
}

/** Bytes as the kubelet writes them: `NKi` when a whole number of KiB, else plain bytes. */
export function formatBytes(value: number): string {
  const n = Math.max(0, Math.floor(value));
  return n % 1024 === 0 ? `${n / 1024}Ki` : String(n);
}

export function formatMilliCpu(milli: number): string {
  const n = Math.max(0, Math.floor(milli));
  return n % 1000 === 0 ? String(n / 1000) : `${n}m`;
}

/** A threshold (`100Mi`, `10%`) against a capacity, in the resource's unit; undefined when absent or invalid. */
export function thresholdValue(text: string | undefined, capacity: number, parse: (v: string) => number | undefined = bytes): number | undefined {
  if (text === undefined) return undefined;
  const pct = /^\s*(\d+(?:\.\d+)?)%\s*$/.exec(text);
  if (pct) return (Number(pct[1]) / 100) * capacity;
  return parse(text);
}

export function computeResources(settings: ResourceSettings, cpuCount: number, memory: MemoryStats, rootFs: FsStats): NodeResources {
  const cpuMilli = cpuCount * 1000;
  const reserved = (name: string, parse: (v: string) => number | undefined) =>
    [settings.systemReserved[name], settings.kubeReserved[name]].reduce((sum, v) => sum + (v === undefined ? 0 : (parse(v) ?? 0)), 0);

  const capacity: Record<string, string> = {
    cpu: formatMilliCpu(cpuMilli),
    'ephemeral-storage': formatBytes(rootFs.capacityBytes),
    memory: formatBytes(memory.totalBytes),
    pods: String(settings.maxPods),
  };
  for (const [name, size] of Object.entries(memory.hugePages)) capacity[name] = formatBytes(size);

  const memHard = thresholdValue(settings.evictionHard['memory.available'], memory.totalBytes) ?? 0;
  const fsHard = thresholdValue(settings.evictionHard['nodefs.available'], rootFs.capacityBytes) ?? 0;
  const hugeTotal = Object.values(memory.hugePages).reduce((a, b) => a + b, 0);
  const allocatable: Record<string, string> = {
    cpu: formatMilliCpu(cpuMilli - reserved('cpu', milliCpu)),
    'ephemeral-storage': formatBytes(rootFs.capacityBytes - reserved('ephemeral-storage', bytes) - fsHard),
    // Memory set aside as huge pages is not available to ordinary pods either.
    memory: formatBytes(memory.totalBytes - reserved('memory', bytes) - memHard - hugeTotal),
    pods: String(settings.maxPods),
  };
  for (const [name, size] of Object.entries(memory.hugePages)) allocatable[name] = formatBytes(size);
  return { capacity, allocatable };
}
