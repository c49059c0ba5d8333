/**
 * The `dns:` section of keelson's config file (plus the top-level `clusterDomain`), parsed into
 * DnsConfig. Parsing only: no I/O, no behaviour. Bad fields are reported and replaced by defaults.
 */
import { canonicalIP } from './ip';

export type PodMode = 'verified' | 'insecure' | 'disabled';

export interface DnsConfig {
  /** Addresses to serve on (UDP+TCP); the node-local address and optionally the cluster DNS IP. */
  listen: string[];
  port: number;
  clusterDomain: string;
  /** TTL of cluster records and of the zone's SOA minimum (seconds). */
  ttl: number;
  pods: PodMode;
  /** `ip`, `ip:port` or `[ipv6]:port`; empty: the nameservers of `resolvConf`. */
  upstreams: string[];
  resolvConf: string;
  forward: boolean;
  forwardTimeoutMs: number;
  /** Interval of health probes to an upstream marked down. */
  healthCheckIntervalMs: number;
  /** Consecutive failures that mark an upstream down. */
  maxFails: number;
  cacheSize: number;
  cacheMaxTtl: number;
  /** Negative answers are cached at most this long, so new Services show up quickly. */
  cacheNegativeTtl: number;
  /** An entry hit this many times is refreshed before it expires… */
  prefetchHits: number;
  /** …when less than this share of its TTL is left. */
  prefetchPercent: number;
  /** EDNS buffer size we advertise and accept at most. */
  ednsBufferSize: number;
  healthPort: number;
  readyPort: number;
  metricsPort: number;
  /** Where /health and /ready listen; default: the first listen address. */
  healthAddress: string | undefined;
  metricsAddress: string | undefined;
  /** Create missing non-loopback listen addresses on `interface` (production). */
  manageAddress: boolean;
  interface: string;
  maxTcpConnections: number;
  tcpIdleTimeoutMs: number;
  checkpointIntervalMs: number;
}

export const DNS_DEFAULTS: Readonly<DnsConfig> = Object.freeze({
  listen: ['169.254.20.10'],
  port: 53,
  clusterDomain: 'cluster.local',
  ttl: 5,
  pods: 'verified',
  upstreams: [],
  resolvConf: '/etc/resolv.conf',
  forward: true,
  forwardTimeoutMs: 2000,
  healthCheckIntervalMs: 500,
  maxFails: 2,
  cacheSize: 10000,
  cacheMaxTtl: 3600,
  cacheNegativeTtl: 5,
  prefetchHits: 10,
  prefetchPercent: 10,
  ednsBufferSize: 1232,
  healthPort: 8080,
  readyPort: 8181,
  metricsPort: 9153,
  healthAddress: undefined,
  metricsAddress: undefined,
  manageAddress: true,
  interface: 'lo',
  maxTcpConnections: 1000,
  tcpIdleTimeoutMs: 10000,
  checkpointIntervalMs: 2000,
});

export interface ConfigProblem {
  field: string;
  reason: string;
}

const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function parseUpstream(text: string): { host: string; port: number } | undefined {
  let host = text;
  let port = 53;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (/^[^:]+:\d+$/.test(text)) {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    port = Number(text.slice(i + 1));
  }
  const ip = canonicalIP(host);
  if (!ip || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: ip, port };
}

