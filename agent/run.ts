/**
 * `keelson run`: wires the components the operator asked for, reports their health (state file for
 * `keelson status`, healthz on 127.0.0.1:10248), and stops them on SIGTERM/SIGINT without touching
 * the pods (containers survive a restart of keelson).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createCriClient, type CriClient } from '../cri/client';
import { parseDnsConfig } from '../dns/config';
import { parseProxyConfig } from '../netproxy/config';
import { createStaticPodsComponent, type KubeletComponent, type KubeletConfig } from './pods';
import type { Component, ComponentHealth } from './component';
import { createHealthzServer } from './server/healthz';
import { ErrorCodes, errorMessage, KeelsonError } from './errors';
import type { KeelsonConfig } from './config';
import type { InformerFactory } from './kube/informer-factory';
import { releaseMemory, scheduleMemoryRelease } from './memory';
import { detectNodeIP } from './node-ip';
import { writeDaemonState, type DaemonState, type PodStatusView } from './state-file';
import { keelsonVersion } from './version';
import { createNotifier } from '../systemd/notify';
import { hostShuttingDown } from '../systemd/shutdown';

const STATE_WRITE_INTERVAL_MS = 2000;
/** After the informers' first sync, time for the components' first syncs before memory is released. */
const START_UP_RELEASE_DELAY_MS = 10_000;

/** One line for systemd's STATUS= (`systemctl status keelson`): what runs, and what is unhealthy. */
export function serviceStatusLine(health: ComponentHealth[]): string {
  const bad = health.filter((h) => !h.healthy);
  if (!bad.length) return `running: ${health.map((h) => h.name).join(', ') || 'no components'} healthy`;
  return `running; unhealthy: ${bad.map((h) => `${h.name}${h.message ? ` (${h.message})` : ''}`).join('; ')}`;
}

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

