/**
 * `keelson doctor`: checks the host for what keeps keelson from working and says how to fix each
 * problem. One module per check (they share a context: see check.ts); exit code 1 when any fails.
 *
 *   keelson doctor [--config FILE] [--kubeconfig FILE] [--root-dir DIR] [--check runtime,ports] [--json]
 */
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createCriClient } from '../../cri/client';
import { parseDnsConfig } from '../../dns/config';
import { createCommandRunner } from '../../netproxy/exec';
import { parseProxyConfig } from '../../netproxy/config';
import { DEFAULT_ROOT_DIR, loadConfig, type KeelsonConfig } from '../config';
import { errorMessage } from '../errors';
import { loadKubeconfig, type KubeConfig } from '../kube/kubeconfig';
import { processAlive, readDaemonState } from '../state-file';
import { apiserverCheck, clockCheck, probeApiserver } from './apiserver';
import { certificatesCheck } from './certificates';
import { cgroupsCheck } from './cgroups';
import type { ApiserverProbe, CheckResult, DoctorCheck, DoctorContext, DoctorPaths, RuntimeProbe } from './check';
import { cniCheck } from './cni';
import { diskCheck } from './disk';
import { iptablesCheck } from './iptables';
import { ipvsCheck } from './ipvs';
import { portsCheck } from './ports';
import { resolvConfCheck } from './resolv-conf';
import { probeRuntime, runtimeCheck } from './runtime';

export type { CheckResult, DoctorCheck, DoctorContext } from './check';

/** Every check, in the order they are shown. */
export const CHECKS: readonly DoctorCheck[] = [
  runtimeCheck,
  cniCheck,
  cgroupsCheck,
  iptablesCheck,
  ipvsCheck,
  portsCheck,
  apiserverCheck,
  clockCheck,
  certificatesCheck,
  resolvConfCheck,
  diskCheck,
];

export const DEFAULT_PATHS: DoctorPaths = {
  procNet: '/proc',
  proc: '/proc',
  cgroupRoot: '/sys/fs/cgroup',
  systemdResolvConf: '/run/systemd/resolve/resolv.conf',
  defaultCniConfDir: '/etc/cni/net.d',
};

function memo<T>(fn: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = fn();
      done = true;
    }
    return value;
  };
}

export type DoctorOverrides = Partial<Omit<DoctorContext, 'paths'>> & { paths?: Partial<DoctorPaths> };

/** A context reading the real host; anything in `overrides` replaces the default. */
export function createDoctorContext(config: KeelsonConfig, overrides: DoctorOverrides = {}): DoctorContext {
  const dns = parseDnsConfig({ clusterDomain: config.kubelet.clusterDomain, dns: config.dnsRaw }).config;
  const proxy = parseProxyConfig(config.proxyRaw).config;
  const kubeconfig = memo((): KubeConfig | Error | undefined => {
    if (!config.kubeconfig) return undefined;
    try {
      return loadKubeconfig(config.kubeconfig);
    } catch (err) {
      return err instanceof Error ? err : new Error(errorMessage(err));
    }
  });
  const { paths, ...rest } = overrides;
  const state = readDaemonState(config.rootDir);
  const ctx: DoctorContext = {
    config,
    dns,
    proxy,
    paths: { ...DEFAULT_PATHS, ...paths },
    exec: createCommandRunner(),
    readFile: (p) => readFileSync(p, 'utf8'),
    readdir: (p) => readdirSync(p),
    exists: (p) => existsSync(p),
    statfs: (p) => statfsSync(p),
    now: () => Date.now(),
    ...(state && !state.stopped && processAlive(state.pid) ? { daemonPid: state.pid } : {}),
    kubeconfig,
    criClient: (endpoint) => createCriClient({ endpoint, timeoutMs: 5000 }),
    runtime: () => Promise.reject(new Error('unset')),
    apiserver: () => Promise.reject(new Error('unset')),
    ...rest,
  };
  if (!rest.runtime) ctx.runtime = memo((): Promise<RuntimeProbe> => probeRuntime(ctx));
  if (!rest.apiserver) {
    ctx.apiserver = memo((): Promise<ApiserverProbe | undefined> => {
      const kc = ctx.kubeconfig();
      return kc && !(kc instanceof Error) ? probeApiserver(kc, ctx.now) : Promise.resolve(undefined);
    });
  }
  return ctx;
}

