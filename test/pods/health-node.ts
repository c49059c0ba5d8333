/**
 * A keelson kubelet (static pods) for the health feature tests, run as a child process inside the
 * simulated node's network namespace so that its probes reach pod IPs the way a real node's do.
 * argv[2] is a JSON RunnerConfig. Output on stdout, one JSON object per line: pino log records,
 * and `{"kind":"status", ...}` whenever a pod's status changes. SIGTERM stops it.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { createCriClient } from '../../cri/client';
import { createStaticPodsComponent, type KubeletConfig } from '../../agent/pods';

export interface RunnerConfig {
  endpoint: string;
  kubelet: KubeletConfig;
  /** A file holding `{"capacityBytes":…,"availableBytes":…}`: the image fs usage the image GC sees. */
  fsUsageFile: string;
}

const config = JSON.parse(process.argv[2]) as RunnerConfig;
const out = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const logger = pino({ level: 'debug' }, { write: (line: string) => void process.stdout.write(line.endsWith('\n') ? line : `${line}\n`) });
const cri = createCriClient({ endpoint: config.endpoint });
const kubelet = createStaticPodsComponent({
  cri,
  config: config.kubelet,
  logger,
  imageFsUsage: async () => JSON.parse(readFileSync(config.fsUsageFile, 'utf8')),
});
kubelet.statusManager.onChange((pod, status) => out({ kind: 'status', uid: pod.metadata!.uid, name: pod.metadata!.name, at: Date.now(), status }));

// the kubelet's timers never hold the process open (the daemon's servers do): hold it until SIGTERM
const keepAlive = setInterval(() => {}, 1 << 30);

process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  void kubelet.stop().finally(() => {
    cri.close();
    process.exit(0);
  });
});

kubelet.start().then(
  () => out({ kind: 'started' }),
  (err: Error) => {
    out({ kind: 'failed', message: err.message });
    process.exit(1);
  },
);
