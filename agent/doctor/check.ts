/**
 * The contract of one `keelson doctor` check, and the context every check reads the host through.
 * Everything a check touches (files, commands, statfs, the clock, the CRI runtime, the apiserver)
 * comes from the context, so tests can point a check at a temp file, a test netns or a fake clock.
 */
import type { CriClient } from '../../cri/client';
import type { DnsConfig } from '../../dns/config';
import type { CommandRunner } from '../../netproxy/exec';
import type { ProxyConfig } from '../../netproxy/config';
import type { KeelsonConfig } from '../config';
import type { KubeConfig } from '../kube/kubeconfig';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Short, stable name (`runtime`, `port 10250/tcp`, `disk /var/lib/keelson`). */
  name: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about it (warn and fail only). */
  fix?: string;
}

export interface DoctorCheck {
  /** The name `--check` selects it by. */
  readonly name: string;
  run(ctx: DoctorContext): Promise<CheckResult | CheckResult[]>;
}

export interface FsStats {
  /** Block size in bytes. */
  bsize: number;
  blocks: number;
  /** Blocks available to unprivileged users. */
  bavail: number;
  files: number;
  ffree: number;
}

/** What the CRI runtime said, asked once per doctor run and shared by the checks that need it. */
export interface RuntimeProbe {
  endpoint: string;
  socket: string;
  version?: { runtimeName: string; runtimeVersion: string; apiVersion: string };
  conditions?: { type: string; status: boolean; reason: string; message: string }[];
  /** Parsed `config` entry of the verbose status (containerd's CRI plugin settings), if any. */
  runtimeConfig?: Record<string, unknown>;
  /** Mount point of the runtime's image filesystem (ImageFsInfo). */
  imageFsMountpoint?: string;
  error?: unknown;
}

/** One GET /version against the apiserver, asked once and shared by the apiserver and clock checks. */
export interface ApiserverProbe {
  server: string;
  statusCode?: number;
  gitVersion?: string;
  /** The response's Date header, parsed (ms since the epoch). */
  serverDate?: number;
  /** Local time half-way between sending the request and receiving the headers. */
  localMidpoint?: number;
  roundTripMs?: number;
  error?: string;
}

export interface DoctorPaths {
  /** /proc, or /proc/<pid> to read another network namespace's /proc/net. */
  procNet: string;
  proc: string;
  cgroupRoot: string;
  systemdResolvConf: string;
  /** Used when the runtime does not say where its CNI config lives. */
  defaultCniConfDir: string;
}

export interface DoctorContext {
  config: KeelsonConfig;
  proxy: ProxyConfig;
  dns: DnsConfig;
  paths: DoctorPaths;
  exec: CommandRunner;
  readFile(path: string): string;
  readdir(path: string): string[];
  exists(path: string): boolean;
  statfs(path: string): FsStats;
  now(): number;
  /** The pid of a running keelson daemon under rootDir, if any (its own ports are not conflicts). */
  daemonPid?: number;
  /** The parsed kubeconfig when joined; undefined when standalone; an Error when it does not parse. */
  kubeconfig(): KubeConfig | Error | undefined;
  runtime(): Promise<RuntimeProbe>;
  apiserver(): Promise<ApiserverProbe | undefined>;
  /** Creates CRI clients (tests may point it elsewhere). */
  criClient(endpoint: string): CriClient;
}

export function ok(name: string, detail: string): CheckResult {
  return { name, status: 'ok', detail };
}
export function warn(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'warn', detail, fix };
}
export function fail(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'fail', detail, fix };
}