function podViews(kubelet: KubeletComponent | undefined): PodStatusView[] {
  if (!kubelet) return [];
  return kubelet.pods().map((p) => ({
    namespace: p.namespace,
    name: p.name,
    uid: p.uid,
    phase: p.phase,
    ...(p.podIP ? { podIP: p.podIP } : {}),
    source: p.file ? `file ${p.file}` : p.source,
    containers: p.containers.map((c) => ({
      name: c.name,
      state: c.state,
      ...(c.ready !== undefined ? { ready: c.ready } : {}),
      restartCount: c.restartCount,
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.containerID ? { containerID: c.containerID } : {}),
      image: c.image,
    })),
  }));
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
  const mode: DaemonState['mode'] = config.kubeconfig ? 'cluster' : 'standalone';
  const nodeIP = config.nodeIP ?? detectNodeIP();
  const startedAt = new Date().toISOString();
  const components: Component[] = [];
  let kubelet: KubeletComponent | undefined;
  let cri: CriClient | undefined;
  let informers: InformerFactory | undefined;
  let kubeletConfig: KubeletConfig | undefined;

  if (config.components.includes('kubelet')) {
    cri = createCriClient({ endpoint: config.kubelet.containerRuntimeEndpoint, slowTimeoutMs: config.kubelet.runtimeRequestTimeoutMs, logger: rootLogger.child({ component: 'cri' }) });
    kubeletConfig = {
      staticPodPath: config.kubelet.staticPodPath,
      podLogsDir: config.kubelet.podLogsDir,
      rootDir: config.rootDir,
      nodeName: config.nodeName,
      ...(nodeIP ? { nodeIP } : {}),
      resolvConf: config.kubelet.resolvConf,
      fileCheckFrequencyMs: config.kubelet.fileCheckFrequencyMs,
      clusterDNS: config.kubelet.clusterDNS,
      clusterDomain: config.kubelet.clusterDomain,
      seccompDefault: config.kubelet.seccompDefault,
      imageGC: { highThresholdPercent: config.kubelet.imageGCHighThresholdPercent, lowThresholdPercent: config.kubelet.imageGCLowThresholdPercent },
    };
    // cluster mode: the kubelet with the apiserver's pods is made below, once the client exists
    if (mode === 'standalone') {
      kubelet = createStaticPodsComponent({ cri, logger: rootLogger, config: kubeletConfig });
      components.push(kubelet);
    }
  }

  const clusterComponents = config.components.filter((c) => c !== 'kubelet');
  if (mode === 'standalone' && clusterComponents.length) {
    logger.info({ components: clusterComponents.join(',') }, 'standalone mode (no kubeconfig): proxy and dns serve a cluster and are not started');
  }
  if (mode === 'cluster' && (clusterComponents.length || kubeletConfig)) {
    // Loaded only when needed, so a standalone kubelet does not pay for them in memory.
    const { createKubeClient } = await import('./kube/client.js');
    const { createInformerFactory } = await import('./kube/informer-factory.js');
    const { loadKubeconfig } = await import('./kube/kubeconfig.js');
    const kubeconfig = loadKubeconfig(config.kubeconfig!);
    void notifier.status(`connecting to apiserver ${kubeconfig.server}`);
    const client = createKubeClient(kubeconfig, { logger: rootLogger.child({ component: 'kube' }), userAgent: `keelson/${keelsonVersion()} (${config.nodeName})` });
    informers = createInformerFactory({ client, logger: rootLogger.child({ component: 'kube' }) });
    if (cri && kubeletConfig) {
      // static pods + the pods bound to this node (admission, status, events, mirror pods, checkpoints)
      const { createClusterKubeletComponent } = await import('./pods/cluster-kubelet.js');
      kubelet = createClusterKubeletComponent({
        cri, client, informers, logger: rootLogger, config: kubeletConfig, nodeLabels: config.kubelet.nodeLabels, maxPods: config.kubelet.maxPods,
      });
      components.push(kubelet);
      // Pod network out of the box: a bridge CNI config once the Node has a pod CIDR and the runtime has none.
      const { watchNodePodCidr } = await import('./pods/node-pod-cidr.js');
      const { createCriRuntime } = await import('./pods/cri-runtime.js');
      const { Resources: R } = await import('./kube/resources.js');
      watchNodePodCidr({
        nodes: informers.forResource(R.nodes, { fieldSelector: `metadata.name=${config.nodeName}` }),
        nodeName: config.nodeName,
        runtime: createCriRuntime(cri),
        logger: rootLogger.child({ component: 'kubelet' }),
      });
    }
    // Node registration, Lease heartbeat, node status and client certificate rotation (agent/node).
    if (kubelet && cri && config.kubelet.registerNode) {
      const { createNodeComponent } = await import('./node/index.js');
      const pods = kubelet;
      const certPath = kubeconfig.source?.clientCertificatePath;
      components.push(
        createNodeComponent({
          client,
          cri,
          logger: rootLogger,
          config: {
            nodeName: config.nodeName,
            ...(nodeIP ? { nodeIP } : {}),
            labels: config.kubelet.nodeLabels,
            taints: config.kubelet.registerWithTaints,
            maxPods: config.kubelet.maxPods,
            systemReserved: config.kubelet.systemReserved,
            kubeReserved: config.kubelet.kubeReserved,
            evictionHard: config.kubelet.evictionHard,
            leaseDurationSeconds: config.kubelet.nodeLeaseDurationSeconds,
            statusUpdateFrequencyMs: config.kubelet.nodeStatusUpdateFrequencyMs,
            statusReportFrequencyMs: config.kubelet.nodeStatusReportFrequencyMs,
            kubeletPort: config.kubelet.port,
            rootDir: config.rootDir,
          },
          podLifecycleHealth: () => pods.health(),
          ...(certPath && certPath === kubeconfig.source?.clientKeyPath ? { clientCertificate: { path: certPath } } : {}),
        }),
      );
    }
    // kubelet API (address:port, default :10250): logs, exec, attach, port-forward, pods, metrics, stats (agent/server)
    if (kubelet && cri) {
      const { createKubeletServer, createApiReviewer } = await import('./server/index.js');
      const statusManager = kubelet.statusManager;
      components.push(
        createKubeletServer({
          nodeName: config.nodeName,
          address: config.kubelet.address,
          port: config.kubelet.port,
          nodeIPs: nodeIP ? [nodeIP] : [],
          rootDir: config.rootDir,
          podLogsDir: config.kubelet.podLogsDir,
          ...(kubeconfig.certificateAuthority ? { clientCA: kubeconfig.certificateAuthority } : {}),
          reviewer: createApiReviewer(client, { logger: rootLogger.child({ component: 'kubelet-api' }) }),
          cri,
          source: { pods: () => statusManager.pods(), onPodStatus: (handler) => statusManager.onChange(handler) },
          logger: rootLogger,
        }),
      );
    }
    // Say at start-up exactly which permission the node's credentials lack, and the fix.
    const { checkPermissions } = await import('./node/rbac.js');
    checkPermissions(client, config.components, { nodeName: config.nodeName }).then(
      (report) => {
        if (!report.ok) logger.error({ missing: report.missing.map((m) => `${m.verb} ${m.resource}${m.group ? `.${m.group}` : ''}`).join(',') }, report.message);
      },
      (err: unknown) => logger.warn({ err }, 'cannot check the node permissions (SelfSubjectAccessReview)'),
    );
  }
  if (mode === 'cluster' && clusterComponents.length && informers) {
    const { clusterFeeds } = await import('./cluster-feeds.js');
    const { services, endpointSlices, pods, namespaces } = clusterFeeds(informers, config.components);
    if (config.components.includes('proxy')) {
      const { createProxyComponent } = await import('../netproxy/index.js');
      components.push(
        createProxyComponent({
          input: { services, endpointSlices },
          config: settings.proxy,
          logger: rootLogger,
          nodeName: config.nodeName,
          nodeIPs: nodeIP ? [nodeIP] : [],
          afterFullSync: () => scheduleMemoryRelease('proxy full sync', logger),
        }),
      );
    }
    if (config.components.includes('dns')) {
      const { createDnsComponent } = await import('../dns/component.js');
      components.push(
        createDnsComponent({ input: { services, endpointSlices, pods: pods!, namespaces: namespaces! }, config: settings.dns, logger: rootLogger, checkpointDir: join(config.rootDir, 'checkpoints') }),
      );
    }
    informers.start();
  }

  logger.info(
    {
      version: keelsonVersion(),
      node: config.nodeName,
      mode,
      components: config.components.join(','),
      runtime: config.kubelet.containerRuntimeEndpoint,
      proxyMode: config.components.includes('proxy') && mode === 'cluster' ? settings.proxy.mode ?? 'auto' : 'off',
      dns: config.components.includes('dns') && mode === 'cluster' ? settings.dns.listen.join(',') : 'off',
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

  const health = (): ComponentHealth[] => [
    ...components.map((c) => (startErrors.has(c.name) ? { name: c.name, healthy: false, message: `failed to start: ${startErrors.get(c.name)}` } : c.health())),
    ...(informers ? informers.health() : []),
  ];
  const state = (stopped = false): DaemonState => ({
    pid: process.pid,
    version: keelsonVersion(),
    nodeName: config.nodeName,
    mode,
    startedAt,
    updatedAt: new Date().toISOString(),
    ...(stopped ? { stopped } : {}),
    components: health(),
    pods: podViews(kubelet),
    problems: kubelet ? kubelet.manifestProblems().map((p) => `${p.file}${p.document !== undefined ? ` (document ${p.document})` : ''}: ${p.field}: ${p.message}`) : [],
    // For `keelson status`: where the node's credentials are, and where the DNS answers.
    extra: {
      ...(config.kubeconfig ? { kubeconfig: config.kubeconfig } : {}),
      dnsAddresses: mode === 'cluster' && config.components.includes('dns') ? settings.dns.listen.map((a) => `${a.includes(':') ? `[${a}]` : a}:${settings.dns.port}`) : [],
    },
  });
  let stateFailing = false;
  const writeState = (stopped = false) => {
    try {
      writeDaemonState(config.rootDir, state(stopped));
      stateFailing = false;
    } catch (err) {
      // Once per outage, not every STATE_WRITE_INTERVAL_MS.
      if (!stateFailing) logger.warn({ err, rootDir: config.rootDir }, 'cannot write daemon state for keelson status');
      stateFailing = true;
    }
  };
  writeState();
  let statusLine = '';
  const reportStatus = () => {
    const line = serviceStatusLine(health());
    if (line !== statusLine) void notifier.status(line);
    statusLine = line;
  };
  const stateTimer = setInterval(() => {
    writeState();
    reportStatus();
  }, STATE_WRITE_INTERVAL_MS);
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
  // Ready once every loop runs, even with the runtime or the apiserver down (as upstream kubelet):
  // those show in health, STATUS= and the node's conditions, and systemd must not time the start out.
  statusLine = serviceStatusLine(health());
  void notifier.ready(statusLine);
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
  clearInterval(stateTimer);
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
  writeState(true);
  stopWatchdog();
  logger.info('keelson stopped');
  return 0;
}
