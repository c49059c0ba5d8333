/**
 * Prometheus metrics of the DNS component, with CoreDNS's metric names so existing dashboards work.
 * A tiny registry (counters and one histogram) instead of prom-client, to stay small.
 */
import { rcodeName, typeName } from './codec';

export interface DnsMetrics {
  request(type: number, proto: string): void;
  response(rcode: number): void;
  malformed(): void;
  cacheHit(kind: 'success' | 'denial'): void;
  cacheMiss(): void;
  cacheSize(entries: number): void;
  prefetch(): void;
  forward(upstream: string, rcode: number | 'error', seconds: number): void;
  upstreamHealthy(upstream: string, healthy: boolean): void;
  render(): string;
}

const BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const KNOWN_TYPES = new Set(['A', 'AAAA', 'NS', 'CNAME', 'SOA', 'PTR', 'MX', 'TXT', 'SRV', 'ANY', 'HINFO']);

function labels(obj: Record<string, string>): string {
  const parts = Object.entries(obj).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export function createDnsMetrics(server = 'dns://:53', zone = '.'): DnsMetrics {
  /** proto → type name → count (no string built per request). */
  const requests = new Map<string, Map<string, number>>();
  const responses = new Map<string, number>();
  const forwards = new Map<string, number>();
  const hist = new Map<string, { buckets: number[]; sum: number; count: number }>();
  const healthy = new Map<string, boolean>();
  let malformed = 0;
  const hits = { success: 0, denial: 0 };
  let misses = 0;
  let prefetches = 0;
  let entries = 0;
  const inc = (m: Map<string, number>, key: string) => m.set(key, (m.get(key) ?? 0) + 1);
  return {
    request(type, proto) {
      const name = typeName(type);
      let byType = requests.get(proto);
      if (!byType) requests.set(proto, (byType = new Map()));
      inc(byType, KNOWN_TYPES.has(name) ? name : 'other');
    },
    response(rcode) { inc(responses, rcodeName(rcode)); },
    malformed() { malformed++; },
    cacheHit(kind) { hits[kind]++; },
    cacheMiss() { misses++; },
    cacheSize(n) { entries = n; },
    prefetch() { prefetches++; },
    forward(upstream, rcode, seconds) {
      inc(forwards, `${upstream}\u0000${rcode === 'error' ? 'error' : rcodeName(rcode)}`);
      let h = hist.get(upstream);
      if (!h) hist.set(upstream, (h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 }));
      for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.buckets[i]!++;
      h.sum += seconds;
      h.count++;
    },
    upstreamHealthy(upstream, ok) { healthy.set(upstream, ok); },
    render() {
      const out: string[] = [];
      out.push('# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.', '# TYPE coredns_dns_requests_total counter');
      for (const [proto, byType] of requests) {
        for (const [type, n] of byType) out.push(`coredns_dns_requests_total${labels({ server, zone, proto, family: '1', type })} ${n}`);
      }
      out.push('# HELP coredns_dns_responses_total Counter of response status codes.', '# TYPE coredns_dns_responses_total counter');
      for (const [rcode, n] of responses) out.push(`coredns_dns_responses_total${labels({ server, zone, rcode })} ${n}`);
      out.push('# HELP keelson_dns_malformed_requests_total Packets that could not be parsed.', '# TYPE keelson_dns_malformed_requests_total counter');
      out.push(`keelson_dns_malformed_requests_total ${malformed}`);
      out.push('# HELP coredns_cache_hits_total The count of cache hits.', '# TYPE coredns_cache_hits_total counter');
      out.push(`coredns_cache_hits_total${labels({ server, type: 'success' })} ${hits.success}`);
      out.push(`coredns_cache_hits_total${labels({ server, type: 'denial' })} ${hits.denial}`);
      out.push('# HELP coredns_cache_misses_total The count of cache misses.', '# TYPE coredns_cache_misses_total counter');
      out.push(`coredns_cache_misses_total${labels({ server })} ${misses}`);
      out.push('# HELP coredns_cache_entries The number of elements in the cache.', '# TYPE coredns_cache_entries gauge');
      out.push(`coredns_cache_entries${labels({ server, type: 'all' })} ${entries}`);
      out.push('# HELP coredns_cache_prefetch_total The number of times the cache has prefetched a cached item.', '# TYPE coredns_cache_prefetch_total counter');
      out.push(`coredns_cache_prefetch_total${labels({ server })} ${prefetches}`);
      out.push('# HELP coredns_forward_requests_total Counter of requests made per upstream.', '# TYPE coredns_forward_requests_total counter');
      for (const [key, n] of forwards) {
        const [to, rcode] = key.split('\u0000');
        out.push(`coredns_forward_requests_total${labels({ to: to!, rcode: rcode! })} ${n}`);
      }
      out.push('# HELP coredns_forward_request_duration_seconds Histogram of the time each request took.', '# TYPE coredns_forward_request_duration_seconds histogram');
      for (const [to, h] of hist) {
        BUCKETS.forEach((b, i) => out.push(`coredns_forward_request_duration_seconds_bucket${labels({ to, le: String(b) })} ${h.buckets[i]}`));
        out.push(`coredns_forward_request_duration_seconds_bucket${labels({ to, le: '+Inf' })} ${h.count}`);
        out.push(`coredns_forward_request_duration_seconds_sum${labels({ to })} ${h.sum}`);
        out.push(`coredns_forward_request_duration_seconds_count${labels({ to })} ${h.count}`);
      }
      out.push('# HELP keelson_dns_upstream_healthy 1 when the upstream answers, 0 while it is marked down.', '# TYPE keelson_dns_upstream_healthy gauge');
      for (const [to, ok] of healthy) out.push(`keelson_dns_upstream_healthy${labels({ to })} ${ok ? 1 : 0}`);
      return out.join('\n') + '\n';
    },
  };
}
