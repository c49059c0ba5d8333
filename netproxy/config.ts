/**
 * The `proxy:` section of keelson's config. Field names follow KubeProxyConfiguration where the
 * field exists there. Parsing only: no behaviour lives here.
 */
import { isIP } from 'node:net';

export type ProxyMode = 'nftables' | 'iptables' | 'ipvs';
export const PROXY_MODES: readonly ProxyMode[] = ['nftables', 'iptables', 'ipvs'];
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh'] as const;

export interface ConntrackConfig {
  /** Delete stale UDP flows when endpoints go away (kube-proxy always does; switchable for tests). */
  udpStaleFlowCleanup: boolean;
}

export interface ProxyConfig {
  /** '' means: nftables when the kernel supports it, otherwise iptables. */
  mode: ProxyMode | '';
  /** Pod CIDRs: traffic from outside them to a ClusterIP is masqueraded. */
  clusterCIDR: string[];
  /** CIDRs whose node addresses accept NodePort traffic; empty = every local address. */
  nodePortAddresses: string[];
  minSyncPeriodMs: number;
  syncPeriodMs: number;
  /**
   * Longest time between two full rewrites of the rules (keelson's `fullSyncPeriod`; kube-proxy
   * hard-codes 1 h). The syncPeriod resyncs in between only check for drift.
   */
  fullSyncPeriodMs: number;
  healthzBindAddress: string;
  metricsBindAddress: string;
  masqueradeAll: boolean;
  /** Bit of the packet mark that asks for masquerading (kube-proxy: 14 → 0x4000). */
  masqueradeBit: number;
  conntrack: ConntrackConfig;
  ipvs: { scheduler: (typeof IPVS_SCHEDULERS)[number]; tcpTimeoutSeconds: number; udpTimeoutSeconds: number };
  iptables: { localhostNodePorts: boolean };
}

export interface ConfigProblem {
  field: string;
  reason: string;
}

export const defaultProxyConfig: ProxyConfig = Object.freeze({
  mode: '',
  clusterCIDR: [],
  nodePortAddresses: [],
  minSyncPeriodMs: 1000,
  syncPeriodMs: 30000,
  fullSyncPeriodMs: 3_600_000,
  healthzBindAddress: '0.0.0.0:10256',
  metricsBindAddress: '127.0.0.1:10249',
  masqueradeAll: false,
  masqueradeBit: 14,
  conntrack: { udpStaleFlowCleanup: true },
  ipvs: { scheduler: 'rr', tcpTimeoutSeconds: 0, udpTimeoutSeconds: 0 },
  iptables: { localhostNodePorts: true },
}) as ProxyConfig;

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** Parses a Go-style duration ('1s', '500ms', '1m30s') or a number of milliseconds. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || value === '') return undefined;
  if (value === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === value.length && pos > 0 ? total : undefined;
}

export function isCIDR(value: string): boolean {
  const [addr, len, extra] = value.split('/');
  if (extra !== undefined || addr === undefined || len === undefined || !/^\d+$/.test(len)) return false;
  const family = isIP(addr);
  return family !== 0 && Number(len) <= (family === 4 ? 32 : 128);
}

function isHostPort(value: string): boolean {
  const m = /^(.*):(\d+)$/.exec(value);
  if (!m) return false;
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  return (host === '' || isIP(host) !== 0) && Number(m[2]) <= 65535;
}

/**
 * Parses the raw `proxy:` section. Unknown or invalid fields are reported as problems and the
 * default is kept for them, so one typo never stops the proxy.
 */
