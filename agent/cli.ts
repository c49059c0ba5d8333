#!/usr/bin/env node
/** keelson's command line: `keelson run|status|version`. */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, DEFAULT_ROOT_DIR, type ConfigFlags } from './config';
import { errorMessage, isKeelsonError } from './errors';
import { createLogger, LOG_LEVELS, type LogLevel } from './log';
import { statusCommand } from './status-command';
import { keelsonVersion } from './version';

const USAGE = `Usage: keelson <command> [flags]

Commands:
  join      join an existing control plane with a bootstrap token (as kubeadm join prints it)
  rbac      print the ClusterRole/Binding that proxy and dns need (apply once per cluster)
  run       run the node agent (kubelet, proxy, dns) in the foreground
  status    show what the running agent is doing (reads --root-dir)
  cleanup   remove every rule, chain, table and set the service proxy created (--mode, default all)
  doctor    check the host (runtime, CNI, cgroups, ports, clock, certificates, DNS loops, disk) and say how to fix it
  version   print the version

Flags for run:
  --config FILE                       KubeletConfiguration file (default /etc/keelson/config.yaml if present)
  --kubeconfig FILE                   apiserver credentials (default /etc/keelson/kubelet.conf if present;
                                      without one keelson runs standalone: static pods only)
  --root-dir DIR                      state directory (default ${DEFAULT_ROOT_DIR})
  --components LIST                   comma-separated: kubelet,proxy,dns (default all three)
  --hostname-override NAME            node name instead of the hostname
  --node-ip IP                        the node's InternalIP
  --node-labels k=v,...               extra labels for the Node
  --pod-manifest-path DIR             static pod folder (overrides staticPodPath)
  --container-runtime-endpoint SOCK   CRI socket (overrides containerRuntimeEndpoint)
  --pod-logs-dir DIR                  container log folder (overrides podLogsDir)
  --log-level LEVEL                   ${LOG_LEVELS.join('|')} (default info)

Flags for status:
  --root-dir DIR   --json

Flags for cleanup:
  --mode nftables|iptables|ipvs|all   (default all)
`;

const OPTIONS = {
  config: { type: 'string' },
  kubeconfig: { type: 'string' },
  'root-dir': { type: 'string' },
  components: { type: 'string' },
  'hostname-override': { type: 'string' },
  'node-ip': { type: 'string' },
  'node-labels': { type: 'string' },
  'pod-manifest-path': { type: 'string' },
  'container-runtime-endpoint': { type: 'string' },
  'pod-logs-dir': { type: 'string' },
  'log-level': { type: 'string' },
  json: { type: 'boolean' },
  mode: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string, code = 2): number {
  process.stderr.write(`keelson: ${message}\n`);
  return code;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'join') return (await import('./join/index.js')).joinCommand(rest);
  if (command === 'doctor') return (await import('./doctor/index.js')).doctorCommand(rest);
  if (command === 'rbac') {
    process.stdout.write((await import('./node/rbac.js')).rbacManifest());
    return 0;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    return fail(`${errorMessage(err)}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const rootDir = (values['root-dir'] as string | undefined) ?? DEFAULT_ROOT_DIR;
  switch (command) {
    case 'version':
      process.stdout.write(`keelson ${keelsonVersion()} (node ${process.version}, ${process.platform}/${process.arch})\n`);
      return 0;
    case 'status':
      return statusCommand(rootDir, Boolean(values.json));
    case 'cleanup': {
      const mode = (values.mode as string | undefined) ?? 'all';
      if (!['nftables', 'iptables', 'ipvs', 'all'].includes(mode)) return fail(`invalid --mode ${JSON.stringify(mode)}: expected nftables, iptables, ipvs or all`);
      const { cleanup } = await import('../netproxy/index.js');
      const logger = createLogger({ level: ((values['log-level'] as string | undefined) ?? 'info') as LogLevel }).child({ component: 'proxy' });
      try {
        await cleanup(mode as 'all', { logger });
        return 0;
      } catch (err) {
        return fail(`cleanup failed: ${errorMessage(err)}`, 1);
      }
    }
    case 'run': {
      const level = (values['log-level'] as string | undefined) ?? 'info';
      if (!(LOG_LEVELS as readonly string[]).includes(level)) return fail(`invalid --log-level ${JSON.stringify(level)}: expected ${LOG_LEVELS.join('|')}`);
      const flags: ConfigFlags = {
        config: values.config as string | undefined,
        kubeconfig: values.kubeconfig as string | undefined,
        rootDir,
        components: values.components as string | undefined,
        hostnameOverride: values['hostname-override'] as string | undefined,
        nodeIP: values['node-ip'] as string | undefined,
        nodeLabels: values['node-labels'] as string | undefined,
        staticPodPath: values['pod-manifest-path'] as string | undefined,
        containerRuntimeEndpoint: values['container-runtime-endpoint'] as string | undefined,
        podLogsDir: values['pod-logs-dir'] as string | undefined,
        logLevel: level,
      };
      const logger = createLogger({ level: level as LogLevel });
      let loaded;
      try {
        loaded = loadConfig(flags, existsSync);
      } catch (err) {
        return fail(errorMessage(err), isKeelsonError(err) ? 1 : 2);
      }
      for (const w of loaded.warnings) logger.warn({ component: 'config', file: loaded.config.configPath }, w);
      const { runDaemon } = await import('./run.js');
      return runDaemon(loaded.config, logger);
    }
    default:
      return fail(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`keelson: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    },
  );
}