/** Runs the checks; a check that throws is reported as failed, never stops the others. */
export async function runChecks(ctx: DoctorContext, checks: readonly DoctorCheck[] = CHECKS): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    try {
      const r = await check.run(ctx);
      results.push(...(Array.isArray(r) ? r : [r]));
    } catch (err) {
      results.push({ name: check.name, status: 'fail', detail: `the check itself failed: ${errorMessage(err)}`, fix: 'report this as a keelson bug' });
    }
  }
  return results;
}

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export function renderResults(results: CheckResult[]): string {
  // Long names (disk paths) overflow their column rather than pushing every detail far right.
  const width = Math.min(Math.max(...results.map((r) => r.name.length), 10), 24);
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.status]}  ${r.name.padEnd(width)}  ${r.detail}`);
    if (r.fix && r.status !== 'ok') lines.push(`${' '.repeat(width + 8)}fix: ${r.fix}`);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  lines.push('');
  lines.push(failed || warned ? `${failed} failed, ${warned} warning${warned === 1 ? '' : 's'}, ${results.length - failed - warned} ok` : `all ${results.length} checks ok`);
  return lines.join('\n');
}

const OPTIONS = {
  config: { type: 'string' },
  kubeconfig: { type: 'string' },
  'root-dir': { type: 'string' },
  'container-runtime-endpoint': { type: 'string' },
  check: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const DOCTOR_USAGE = `Usage: keelson doctor [--config FILE] [--kubeconfig FILE] [--root-dir DIR]
                      [--container-runtime-endpoint SOCK] [--check NAME,...] [--json]

Checks the host and explains each problem with its fix. Exit code 1 if any check fails.
Checks: ${CHECKS.map((c) => c.name).join(', ')}
`;

export async function doctorCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    process.stderr.write(`keelson doctor: ${errorMessage(err)}\n\n${DOCTOR_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  let checks: readonly DoctorCheck[] = CHECKS;
  if (typeof values.check === 'string') {
    const names = values.check.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !CHECKS.some((c) => c.name === n));
    if (unknown.length || names.length === 0) {
      process.stderr.write(`keelson doctor: unknown check ${unknown.join(', ') || '(none given)'}; checks: ${CHECKS.map((c) => c.name).join(', ')}\n`);
      return 2;
    }
    checks = CHECKS.filter((c) => names.includes(c.name));
  }
  let config: KeelsonConfig;
  try {
    config = loadConfig(
      {
        config: values.config as string | undefined,
        kubeconfig: values.kubeconfig as string | undefined,
        rootDir: (values['root-dir'] as string | undefined) ?? DEFAULT_ROOT_DIR,
        containerRuntimeEndpoint: values['container-runtime-endpoint'] as string | undefined,
      },
      existsSync,
    ).config;
  } catch (err) {
    const result: CheckResult = { name: 'config', status: 'fail', detail: errorMessage(err), fix: 'fix the named field in the config file (keelson refuses to start with it)' };
    process.stdout.write(values.json ? JSON.stringify({ results: [result], failed: 1 }, null, 2) + '\n' : renderResults([result]) + '\n');
    return 1;
  }
  const ctx = createDoctorContext(config);
  const header: CheckResult = {
    name: 'config',
    status: 'ok',
    detail: `${config.configPath ?? '(defaults: no config file)'}; node ${config.nodeName}; ${config.kubeconfig ? `joined (${config.kubeconfig})` : 'not joined (standalone)'}`,
  };
  const results = [header, ...(await runChecks(ctx, checks))];
  const failed = results.filter((r) => r.status === 'fail').length;
  if (values.json) process.stdout.write(JSON.stringify({ results, failed }, null, 2) + '\n');
  else process.stdout.write(renderResults(results) + '\n');
  return failed ? 1 : 0;
}
