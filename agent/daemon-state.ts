/**
 * What a running daemon tells the operator: the state file `keelson status` reads (every 2 s and
 * at stop) and systemd's STATUS= line, both from the components' health.
 */
import type { Logger } from 'pino';
import type { Notifier } from '../systemd/notify';
import type { Component, ComponentHealth } from './component';
import type { KeelsonConfig } from './config';
import type { InformerFactory } from './kube/informer-factory';
import type { KubeletComponent } from './pods';
import { writeDaemonState, type DaemonState, type PodStatusView } from './state-file';
import { keelsonVersion } from './version';
import type { DaemonMode } from './wiring';

const STATE_WRITE_INTERVAL_MS = 2000;

/** One line for systemd's STATUS= (`systemctl status keelson`): what runs, and what is unhealthy. */
export function serviceStatusLine(health: ComponentHealth[]): string {
  const bad = health.filter((h) => !h.healthy);
  if (!bad.length) return `running: ${health.map((h) => h.name).join(', ') || 'no components'} healthy`;
  return `running; unhealthy: ${bad.map((h) => `${h.name}${h.message ? ` (${h.message})` : ''}`).join('; ')}`;
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

export interface StateReporterOptions {
  config: KeelsonConfig;
  mode: DaemonMode;
  /** When `keelson run` began (ISO 8601). */
  startedAt: string;
  components: Component[];
  /** Components whose start() failed, with why. */
  startErrors: Map<string, string>;
  kubelet?: KubeletComponent;
  informers?: InformerFactory;
  /** Where the DNS answers (for `keelson status`), `ip:port` each. */
  dnsAddresses: string[];
  notifier: Pick<Notifier, 'status' | 'ready'>;
  logger: Logger;
}

export interface StateReporter {
  health(): ComponentHealth[];
  /** Writes the state file, tells systemd READY with the status line, and keeps both fresh. */
  start(): void;
  /** Stops the updates (systemd's STATUS= then says "stopping"). */
  stop(): void;
  /** Writes the state file one last time, marked stopped. */
  writeStopped(): void;
}

export function createStateReporter(options: StateReporterOptions): StateReporter {
  const { config, mode, startedAt, components, startErrors, kubelet, informers, notifier, logger } = options;
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
      dnsAddresses: options.dnsAddresses,
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
  let statusLine = '';
  let timer: NodeJS.Timeout | undefined;
  return {
    health,
    start() {
      writeState();
      // Ready once every loop runs, even with the runtime or the apiserver down (as upstream kubelet):
      // those show in health, STATUS= and the node's conditions, and systemd must not time the start out.
      statusLine = serviceStatusLine(health());
      void notifier.ready(statusLine);
      timer = setInterval(() => {
        writeState();
        const line = serviceStatusLine(health());
        if (line !== statusLine) void notifier.status(line);
        statusLine = line;
      }, STATE_WRITE_INTERVAL_MS);
    },
    stop() {
      clearInterval(timer);
    },
    writeStopped() {
      writeState(true);
    },
  };
}
