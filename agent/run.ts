/**
 * `keelson run`: wires the components the operator asked for, reports their health (state file for
 * `keelson status`, healthz on 127.0.0.1:10248), and stops them on SIGTERM/SIGINT without touching
 * the pods (containers survive a restart of keelson).
 */
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { parseDnsConfig } from '../dns/config';
import { parseProxyConfig } from '../netproxy/config';
import { createNotifier } from '../systemd/notify';
import { hostShuttingDown } from '../systemd/shutdown';
import type { KeelsonConfig } from './config';
import { createStateReporter } from './daemon-state';
import { ErrorCodes, errorMessage, KeelsonError } from './errors';
import { releaseMemory } from './memory';
import { detectNodeIP } from './node-ip';
import { createHealthzServer } from './server/healthz';
import { keelsonVersion } from './version';
import { wireComponents } from './wiring';

/** After the informers' first sync, time for the components' first syncs before memory is released. */
const START_UP_RELEASE_DELAY_MS = 10_000;

export { serviceStatusLine } from './daemon-state';

/** Parses the proxy and dns sections; a problem fails start-up naming file and field. */
export function componentConfigs(config: KeelsonConfig) {
  const file = config.configPath ?? '(defaults)';
  const dns = parseDnsConfig({ clusterDomain: config.kubelet.clusterDomain, dns: config.dnsRaw });
  const proxy = parseProxyConfig(config.proxyRaw);
  const problems = [...dns.problems, ...proxy.problems.map((p) => ({ ...p, field: `proxy.${p.field}` }))];
  if (problems.length) {
    throw new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid config ${file}: ${problems.map((p) => `${p.field}: ${p.reason}`).join('; ')}`, { object: file });
  }
  return { dns: dns.config, proxy: proxy.config };
}

export async function runDaemon(config: KeelsonConfig, rootLogger: Logger): Promise<number> {
  const logger = rootLogger.child({ component: 'agent' });
  let settings;
  try {
    settings = componentConfigs(config);
  } catch (err) {
    process.stderr.write(`keelson: ${errorMessage(err)}\n`);
    return 1;
  }
  // sd_notify under systemd (Type=notify): STATUS while starting, READY once serving, watchdog pings.
  const notifier = createNotifier({ logger });
  const stopWatchdog = notifier.startWatchdog();
  void notifier.status(`starting ${config.components.join(', ')}`);
  mkdirSync(config.rootDir, { recursive: true, mode: 0o755 });
  const startedAt = new Date().toISOString();
  const nodeIP = config.nodeIP ?? detectNodeIP();
  const { mode, components, kubelet, cri, informers } = await wireComponents({ config, settings, nodeIP, rootLogger, logger, notifier });
  const dnsOn = mode === 'cluster' && config.components.includes('dns');
  logger.info(
    {
      version: keelsonVersion(),
      node: config.nodeName,
      mode,
      components: config.components.join(','),
      runtime: config.kubelet.containerRuntimeEndpoint,
      proxyMode: config.components.includes('proxy') && mode === 'cluster' ? settings.proxy.mode ?? 'auto' : 'off',
      dns: dnsOn ? settings.dns.listen.join(',') : 'off',
      rootDir: config.rootDir,
    },
    'keelson starting',
  );

  void notifier.status(`starting ${components.map((c) => c.name).join(', ') || 'no components'}`);
  const startErrors = new Map<string, string>();
  await Promise.all(
    components.map(async (c) => {
      try {
        await c.start();
      } catch (err) {
        startErrors.set(c.name, errorMessage(err));
        logger.error({ err, target: c.name }, `${c.name} failed to start`);
      }
    }),
  );

  const reporter = createStateReporter({
    config, mode, startedAt, components, startErrors, notifier, logger,
    ...(kubelet ? { kubelet } : {}),
    ...(informers ? { informers } : {}),
    dnsAddresses: dnsOn ? settings.dns.listen.map((a) => `${a.includes(':') ? `[${a}]` : a}:${settings.dns.port}`) : [],
  });
  const healthz = config.components.includes('kubelet')
    ? createHealthzServer({
        address: config.kubelet.healthzBindAddress,
        port: config.kubelet.healthzPort,
        healthy: () => ({ ok: !kubelet || kubelet.health().healthy, message: kubelet?.health().message }),
        logger,
      })
    : undefined;
  healthz?.listen().catch(() => {}); // logged by the healthz server; the daemon runs on without it
  logger.info({ pid: process.pid }, 'keelson running');
  reporter.start();
  // Start-up (module loading, the first lists, the first syncs) leaves heap pages behind.
  let releaseTimer: NodeJS.Timeout | undefined;
  void (informers ? informers.waitForSync() : Promise.resolve()).then(() => {
    releaseTimer = setTimeout(() => releaseMemory('start-up', logger), START_UP_RELEASE_DELAY_MS);
    releaseTimer.unref();
  });

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // Said in the log so an operator can tell a host shutdown from a restart of keelson alone.
  const host = signal === 'SIGTERM' ? await hostShuttingDown() : { shuttingDown: false };
  // Graceful node shutdown (kubelet's shutdownGracePeriod, off by default): on a host shutdown the
  // pods are stopped, critical ones last, while the apiserver client still runs to report them.
  const stopPods = host.shuttingDown && kubelet !== undefined && config.kubelet.shutdownGracePeriodMs > 0;
  const stopping = stopPods ? 'stopping keelson and its pods (node shutdown)' : 'stopping keelson (pods keep running)';
  logger.info({ signal, ...(host.shuttingDown ? { hostShutdown: host.reason } : {}) }, stopping);
  void notifier.stopping(stopping.replace('stopping keelson', 'stopping'));
  reporter.stop();
  clearTimeout(releaseTimer);
  if (stopPods) {
    try {
      await kubelet!.shutdownPods({
        gracePeriodSeconds: Math.floor(config.kubelet.shutdownGracePeriodMs / 1000),
        criticalGracePeriodSeconds: Math.floor(config.kubelet.shutdownGracePeriodCriticalPodsMs / 1000),
      });
    } catch (err) {
      logger.error({ err }, 'graceful node shutdown failed; stopping keelson');
    }
  }
  await healthz?.close();
  await Promise.all(
    components.map(async (c) => {
      try {
        await c.stop();
      } catch (err) {
        logger.warn({ err, target: c.name }, `${c.name} did not stop cleanly`);
      }
    }),
  );
  await informers?.stop();
  cri?.close();
  reporter.writeStopped();
  stopWatchdog();
  logger.info('keelson stopped');
  return 0;
}
