/**
 * The DNS component: wires the feed into the ZoneIndex, the stages (in order: kubernetes → cache →
 * forward), the sockets, the HTTP endpoints and the checkpoint. Matches agent/component.ts
 * structurally (name, start, stop, health) without importing agent/.
 */
import type { Logger } from 'pino';
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { createCacheStage, type CacheStage } from './cache';
import { readCheckpoint, writeCheckpoint } from './checkpoint';
import { type DnsConfig, parseUpstream } from './config';
import { ensureLocalAddress, needsManagedAddress, type RunCommand } from './address';
import { createForwardStage, type ForwardStage, type UpstreamAddress } from './forward';
import { composeStages, type Handler, type Stage } from './handler';
import { createHttpEndpoints, type HttpEndpoints } from './http';
import type { DnsInput, Feed, FeedHandler } from './input';
import { createKubernetesStage } from './kubernetes';
import { createDnsMetrics, type DnsMetrics } from './metrics';
import { createPacketHandler, type PacketHandler } from './query';
import { createZoneIndex, type ZoneIndex } from './records';
import { upstreamsFromResolvConf } from './resolvconf';
import { DnsErrorCodes } from './errors';
import { createDnsServer, type BoundAddress, type DnsServer } from './server';

export interface DnsComponentHealth {
  name: string;
  healthy: boolean;
  message?: string;
  lastSyncTime?: string;
  details?: Record<string, unknown>;
}

export interface DnsComponentOptions {
  input: DnsInput;
  config: DnsConfig;
  logger: Logger;
  checkpointDir?: string;
  /** Runs `ip` to create the node-local address; injected so tests run it inside a netns. */
  runCommand?: RunCommand;
}

export interface DnsComponent {
  readonly name: 'dns';
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): DnsComponentHealth;
  /** Where the DNS sockets and HTTP endpoints are bound (ports resolved when 0 was asked). */
  endpoints(): { dns: BoundAddress[]; http: Record<string, number> };
  /** The in-process packet handler, the same the sockets use (tests, fuzzing). */
  handlePacket: PacketHandler;
  /** The composed handler chain. */
  handler: Handler;
  ready(): boolean;
  index: ZoneIndex;
  metrics: DnsMetrics;
}

function objKey(o: { metadata?: { namespace?: string; name?: string } }): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

