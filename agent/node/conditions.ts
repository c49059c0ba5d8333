/**
 * The node conditions, computed from what was observed: Ready (runtime up, its network ready, the
 * pod lifecycle relist alive), MemoryPressure, DiskPressure and PIDPressure against the hard
 * eviction thresholds. Pure: inputs in, conditions out (times are added by the status reporter).
 */
import { thresholdValue } from './node-resources';
import type { FsStats, MemoryStats, PidStats } from './host-info';

export interface RuntimeObservation {
  /** Undefined when the runtime could not be asked (it is down). */
  error?: string;
  conditions?: { type: string; status: boolean; reason: string; message: string }[];
}

export interface ConditionInputs {
  runtime: RuntimeObservation;
  /** The pod lifecycle relist (PLEG), when the kubelet runs pods. */
  podLifecycle?: { healthy: boolean; message?: string };
  memory: MemoryStats;
  rootFs: FsStats;
  pids: PidStats;
  evictionHard: Record<string, string>;
}

export interface ConditionValue {
  type: 'Ready' | 'MemoryPressure' | 'DiskPressure' | 'PIDPressure';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

function runtimeProblem(runtime: RuntimeObservation): string | undefined {
  if (runtime.error !== undefined) return `container runtime is down: ${runtime.error}`;
  const find = (type: string) => runtime.conditions?.find((c) => c.type === type);
  const ready = find('RuntimeReady');
  if (!ready || !ready.status) return `container runtime not ready: RuntimeReady=false${ready?.reason ? ` reason:${ready.reason}` : ''}${ready?.message ? ` message:${ready.message}` : ''}`;
  const network = find('NetworkReady');
  if (!network || !network.status) {
    return `container runtime network not ready: NetworkReady=false${network?.reason ? ` reason:${network.reason}` : ''}${network?.message ? ` message:${network.message}` : ''}`;
  }
  return undefined;
}

export function computeConditions(inputs: ConditionInputs): ConditionValue[] {
  const problems: string[] = [];
  const runtime = runtimeProblem(inputs.runtime);
  if (runtime) problems.push(runtime);
  if (inputs.podLifecycle && !inputs.podLifecycle.healthy) problems.push(`PLEG is not healthy: ${inputs.podLifecycle.message ?? 'relist stalled'}`);

  const memHard = thresholdValue(inputs.evictionHard['memory.available'], inputs.memory.totalBytes);
  const memoryPressure = memHard !== undefined && inputs.memory.availableBytes < memHard;
  const fsHard = thresholdValue(inputs.evictionHard['nodefs.available'], inputs.rootFs.capacityBytes);
  const inodesHard = thresholdValue(inputs.evictionHard['nodefs.inodesFree'], inputs.rootFs.inodes, (v) => Number(v));
  const diskPressure =
    (fsHard !== undefined && inputs.rootFs.availableBytes < fsHard) ||
    (inodesHard !== undefined && inputs.rootFs.inodes > 0 && inputs.rootFs.inodesFree < inodesHard);
  const pidHard = thresholdValue(inputs.evictionHard['pid.available'], inputs.pids.max, (v) => Number(v));
  const pidPressure = pidHard !== undefined && inputs.pids.max - inputs.pids.running < pidHard;

  return [
    memoryPressure
      ? { type: 'MemoryPressure', status: 'True', reason: 'KubeletHasInsufficientMemory', message: `available memory ${inputs.memory.availableBytes} bytes is below the eviction threshold` }
      : { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'keelson: enough memory available' },
    diskPressure
      ? { type: 'DiskPressure', status: 'True', reason: 'KubeletHasDiskPressure', message: 'free space or inodes of the node filesystem below the eviction threshold' }
      : { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'keelson: no disk pressure' },
    pidPressure
      ? { type: 'PIDPressure', status: 'True', reason: 'KubeletHasInsufficientPID', message: `free process IDs below the eviction threshold` }
      : { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'keelson: enough process IDs available' },
    problems.length
      ? { type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: problems.join('; ') }
      : { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'keelson is posting ready status' },
  ];
}
