/**
 * Container log locations, as kubelet lays them out (and as log collectors expect):
 * `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log`. The sandbox gets the pod
 * folder as its CRI log_directory and each container the relative `<container>/<n>.log`.
 */
import { join } from 'node:path';

export function podLogDir(podLogsDir: string, namespace: string, name: string, uid: string): string {
  return join(podLogsDir, `${namespace}_${name}_${uid}`);
}

/** Relative to the pod log folder (the CRI container log_path). */
export function containerLogPath(containerName: string, restartCount: number): string {
  return `${containerName}/${restartCount}.log`;
}