export function createDnsComponent(opts: DnsComponentOptions): DnsComponent {
  const { input, config, logger } = opts;
  const log = logger.child({ component: 'dns' });
  const metrics = createDnsMetrics(`dns://${config.listen[0]}:${config.port}`, '.');
  const index = createZoneIndex(config.clusterDomain);
  if (input.namespaces) index.useNamespaceObjects();

  let synced = false;
  let fromCheckpoint = false;
  let lastSyncTime: string | undefined;
  let checkpointTimer: NodeJS.Timeout | undefined;
  let checkpointDirty = false;
  const unsubscribes: (() => void)[] = [];

  const feeds: { feed: Feed<unknown>; synced: boolean }[] = [];

  const upstreams: UpstreamAddress[] = (config.upstreams.length ? config.upstreams : upstreamsFromResolvConf(config.resolvConf))
    .map((u) => parseUpstream(u))
    .filter((u): u is UpstreamAddress => u !== undefined)
    // Never forward to ourselves.
    .filter((u) => !(config.listen.includes(u.host) && u.port === config.port));

  const kubernetes = createKubernetesStage({
    index, ttl: config.ttl, podMode: config.pods, ready: () => synced || fromCheckpoint,
    nameserverIPs: config.listen,
  });
  let cache: CacheStage | undefined;
  let forward: ForwardStage | undefined;
  if (config.forward) {
    cache = createCacheStage({ size: config.cacheSize, maxTtl: config.cacheMaxTtl, negativeTtl: config.cacheNegativeTtl, prefetchHits: config.prefetchHits, prefetchPercent: config.prefetchPercent, metrics });
    forward = createForwardStage({ upstreams, timeoutMs: config.forwardTimeoutMs, maxFails: config.maxFails, healthCheckIntervalMs: config.healthCheckIntervalMs, ednsBufferSize: config.ednsBufferSize, logger: log, metrics });
  }
  // The order of the stages, in one place.
  const stages: Stage[] = [kubernetes, ...(cache && forward ? [cache, forward] : [])];
  const handler = composeStages(stages);
  // An internal failure answers SERVFAIL; say so once per distinct error a minute, not once per query.
  const queryFailures = new Map<string, { at: number; suppressed: number }>();
  function queryFailed(err: unknown, name: string | undefined): void {
    const key = err instanceof Error ? err.message : String(err);
    const now = Date.now();
    const seen = queryFailures.get(key);
    if (seen && now - seen.at < 60_000) {
      seen.suppressed++;
      return;
    }
    if (queryFailures.size > 100) queryFailures.clear();
    queryFailures.set(key, { at: now, suppressed: 0 });
    log.warn({ err, name, ...(seen?.suppressed ? { sameErrorSinceLastLine: seen.suppressed } : {}) }, 'dns query failed');
  }
  const handlePacket = createPacketHandler({
    handler, ednsBufferSize: config.ednsBufferSize, recursionAvailable: config.forward, metrics,
    observe: forward ? (q) => forward.observe(q) : undefined,
    onError: (err, q) => queryFailed(err, q.questions[0]?.name),
    // Keyed on the query bytes; readiness is part of the generation so SERVFAIL-before-sync never sticks.
    responseCache: { size: 10000, generation: () => index.generation() * 2 + (synced || fromCheckpoint ? 1 : 0) },
  });
  const server: DnsServer = createDnsServer({ addresses: config.listen, port: config.port, handle: handlePacket, logger: log, maxTcpConnections: config.maxTcpConnections, tcpIdleTimeoutMs: config.tcpIdleTimeoutMs });
  const healthAddress = config.healthAddress ?? config.listen[0]!;
  const httpEndpoints: HttpEndpoints = createHttpEndpoints([
    { path: '/health', address: healthAddress, port: config.healthPort, handle: () => (server.listening() ? { status: 200, body: 'OK' } : { status: 503, body: 'dns server not listening' }) },
    { path: '/ready', address: healthAddress, port: config.readyPort, handle: () => (server.listening() && (synced || fromCheckpoint) ? { status: 200, body: 'OK' } : { status: 503, body: 'dns records not synced' }) },
    { path: '/metrics', address: config.metricsAddress ?? config.listen[0]!, port: config.metricsPort, handle: () => ({ status: 200, body: metrics.render(), type: 'text/plain; version=0.0.4; charset=utf-8' }) },
  ], log);

  function scheduleCheckpoint(): void {
    if (!opts.checkpointDir || !synced) return;
    checkpointDirty = true;
    if (checkpointTimer) return;
    checkpointTimer = setTimeout(() => void flushCheckpoint(), config.checkpointIntervalMs);
    checkpointTimer.unref();
  }

  /** The write in flight, so stop() waits for it (and a second write never races the first). */
  let checkpointWrite: Promise<void> = Promise.resolve();
  let checkpointFailing = false;

  function flushCheckpoint(): Promise<void> {
    checkpointTimer = undefined;
    checkpointWrite = checkpointWrite.then(async () => {
      if (!opts.checkpointDir || !checkpointDirty) return;
      checkpointDirty = false;
      try {
        await writeCheckpoint(opts.checkpointDir, index.objects());
        if (checkpointFailing) log.info({ dir: opts.checkpointDir }, 'dns checkpoint written again');
        checkpointFailing = false;
      } catch (err) {
        // One line per outage (disk full, read-only), not one per write attempt.
        if (!checkpointFailing) log.warn({ err, dir: opts.checkpointDir }, 'dns checkpoint not written');
        checkpointFailing = true;
      }
    });
    return checkpointWrite;
  }

  /** Drops objects that came from the checkpoint but are gone from the synced feed. */
  function pruneStale(): void {
    const live = (f: Feed<unknown> | undefined) => new Set((f?.list() ?? []).map((o) => objKey(o as Service)));
    const objs = index.objects();
    const svcs = live(input.services as Feed<unknown>);
    for (const s of objs.services) if (!svcs.has(objKey(s))) index.deleteService(s);
    const slices = live(input.endpointSlices as Feed<unknown>);
    for (const s of objs.endpointSlices) if (!slices.has(objKey(s))) index.deleteSlice(s);
    if (input.pods) { const pods = live(input.pods as Feed<unknown>); for (const p of objs.pods) if (!pods.has(objKey(p))) index.deletePod(p as Pod); }
    if (input.namespaces) { const nss = live(input.namespaces as Feed<unknown>); for (const n of objs.namespaces) if (!nss.has(objKey(n))) index.deleteNamespace(n); }
  }

  function checkSynced(): void {
    if (synced || !feeds.every((f) => f.synced || f.feed.hasSynced())) return;
    if (fromCheckpoint) pruneStale();
    synced = true;
    lastSyncTime = new Date().toISOString();
    log.info({ ...index.stats() }, 'dns records synced');
    scheduleCheckpoint();
  }

  function subscribe<T>(feed: Feed<T>, apply: { upsert(o: T): void; remove(o: T): void }): void {
    const entry = { feed: feed as Feed<unknown>, synced: false };
    feeds.push(entry);
    // A malformed object is reported and skipped; it never reaches the feed's caller as an exception.
    const guarded = (fn: (o: T) => void) => (o: T) => {
      try {
        fn(o);
      } catch (err) {
        log.warn({ err, code: DnsErrorCodes.DNS_BAD_OBJECT, object: objKey(o as Service) }, 'dns skipped a malformed object');
      }
      scheduleCheckpoint();
    };
    const upsert = guarded((o) => apply.upsert(o));
    const remove = guarded((o) => apply.remove(o));
    const h: FeedHandler<T> = {
      onAdd: upsert,
      onUpdate: (_old, o) => upsert(o),
      onDelete: remove,
      onSynced: () => { entry.synced = true; checkSynced(); },
    };
    unsubscribes.push(feed.subscribe(h));
  }

  const applyService = {
    upsert(svc: Service) {
      const problem = index.upsertService(svc);
      if (problem) log.warn({ service: objKey(svc), reason: problem }, 'service skipped: no DNS records');
    },
    remove: (svc: Service) => index.deleteService(svc),
  };

  return {
    name: 'dns',
    handlePacket,
    handler,
    index,
    metrics,
    ready: () => synced || fromCheckpoint,
    async start() {
      if (config.manageAddress) {
        for (const ip of config.listen.filter(needsManagedAddress)) {
          if (await ensureLocalAddress(ip, config.interface, opts.runCommand)) log.info({ address: ip, interface: config.interface }, 'dns node-local address added');
        }
      }
      if (opts.checkpointDir && !(input.services.hasSynced() && input.endpointSlices.hasSynced())) {
        try {
          const cp = await readCheckpoint(opts.checkpointDir);
          if (cp) {
            const each = <T>(list: T[], fn: (o: T) => void) => {
              for (const o of list) {
                try { fn(o); } catch (err) { log.warn({ err, code: DnsErrorCodes.DNS_BAD_OBJECT, object: objKey(o as Service) }, 'dns skipped a malformed checkpoint object'); }
              }
            };
            each(cp.services, (s) => applyService.upsert(s));
            each(cp.endpointSlices, (s) => index.upsertSlice(s));
            each(cp.pods, (p) => index.upsertPod(p));
            each(cp.namespaces, (n) => index.upsertNamespace(n));
            fromCheckpoint = true;
            log.info({ savedAt: cp.savedAt, ...index.stats() }, 'dns answering from checkpoint until the feed syncs');
          }
        } catch (err) {
          log.warn({ err }, 'dns checkpoint ignored');
        }
      }
      subscribe<Service>(input.services, applyService);
      subscribe<EndpointSlice>(input.endpointSlices, { upsert: (s) => index.upsertSlice(s), remove: (s) => index.deleteSlice(s) });
      if (input.pods) subscribe<Pod>(input.pods, { upsert: (p) => index.upsertPod(p), remove: (p) => index.deletePod(p) });
      else if (config.pods === 'verified') log.info('dns pods verified but no pod feed: pod names get NXDOMAIN');
      if (input.namespaces) subscribe<Namespace>(input.namespaces, { upsert: (n) => index.upsertNamespace(n), remove: (n) => index.deleteNamespace(n) });
      checkSynced();
      if (forward) {
        if (upstreams.length === 0) log.warn({ resolvConf: config.resolvConf }, 'dns forwarding on but no upstream found');
        forward.start();
      }
      await server.start();
      try {
        await httpEndpoints.start();
      } catch (err) {
        await server.stop();
        throw err;
      }
      forward?.probeLoops();
    },
    async stop() {
      for (const u of unsubscribes.splice(0)) u();
      await httpEndpoints.stop();
      await server.stop();
      await forward?.stop();
      if (checkpointTimer) clearTimeout(checkpointTimer);
      await flushCheckpoint();
    },
    health() {
      const ready = synced || fromCheckpoint;
      const listening = server.listening();
      const ups = forward?.upstreams() ?? [];
      const healthy = listening && ready;
      const message = !listening ? 'dns server not listening' : !ready ? 'waiting for the first sync of services and endpoint slices' : synced ? `serving ${index.stats().services} services` : 'serving from checkpoint (feed not synced)';
      return {
        name: 'dns', healthy, message, lastSyncTime,
        details: { ...index.stats(), synced, fromCheckpoint, cacheEntries: cache?.entries() ?? 0, upstreams: ups },
      };
    },
    endpoints: () => ({ dns: server.bound(), http: httpEndpoints.ports() }),
  };
}
