/**
 * Which components `keelson run` builds, and how they are connected: the CRI client, the apiserver
 * client and its shared informers, the kubelet (static pods alone, or with the apiserver's pods, the
 * Node, the kubelet API), and the proxy and DNS fed from the same informer caches. Cluster-only code
 * is loaded only when needed, so a standalone kubelet does not pay for it in memory.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createCriClient, type CriClient } from '../cri/client';
import type { DnsConfig } from '../dns/config';
import type { ProxyConfig } from '../netproxy/config';
import type { Notifier } from '../systemd/notify';
import type { Component } from './component';
import type { KeelsonConfig } from './config';
import type { KubeClient } from './kube/client';
import type { InformerFactory } from './kube/informer-factory';
import type { KubeConfig } from './kube/kubeconfig';
import { scheduleMemoryRelease } from './memory';
import { createStaticPodsComponent, type KubeletComponent, type KubeletConfig } from './pods';
import { keelsonVersion } from './version';

export type DaemonMode = 'cluster' | 'standalone';

export interface Wiring {
  mode: DaemonMode;
  components: Component[];
  kubelet?: KubeletComponent;
  cri?: CriClient;
  informers?: InformerFactory;
}

interface WiringContext {
  config: KeelsonConfig;
  settings: { dns: DnsConfig; proxy: ProxyConfig };
  nodeIP: string | undefined;
  rootLogger: Logger;
  logger: Logger;
  notifier: Pick<Notifier, 'status'>;
}

function kubeletConfigOf(config: KeelsonConfig, nodeIP: string | undefined): KubeletConfig {
  return {
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
}

/** The kubelet in cluster mode: pods from the apiserver and static pods, pod network, Node, kubelet API. */
async function wireClusterKubelet(ctx: WiringContext, cri: CriClient, client: KubeClient, kubeconfig: KubeConfig, informers: InformerFactory): Promise<{ kubelet: KubeletComponent; components: Component[] }> {
  const { config, nodeIP, rootLogger } = ctx;
  const components: Component[] = [];
  // static pods + the pods bound to this node (admission, status, events, mirror pods, checkpoints)
  const { createClusterKubeletComponent } = await import('./pods/cluster-kubelet.js');
  const kubelet = createClusterKubeletComponent({
    cri, client, informers, logger: rootLogger, config: kubeletConfigOf(config, nodeIP), nodeLabels: config.kubelet.nodeLabels, maxPods: config.kubelet.maxPods,
  });
  components.push(kubelet);
  // Pod network out of the box: a bridge CNI config once the Node has a pod CIDR and the runtime has none.
  const { watchNodePodCidr } = await import('./pods/node-pod-cidr.js');
  const { createCriRuntime } = await import('./pods/cri-runtime.js');
  const { Resources } = await import('./kube/resources.js');
  watchNodePodCidr({
    nodes: informers.forResource(Resources.nodes, { fieldSelector: `metadata.name=${config.nodeName}` }),
    nodeName: config.nodeName,
    runtime: createCriRuntime(cri),
    logger: rootLogger.child({ component: 'kubelet' }),
  });
  // Node registration, Lease heartbeat, node status and client certificate rotation (agent/node).
  if (config.kubelet.registerNode) {
    const { createNodeComponent } = await import('./node/index.js');
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
        podLifecycleHealth: () => kubelet.health(),
        ...(certPath && certPath === kubeconfig.source?.clientKeyPath ? { clientCertificate: { path: certPath } } : {}),
      }),
    );
  }
  // kubelet API (address:port, default :10250): logs, exec, attach, port-forward, pods, metrics, stats (agent/server)
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
  return { kubelet, components };
}

/** The proxy and the DNS, fed from the shared informer caches. */
async function wireServiceComponents(ctx: WiringContext, informers: InformerFactory): Promise<Component[]> {
  const { config, settings, nodeIP, rootLogger, logger } = ctx;
  const components: Component[] = [];
  const { clusterFeeds } = await import('./cluster-feeds.js');
  const { services, endpointSlices, pods, namespaces } = clusterFeeds(informers, config.components, { dnsPodRecords: settings.dns.pods });
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
  if (config.components.includes('dns') && namespaces) {
    const { createDnsComponent } = await import('../dns/component.js');
    components.push(
      createDnsComponent({ input: { services, endpointSlices, namespaces, ...(pods ? { pods } : {}) }, config: settings.dns, logger: rootLogger, checkpointDir: join(config.rootDir, 'checkpoints') }),
    );
  }
  return components;
}

export async function wireComponents(ctx: WiringContext): Promise<Wiring> {
  const { config, rootLogger, logger, notifier } = ctx;
  const mode: DaemonMode = config.kubeconfig ? 'cluster' : 'standalone';
  const wiring: Wiring = { mode, components: [] };
  if (config.components.includes('kubelet')) {
    wiring.cri = createCriClient({ endpoint: config.kubelet.containerRuntimeEndpoint, slowTimeoutMs: config.kubelet.runtimeRequestTimeoutMs, logger: rootLogger.child({ component: 'cri' }) });
    // cluster mode: the kubelet with the apiserver's pods is made below, once the client exists
    if (mode === 'standalone') {
      wiring.kubelet = createStaticPodsComponent({ cri: wiring.cri, logger: rootLogger, config: kubeletConfigOf(config, ctx.nodeIP) });
      wiring.components.push(wiring.kubelet);
    }
  }
  const serviceComponents = config.components.filter((c) => c !== 'kubelet');
  if (mode === 'standalone') {
    if (serviceComponents.length) logger.info({ components: serviceComponents.join(',') }, 'standalone mode (no kubeconfig): proxy and dns serve a cluster and are not started');
    return wiring;
  }
  if (!wiring.cri && !serviceComponents.length) return wiring;
  const { createKubeClient } = await import('./kube/client.js');
  const { createInformerFactory } = await import('./kube/informer-factory.js');
  const { loadKubeconfig } = await import('./kube/kubeconfig.js');
  const kubeconfig = loadKubeconfig(config.kubeconfig!);
  void notifier.status(`connecting to apiserver ${kubeconfig.server}`);
  const client = createKubeClient(kubeconfig, { logger: rootLogger.child({ component: 'kube' }), userAgent: `keelson/${keelsonVersion()} (${config.nodeName})` });
  const informers = createInformerFactory({ client, logger: rootLogger.child({ component: 'kube' }) });
  wiring.informers = informers;
  if (wiring.cri) {
    const kubelet = await wireClusterKubelet(ctx, wiring.cri, client, kubeconfig, informers);
    wiring.kubelet = kubelet.kubelet;
    wiring.components.push(...kubelet.components);
  }
  // Say at start-up exactly which permission the node's credentials lack, and the fix.
  const { checkPermissions } = await import('./node/rbac.js');
  checkPermissions(client, config.components, { nodeName: config.nodeName }).then(
    (report) => {
      if (!report.ok) logger.error({ missing: report.missing.map((m) => `${m.verb} ${m.resource}${m.group ? `.${m.group}` : ''}`).join(',') }, report.message);
    },
    (err: unknown) => logger.warn({ err }, 'cannot check the node permissions (SelfSubjectAccessReview)'),
  );
  if (serviceComponents.length) wiring.components.push(...(await wireServiceComponents(ctx, informers)));
  informers.start();
  return wiring;
}
