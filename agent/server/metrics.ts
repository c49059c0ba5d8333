/**
 * `/metrics` of the kubelet API in the Prometheus text format, with kubelet's names:
 * kubelet_running_pods, kubelet_running_containers{container_state}, the
 * kubelet_pod_start_duration_seconds histogram (first seen by the kubelet → all containers
 * running, once per pod) and kubelet_http_requests_total{method,path} for this server.
 */
import type { Pod, PodStatus } from 'kubernetes-types/core/v1';
import type { CriClient } from '../../cri/client';

/** kubelet's buckets for pod start durations (seconds). */
export const POD_START_BUCKETS = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];

export interface Histogram {
  observe(value: number): void;
  render(name: string): string[];
}

export function createHistogram(buckets: number[]): Histogram {
  const counts = buckets.map(() => 0);
  let count = 0;
  let total = 0;
  return {
    observe(value) {
      count++;
      total += value;
      buckets.forEach((b, i) => {
        if (value <= b) counts[i]!++;
      });
    },
    render(name) {
      return [
        ...buckets.map((b, i) => `${name}_bucket{le="${b}"} ${counts[i]}`),
        `${name}_bucket{le="+Inf"} ${count}`,
        `${name}_sum ${total}`,
        `${name}_count ${count}`,
      ];
    },
  };
}

export interface KubeletMetrics {
  /** Feed of pod status changes (the status manager's onChange). */
  podStatusChanged(pod: Pod, status: PodStatus): void;
  requestServed(method: string, path: string): void;
  render(): Promise<string>;
}

const CONTAINER_STATES: Record<string, string> = {
  CONTAINER_CREATED: 'created',
  CONTAINER_RUNNING: 'running',
  CONTAINER_EXITED: 'exited',
  CONTAINER_UNKNOWN: 'unknown',
};

/** The first path segment, as kubelet labels its request metrics (`containerLogs`, `exec`, `stats`...). */
function pathLabel(path: string): string {
  const first = path.split('/')[1] ?? '';
  return /^[A-Za-z]+$/.test(first) ? first : 'other';
}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function createKubeletMetrics(options: { cri: CriClient; pods(): Pod[]; now?: () => number }): KubeletMetrics {
  const now = options.now ?? Date.now;
  const podStart = createHistogram(POD_START_BUCKETS);
  const started = new Set<string>();
  const requests = new Map<string, number>();
  return {
    podStatusChanged(pod, status) {
      const uid = pod.metadata?.uid;
      if (!uid || started.has(uid) || status.phase !== 'Running' || !status.startTime) return;
      const statuses = status.containerStatuses ?? [];
      if (statuses.length === 0 || !statuses.every((c) => c.state?.running)) return;
      started.add(uid);
      podStart.observe(Math.max(0, (now() - Date.parse(status.startTime)) / 1000));
    },
    requestServed(method, path) {
      const key = `${method}\u0000${pathLabel(path)}`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
    },
    async render() {
      const pods = options.pods();
      const live = new Set(pods.map((p) => p.metadata?.uid ?? ''));
      for (const uid of started) if (!live.has(uid)) started.delete(uid);
      const running = pods.filter((p) => p.status?.phase === 'Running').length;
      const lines: string[] = [
        '# HELP kubelet_running_pods Number of pods that have a running pod sandbox',
        '# TYPE kubelet_running_pods gauge',
        `kubelet_running_pods ${running}`,
      ];
      try {
        const { containers } = await options.cri.listContainers({});
        const byState = new Map<string, number>(Object.values(CONTAINER_STATES).map((s) => [s, 0]));
        for (const c of containers) {
          const state = CONTAINER_STATES[c.state] ?? 'unknown';
          byState.set(state, (byState.get(state) ?? 0) + 1);
        }
        lines.push('# HELP kubelet_running_containers Number of containers currently running', '# TYPE kubelet_running_containers gauge');
        for (const [state, n] of byState) lines.push(`kubelet_running_containers{container_state="${state}"} ${n}`);
      } catch {
        // runtime down: the gauge is left out rather than reported as zero
      }
      lines.push(
        '# HELP kubelet_pod_start_duration_seconds Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run',
        '# TYPE kubelet_pod_start_duration_seconds histogram',
        ...podStart.render('kubelet_pod_start_duration_seconds'),
        '# HELP kubelet_http_requests_total Number of the http requests received since the server started',
        '# TYPE kubelet_http_requests_total counter',
      );
      for (const [key, n] of [...requests].sort()) {
        const [method, path] = key.split('\u0000') as [string, string];
        lines.push(`kubelet_http_requests_total{method="${escape(method)}",path="${escape(path)}",server_type="readwrite"} ${n}`);
      }
      return lines.join('\n') + '\n';
    },
  };
}
