/**
 * keelson's service proxy as one component: feed → change trackers → desired state → backend,
 * driven by one bounded-frequency sync runner, with health and metrics endpoints.
 */
import type { Logger } from 'pino';
import type { BackendContext, ProxyBackend } from './backend';
import type { ProxyConfig, ProxyMode } from './config';
import { clearStaleFlows, staleFlowCommands } from './conntrack';
import { createProxyState, type DesiredState } from './desiredstate';
import { createCommandRunner, type CommandRunner } from './exec';
import { createServiceHealthServers, listen, type Listening } from './healthserver';
import type { FeedHandler, ProxyInput } from './input';
import { createProxyMetrics } from './metrics';
import { chooseMode } from './mode';
import { createNftablesBackend, cleanupNftables } from './nftables/backend';
import { createIptablesBackend, cleanupIptables } from './iptables/backend';
import { createIpvsBackend, cleanupIpvs } from './ipvs/backend';
import { ProxyError, ProxyErrorCodes } from './errors';
import { realClock, createSyncRunner, type Clock, type SyncKind, type SyncOutcome } from './syncrunner';

export type { ProxyInput, Feed, FeedHandler } from './input';
export { parseProxyConfig, defaultProxyConfig } from './config';
export type { ProxyConfig, ProxyMode } from './config';

export interface ProxyHealth {
  name: string;
  healthy: boolean;
  message?: string;
  lastSyncTime?: string;
  details?: Record<string, unknown>;
}

export interface ProxyComponentOptions {
  input: ProxyInput;
  config: ProxyConfig;
  logger: Logger;
  nodeName: string;
  nodeIPs: string[];
  exec?: CommandRunner;
  clock?: Clock;
  /** Where health-check node ports listen (default 0.0.0.0; tests use 127.0.0.1). */
  healthCheckBindHost?: string;
  /** Called after each successful full sync (the daemon returns that sync's garbage to the OS). */
  afterFullSync?: () => void;
}

export interface ProxyComponent {
  readonly name: 'proxy';
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): ProxyHealth;
  /** The mode in use (after start). */
  mode(): ProxyMode | undefined;
  /**
   * Resolves once every change recorded so far is in the kernel (for tests and tools); with
   * `full`, after a full rewrite of everything the backend owns.
   */
  flush(options?: { full?: boolean }): Promise<void>;
  /** Bound ports of the health and metrics servers (after start). */
  ports(): { healthz?: number; metrics?: number };
}

export function createBackend(mode: ProxyMode, ctx: BackendContext): ProxyBackend {
  if (mode === 'nftables') return createNftablesBackend(ctx);
  if (mode === 'iptables') return createIptablesBackend(ctx);
  if (mode === 'ipvs') return createIpvsBackend(ctx);
  throw new ProxyError(ProxyErrorCodes.MODE_UNSUPPORTED, `proxy mode ${mode} is not implemented in this build; use nftables`, { object: `mode=${mode}` });
}