export function parseDnsConfig(raw: unknown): { config: DnsConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const config: DnsConfig = { ...DNS_DEFAULTS, listen: [...DNS_DEFAULTS.listen], upstreams: [] };
  if (raw === undefined || raw === null) return { config, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ field: '', reason: 'config must be a mapping' });
    return { config, problems };
  }
  const top = raw as Record<string, unknown>;
  if (top.clusterDomain !== undefined) {
    const d = typeof top.clusterDomain === 'string' ? top.clusterDomain.toLowerCase().replace(/\.$/, '') : '';
    if (DOMAIN_RE.test(d)) config.clusterDomain = d;
    else problems.push({ field: 'clusterDomain', reason: 'must be a DNS domain name' });
  }
  const section = top.dns;
  if (section === undefined || section === null) return { config, problems };
  if (typeof section !== 'object' || Array.isArray(section)) {
    problems.push({ field: 'dns', reason: 'must be a mapping' });
    return { config, problems };
  }
  const s = section as Record<string, unknown>;
  const known = new Set(Object.keys(DNS_DEFAULTS));
  for (const key of Object.keys(s)) if (!known.has(key)) problems.push({ field: `dns.${key}`, reason: 'unknown field' });

  const int = (key: keyof DnsConfig, min: number, max: number) => {
    const v = s[key];
    if (v === undefined) return;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) (config as unknown as Record<string, unknown>)[key] = v;
    else problems.push({ field: `dns.${key}`, reason: `must be an integer from ${min} to ${max}` });
  };
  const bool = (key: keyof DnsConfig) => {
    const v = s[key];
    if (v === undefined) return;
    if (typeof v === 'boolean') (config as unknown as Record<string, unknown>)[key] = v;
    else problems.push({ field: `dns.${key}`, reason: 'must be true or false' });
  };
  const address = (key: 'healthAddress' | 'metricsAddress') => {
    const v = s[key];
    if (v === undefined) return;
    const ip = typeof v === 'string' ? canonicalIP(v) : undefined;
    if (ip) config[key] = ip;
    else problems.push({ field: `dns.${key}`, reason: 'must be an IP address' });
  };

  if (s.listen !== undefined) {
    const list = typeof s.listen === 'string' ? [s.listen] : s.listen;
    const ips = Array.isArray(list) ? list.map((v) => (typeof v === 'string' ? canonicalIP(v) : undefined)) : [];
    if (ips.length > 0 && ips.every((ip) => ip !== undefined && ip !== '0.0.0.0' && ip !== '::')) config.listen = ips as string[];
    else problems.push({ field: 'dns.listen', reason: 'must be a non-empty list of specific IP addresses (never all interfaces)' });
  }
  int('port', 1, 65535);
  int('ttl', 0, 3600);
  if (s.pods !== undefined) {
    if (s.pods === 'verified' || s.pods === 'insecure' || s.pods === 'disabled') config.pods = s.pods;
    else problems.push({ field: 'dns.pods', reason: 'must be verified, insecure or disabled' });
  }
  if (s.upstreams !== undefined) {
    const list = typeof s.upstreams === 'string' ? [s.upstreams] : s.upstreams;
    if (Array.isArray(list) && list.every((u) => typeof u === 'string' && parseUpstream(u))) config.upstreams = list as string[];
    else problems.push({ field: 'dns.upstreams', reason: 'must be a list of ip, ip:port or [ipv6]:port' });
  }
  if (s.resolvConf !== undefined) {
    if (typeof s.resolvConf === 'string' && s.resolvConf.startsWith('/')) config.resolvConf = s.resolvConf;
    else problems.push({ field: 'dns.resolvConf', reason: 'must be an absolute path' });
  }
  bool('forward');
  int('forwardTimeoutMs', 50, 60000);
  int('healthCheckIntervalMs', 50, 60000);
  int('maxFails', 1, 100);
  int('cacheSize', 0, 10_000_000);
  int('cacheMaxTtl', 1, 86400 * 7);
  int('cacheNegativeTtl', 0, 3600);
  int('prefetchHits', 1, 1_000_000);
  int('prefetchPercent', 1, 99);
  int('ednsBufferSize', 512, 4096);
  int('healthPort', 0, 65535);
  int('readyPort', 0, 65535);
  int('metricsPort', 0, 65535);
  address('healthAddress');
  address('metricsAddress');
  bool('manageAddress');
  if (s.interface !== undefined) {
    if (typeof s.interface === 'string' && /^[a-zA-Z0-9_.-]{1,15}$/.test(s.interface)) config.interface = s.interface;
    else problems.push({ field: 'dns.interface', reason: 'must be an interface name' });
  }
  int('maxTcpConnections', 1, 100000);
  int('tcpIdleTimeoutMs', 100, 600000);
  int('checkpointIntervalMs', 10, 600000);
  return { config, problems };
}