export function parseProxyConfig(raw: unknown): { config: ProxyConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const config: ProxyConfig = structuredClone(defaultProxyConfig);
  if (raw === undefined || raw === null) return { config, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ field: 'proxy', reason: 'must be a mapping' });
    return { config, problems };
  }
  const r = raw as Record<string, unknown>;
  const known = new Set(['mode', 'clusterCIDR', 'nodePortAddresses', 'minSyncPeriod', 'syncPeriod', 'fullSyncPeriod', 'healthzBindAddress',
    'metricsBindAddress', 'masqueradeAll', 'conntrack', 'ipvs', 'iptables', 'nftables', 'detectLocalMode']);
  for (const key of Object.keys(r)) if (!known.has(key)) problems.push({ field: key, reason: 'unknown field' });

  if (r.mode !== undefined) {
    if (r.mode === '' || PROXY_MODES.includes(r.mode as ProxyMode)) config.mode = r.mode as ProxyMode | '';
    else problems.push({ field: 'mode', reason: `must be one of ${PROXY_MODES.join(', ')} (or empty for automatic)` });
  }
  const cidrList = (field: 'clusterCIDR' | 'nodePortAddresses') => {
    const v = r[field];
    if (v === undefined) return;
    const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : Array.isArray(v) ? v : null;
    if (!list) return void problems.push({ field, reason: 'must be a CIDR string or a list of CIDRs' });
    const good: string[] = [];
    for (const c of list) {
      if (typeof c === 'string' && isCIDR(c)) good.push(c);
      else problems.push({ field, reason: `not a CIDR: ${String(c)}` });
    }
    config[field] = good;
  };
  cidrList('clusterCIDR');
  cidrList('nodePortAddresses');
  if (r.detectLocalMode !== undefined && r.detectLocalMode !== 'ClusterCIDR') {
    problems.push({ field: 'detectLocalMode', reason: 'only ClusterCIDR is supported' });
  }
  const duration = (field: string, v: unknown, set: (ms: number) => void) => {
    if (v === undefined) return;
    const ms = parseDuration(v);
    if (ms === undefined) problems.push({ field, reason: `not a duration: ${String(v)}` });
    else set(ms);
  };
  duration('minSyncPeriod', r.minSyncPeriod, (ms) => (config.minSyncPeriodMs = ms));
  duration('syncPeriod', r.syncPeriod, (ms) => (config.syncPeriodMs = ms));
  duration('fullSyncPeriod', r.fullSyncPeriod, (ms) => (config.fullSyncPeriodMs = ms));
  if (config.fullSyncPeriodMs <= 0) {
    problems.push({ field: 'fullSyncPeriod', reason: 'must be greater than zero' });
    config.fullSyncPeriodMs = defaultProxyConfig.fullSyncPeriodMs;
  }
  if (config.syncPeriodMs <= 0) {
    problems.push({ field: 'syncPeriod', reason: 'must be greater than zero' });
    config.syncPeriodMs = defaultProxyConfig.syncPeriodMs;
  }
  if (config.minSyncPeriodMs > config.syncPeriodMs) {
    problems.push({ field: 'minSyncPeriod', reason: 'must not exceed syncPeriod' });
    config.minSyncPeriodMs = Math.min(defaultProxyConfig.minSyncPeriodMs, config.syncPeriodMs);
  }
  for (const field of ['healthzBindAddress', 'metricsBindAddress'] as const) {
    const v = r[field];
    if (v === undefined) continue;
    if (typeof v === 'string' && (v === '' || isHostPort(v))) config[field] = v;
    else problems.push({ field, reason: 'must be host:port (empty disables)' });
  }
  const bool = (field: string, v: unknown, set: (b: boolean) => void) => {
    if (v === undefined) return;
    if (typeof v === 'boolean') set(v);
    else problems.push({ field, reason: 'must be true or false' });
  };
  bool('masqueradeAll', r.masqueradeAll, (b) => (config.masqueradeAll = b));

  const section = (name: string): Record<string, unknown> | undefined => {
    const v = r[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    problems.push({ field: name, reason: 'must be a mapping' });
    return undefined;
  };
  const ct = section('conntrack');
  if (ct) bool('conntrack.udpStaleFlowCleanup', ct.udpStaleFlowCleanup, (b) => (config.conntrack.udpStaleFlowCleanup = b));
  const ipt = section('iptables');
  if (ipt) {
    bool('iptables.masqueradeAll', ipt.masqueradeAll, (b) => (config.masqueradeAll = config.masqueradeAll || b));
    bool('iptables.localhostNodePorts', ipt.localhostNodePorts, (b) => (config.iptables.localhostNodePorts = b));
    if (ipt.masqueradeBit !== undefined) {
      const b = ipt.masqueradeBit;
      if (typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 31) config.masqueradeBit = b;
      else problems.push({ field: 'iptables.masqueradeBit', reason: 'must be an integer 0..31' });
    }
    duration('iptables.minSyncPeriod', ipt.minSyncPeriod, (ms) => (config.minSyncPeriodMs = ms));
    duration('iptables.syncPeriod', ipt.syncPeriod, (ms) => (config.syncPeriodMs = ms));
  }
  const ipvs = section('ipvs');
  if (ipvs) {
    if (ipvs.scheduler !== undefined && ipvs.scheduler !== '') {
      if ((IPVS_SCHEDULERS as readonly unknown[]).includes(ipvs.scheduler)) config.ipvs.scheduler = ipvs.scheduler as ProxyConfig['ipvs']['scheduler'];
      else problems.push({ field: 'ipvs.scheduler', reason: `must be one of ${IPVS_SCHEDULERS.join(', ')}` });
    }
    duration('ipvs.tcpTimeout', ipvs.tcpTimeout, (ms) => (config.ipvs.tcpTimeoutSeconds = Math.round(ms / 1000)));
    duration('ipvs.udpTimeout', ipvs.udpTimeout, (ms) => (config.ipvs.udpTimeoutSeconds = Math.round(ms / 1000)));
  }
  return { config, problems };
}