export function createProxyComponent(options: ProxyComponentOptions): ProxyComponent {
  const { input, config, nodeName, nodeIPs } = options;
  const logger = options.logger.child({ component: 'proxy' });
  const exec = options.exec ?? createCommandRunner();
  const clock = options.clock ?? realClock;
  const state = createProxyState({ nodeName, logger });
  const metrics = createProxyMetrics();
  const healthChecks = createServiceHealthServers(options.healthCheckBindHost ?? '0.0.0.0');
  let backend: ProxyBackend | undefined;
  let mode: ProxyMode | undefined;
  let lastSyncOk = 0;
  let lastError: string | undefined;
  let unsubscribers: (() => void)[] = [];
  let servers: Listening[] = [];
  let healthzPort: number | undefined;
  let metricsPort: number | undefined;
  let lastState: DesiredState | undefined;
  let pendingChanged = new Set<string>();
  let pendingPrevious = new Map<string, import('./desiredstate').ServicePortState[]>();
  let pendingTriggers: number[] = [];
  let started = false;

  const synced = () => input.services.hasSynced() && input.endpointSlices.hasSynced() && (input.nodes?.hasSynced() ?? true);

  async function syncLocked(kind: SyncKind): Promise<SyncOutcome> {
    if (!backend || !synced()) return 'deferred';
    const full = kind === 'full';
    const t0 = performance.now();
    // The desired state is kept up to date change by change: a full sync rewrites the kernel from
    // it, and need not rebuild all of it (at 10 000 Services that is 20 MB of garbage per full sync).
    const built = state.build();
    for (const k of built.changed) pendingChanged.add(k);
    for (const [k, v] of built.previous) if (!pendingPrevious.has(k)) pendingPrevious.set(k, v);
    pendingTriggers.push(...state.lastTriggerTimes());
    lastState = built.state;
    let rewrote = full;
    try {
      const stats = await backend.sync({ state: built.state, changed: pendingChanged, full, ...(kind === 'verify' ? { verify: true } : {}) });
      if (stats.drift !== undefined) {
        // The changes stay pending: the full sync the runner starts now applies them too.
        logger.warn({ mode, reason: stats.drift }, 'proxy rules in the kernel differ from what was written; full resync');
        return 'drift';
      }
      metrics.rules = stats.rules;
      rewrote = full || stats.rewrote === true;
    } catch (err) {
      metrics.syncErrors++;
      // one error line per failing spell; the retries (counted in metrics) at debug
      if (lastError === undefined) logger.error({ err, mode, kind }, 'proxy sync failed; will retry with a full sync');
      else logger.debug({ err, mode, kind }, 'proxy sync failed again');
      lastError = (err as Error).message || 'error';
      return 'failed';
    }
    const changed = pendingChanged;
    const previous = pendingPrevious;
    pendingChanged = new Set();
    pendingPrevious = new Map();
    const seconds = (performance.now() - t0) / 1000;
    metrics.syncDuration.observe(seconds);
    const now = clock.now();
    for (const t of pendingTriggers) metrics.programmingLatency.observe(Math.max(0, (now - t) / 1000));
    pendingTriggers = [];
    lastSyncOk = now;
    metrics.lastSyncSeconds = now / 1000;
    if (lastError !== undefined) logger.info({ mode, kind }, 'proxy sync succeeds again');
    lastError = undefined;
    logger[rewrote ? 'info' : 'debug']({ mode, kind: rewrote ? 'full' : kind, services: changed.size, seconds: Math.round(seconds * 1000) / 1000 }, 'proxy rules synced');
    if (rewrote) options.afterFullSync?.();
    if (config.conntrack.udpStaleFlowCleanup) {
      for (const key of changed) {
        const cmds = staleFlowCommands(previous.get(key), built.state.services.get(key));
        if (cmds.length) await clearStaleFlows(exec, logger, key, cmds);
      }
    }
    await syncHealthChecks(built.state);
    return 'ok';
  }

  async function syncHealthChecks(desired: DesiredState) {
    const wanted = new Map<number, { service: string; localEndpoints: number }>();
    for (const ports of desired.services.values()) {
      for (const p of ports) {
        if (p.healthCheckNodePort === undefined) continue;
        const prev = wanted.get(p.healthCheckNodePort);
        wanted.set(p.healthCheckNodePort, { service: p.service, localEndpoints: Math.max(prev?.localEndpoints ?? 0, p.localReady) });
      }
    }
    await healthChecks.sync(wanted, (port, err) => logger.warn({ port, err }, 'health check node port unavailable'));
  }

  const runner = createSyncRunner({
    minIntervalMs: config.minSyncPeriodMs,
    maxIntervalMs: config.syncPeriodMs,
    fullIntervalMs: config.fullSyncPeriodMs,
    clock,
    run: syncLocked,
  });

  function handler<T>(record: (prev: T | undefined, cur: T | undefined) => void): FeedHandler<T> {
    return {
      onAdd: (obj) => {
        record(undefined, obj);
        runner.request();
      },
      onUpdate: (oldObj, newObj) => {
        record(oldObj, newObj);
        runner.request();
      },
      onDelete: (obj) => {
        record(obj, undefined);
        runner.request();
      },
      // The first sync is full anyway; a relist does not need a rewrite of everything.
      onSynced: () => runner.request(),
    };
  }

  function healthy(): boolean {
    if (!started || lastSyncOk === 0) return false;
    return clock.now() - lastSyncOk <= 2 * config.syncPeriodMs + config.minSyncPeriodMs;
  }

  const component: ProxyComponent = {
    name: 'proxy',
    async start() {
      mode = await chooseMode(config.mode, exec, logger);
      backend = createBackend(mode, { exec, logger, config, nodeIPs });
      started = true;
      unsubscribers = [
        input.services.subscribe(handler((p, c) => state.recordService(p, c))),
        input.endpointSlices.subscribe(handler((p, c) => state.recordEndpointSlice(p, c))),
      ];
      if (input.nodes) unsubscribers.push(input.nodes.subscribe(handler((_p, c) => state.recordNode(c))));
      if (config.healthzBindAddress) {
        const s = await listen(config.healthzBindAddress, (path) => {
          if (path !== '/healthz' && path !== '/livez') return { status: 404, body: 'not found\n', type: 'text/plain' };
          const ok = healthy();
          const body = JSON.stringify({
            lastUpdated: lastSyncOk ? new Date(lastSyncOk).toISOString() : '',
            currentTime: new Date(clock.now()).toISOString(),
            nodeName,
          });
          return { status: ok ? 200 : 503, body };
        });
        servers.push(s);
        healthzPort = s.port;
      }
      if (config.metricsBindAddress) {
        const s = await listen(config.metricsBindAddress, (path) => {
          if (path === '/metrics') return { status: 200, body: metrics.render(), type: 'text/plain; version=0.0.4' };
          if (path === '/proxyMode') return { status: 200, body: mode ?? '', type: 'text/plain' };
          return { status: 404, body: 'not found\n', type: 'text/plain' };
        });
        servers.push(s);
        metricsPort = s.port;
      }
      runner.start();
      runner.requestFull();
      logger.info({ mode, nodeName }, 'service proxy started');
    },
    async stop() {
      for (const u of unsubscribers) u();
      unsubscribers = [];
      await runner.stop();
      for (const s of servers) await s.close();
      servers = [];
      await healthChecks.close();
      started = false;
    },
    health() {
      const ok = healthy();
      return {
        name: 'proxy',
        healthy: ok,
        ...(ok ? { message: `${mode} rules in sync` } : { message: lastError ?? (lastSyncOk ? 'syncs stopped succeeding' : 'no successful sync yet') }),
        ...(lastSyncOk ? { lastSyncTime: new Date(lastSyncOk).toISOString() } : {}),
        details: { mode, services: lastState?.services.size ?? 0, rules: metrics.rules },
      };
    },
    mode: () => mode,
    async flush(options = {}) {
      // Through the runner, so a run it has due (the first full sync after start()) is this one,
      // not a second one right after it.
      await runner.idle();
      if (options.full) runner.requestFull();
      else if (state.pending() > 0 || pendingChanged.size > 0) runner.request();
      // Drift or a failure makes the runner repair with a full sync: wait for that one too.
      if ((await runner.runNow()) !== 'ok') await runner.runNow();
    },
    ports: () => ({ ...(healthzPort !== undefined ? { healthz: healthzPort } : {}), ...(metricsPort !== undefined ? { metrics: metricsPort } : {}) }),
  };
  return component;
}

/** `keelson cleanup`: removes every rule, chain, table and set netproxy owns, in one mode or all. */
export async function cleanup(mode: ProxyMode | 'all', options: { exec?: CommandRunner; logger: Logger }): Promise<void> {
  const exec = options.exec ?? createCommandRunner();
  const modes: ProxyMode[] = mode === 'all' ? ['nftables', 'iptables', 'ipvs'] : [mode];
  for (const m of modes) {
    try {
      if (m === 'nftables') await cleanupNftables(exec);
      else if (m === 'iptables') await cleanupIptables(exec, options.logger);
      else if (m === 'ipvs') await cleanupIpvs(exec);
      options.logger.info({ mode: m }, 'proxy rules removed');
    } catch (err) {
      options.logger.warn({ mode: m, err }, 'proxy cleanup incomplete');
      if (mode !== 'all') throw err;
    }
  }
}
