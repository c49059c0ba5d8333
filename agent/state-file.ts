/**
 * The running daemon's state, written atomically to <rootDir>/run/status.json so that
 * `keelson status --root-dir DIR` can read it from another process.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ComponentHealth } from './component';

export interface ContainerStatusView {
  name: string;
  state: string;
  /** Readiness from the container's readiness probe (absent before the first status). */
  ready?: boolean;
  restartCount: number;
  containerID?: string;
  image?: string;
  reason?: string;
}

export interface PodStatusView {
  namespace: string;
  name: string;
  uid?: string;
  phase: string;
  podIP?: string;
  source?: string;
  message?: string;
  containers: ContainerStatusView[];
}

export interface DaemonState {
  pid: number;
  version: string;
  nodeName: string;
  mode: 'standalone' | 'cluster';
  startedAt: string;
  updatedAt: string;
  stopped?: boolean;
  components: ComponentHealth[];
  pods: PodStatusView[];
  /** Problems an operator must fix, such as a bad static pod manifest (file and field). */
  problems: string[];
  extra?: Record<string, unknown>;
}

export function stateFilePath(rootDir: string): string {
  return join(rootDir, 'run', 'status.json');
}

export function writeDaemonState(rootDir: string, state: DaemonState): void {
  const path = stateFilePath(rootDir);
  mkdirSync(join(rootDir, 'run'), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 1) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
}

export function readDaemonState(rootDir: string): DaemonState | undefined {
  try {
    return JSON.parse(readFileSync(stateFilePath(rootDir), 'utf8')) as DaemonState;
  } catch {
    return undefined;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
