/** The proxy's Prometheus metrics (kube-proxy's metric names, so existing dashboards work). */
const BUCKETS = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

export interface Histogram {
  observe(seconds: number): void;
  render(name: string, help: string): string;
}

export function createHistogram(buckets = BUCKETS): Histogram {
  const counts = new Array<number>(buckets.length).fill(0);
  let sum = 0;
  let count = 0;
  return {
    observe(v) {
      sum += v;
      count++;
      buckets.forEach((b, i) => {
        if (v <= b) counts[i]!++;
      });
    },
    render(name, help) {
      const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
      buckets.forEach((b, i) => lines.push(`${name}_bucket{le="${b}"} ${counts[i]}`));
      lines.push(`${name}_bucket{le="+Inf"} ${count}`, `${name}_sum ${sum}`, `${name}_count ${count}`);
      return lines.join('\n');
    },
  };
}

export interface ProxyMetrics {
  syncDuration: Histogram;
  programmingLatency: Histogram;
  lastSyncSeconds: number;
  rules: number;
  syncErrors: number;
  render(): string;
}

export function createProxyMetrics(): ProxyMetrics {
  const m: ProxyMetrics = {
    syncDuration: createHistogram(),
    programmingLatency: createHistogram([0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]),
    lastSyncSeconds: 0,
    rules: 0,
    syncErrors: 0,
    render() {
      return [
        m.syncDuration.render('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds'),
        m.programmingLatency.render('kubeproxy_network_programming_duration_seconds', 'In Cluster Network Programming Latency in seconds'),
        '# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced',
        '# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge',
        `kubeproxy_sync_proxy_rules_last_timestamp_seconds ${m.lastSyncSeconds}`,
        '# HELP keelson_proxy_rules Rules and map elements the proxy holds in the kernel',
        '# TYPE keelson_proxy_rules gauge',
        `keelson_proxy_rules ${m.rules}`,
        '# HELP keelson_proxy_sync_errors_total Failed syncs',
        '# TYPE keelson_proxy_sync_errors_total counter',
        `keelson_proxy_sync_errors_total ${m.syncErrors}`,
        '',
      ].join('\n');
    },
  };
  return m;
}
