/**
 * keelson's configuration: a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file with upstream
 * field names and defaults, plus keelson's own `proxy:` and `dns:` sections, then command-line flags
 * on top (flags win, as with kubelet). Parsing only: no behaviour lives here.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { loadAll, YAMLException } from 'js-yaml';
import { parseDuration } from './duration';
import { ErrorCodes, KeelsonError } from './errors';

export const COMPONENTS = ['kubelet', 'proxy', 'dns'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

export const DEFAULT_CONFIG_PATH = '/etc/keelson/config.yaml';
export const DEFAULT_KUBECONFIG_PATH = '/etc/keelson/kubelet.conf';
export const DEFAULT_ROOT_DIR = '/var/lib/keelson';

export interface KubeletSettings {
  staticPodPath: string;
  containerRuntimeEndpoint: string;
  imageServiceEndpoint: string;
  podLogsDir: string;
  maxPods: number;
  clusterDNS: string[];
  clusterDomain: string;
  resolvConf: string;
  syncFrequencyMs: number;
  fileCheckFrequencyMs: number;
  nodeStatusUpdateFrequencyMs: number;
  nodeStatusReportFrequencyMs: number;
  nodeLeaseDurationSeconds: number;
  runtimeRequestTimeoutMs: number;
  imageGCHighThresholdPercent: number;
  imageGCLowThresholdPercent: number;
  systemReserved: Record<string, string>;
  kubeReserved: Record<string, string>;
  evictionHard: Record<string, string>;
  healthzBindAddress: string;
  healthzPort: number;
  address: string;
  port: number;
  registerNode: boolean;
  registerWithTaints: { key: string; value?: string; effect: string }[];
  nodeLabels: Record<string, string>;
  /** Graceful node shutdown (kubelet's shutdownGracePeriod): time given to pods on a host shutdown; 0 disables it. */
  shutdownGracePeriodMs: number;
  /** The part of shutdownGracePeriod kept for critical pods, which stop after the others. */
  shutdownGracePeriodCriticalPodsMs: number;
  /** Pods that set no seccomp profile run with the runtime's default profile instead of Unconfined. */
  seccompDefault: boolean;
}

export interface KeelsonConfig {
  /** The file the settings came from, if any. */
  configPath?: string;
  kubeconfig?: string;
  rootDir: string;
  components: ComponentName[];
  hostnameOverride?: string;
  nodeIP?: string;
  nodeName: string;
  logLevel: string;
  kubelet: KubeletSettings;
  /** keelson's `proxy:` section, handed to netproxy/config.ts as it is. */
  proxyRaw: unknown;
  /** keelson's `dns:` section, handed to dns/config.ts as it is. */
  dnsRaw: unknown;
}

export interface ConfigProblem {
  field: string;
  reason: string;
}

export function defaultKubeletSettings(): KubeletSettings {
  return {
    staticPodPath: '/etc/keelson/manifests',
    containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
    imageServiceEndpoint: '',
    podLogsDir: '/var/log/pods',
    maxPods: 110,
    clusterDNS: [],
    clusterDomain: 'cluster.local',
    resolvConf: '/etc/resolv.conf',
    syncFrequencyMs: 60_000,
    fileCheckFrequencyMs: 20_000,
    nodeStatusUpdateFrequencyMs: 10_000,
    nodeStatusReportFrequencyMs: 300_000,
    nodeLeaseDurationSeconds: 40,
    runtimeRequestTimeoutMs: 120_000,
    imageGCHighThresholdPercent: 85,
    imageGCLowThresholdPercent: 80,
    systemReserved: {},
    kubeReserved: {},
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '10%', 'nodefs.inodesFree': '5%', 'imagefs.available': '15%' },
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    address: '0.0.0.0',
    port: 10250,
    registerNode: true,
    registerWithTaints: [],
    nodeLabels: {},
    shutdownGracePeriodMs: 0,
    shutdownGracePeriodCriticalPodsMs: 0,
    seccompDefault: false,
  };
}

/** Upstream KubeletConfiguration fields keelson accepts but does not act on (a warning, not an error). */
const UPSTREAM_IGNORED = new Set([
  'authentication', 'authorization', 'cgroupDriver', 'cgroupRoot', 'cgroupsPerQOS', 'cpuManagerPolicy',
  'enableServer', 'eventRecordQPS', 'eventBurst', 'featureGates', 'kubeAPIQPS', 'kubeAPIBurst', 'logging',
  'memorySwap', 'readOnlyPort', 'rotateCertificates', 'serverTLSBootstrap', 'streamingConnectionIdleTimeout', 'tlsCertFile', 'tlsPrivateKeyFile',
  'volumeStatsAggPeriod', 'containerLogMaxSize', 'containerLogMaxFiles', 'serializeImagePulls',
  'maxParallelImagePulls', 'imageMinimumGCAge', 'evictionPressureTransitionPeriod', 'failSwapOn',
  'hairpinMode', 'podPidsLimit', 'protectKernelDefaults', 'topologyManagerPolicy',
]);

type Settable = (value: unknown, field: string, problems: ConfigProblem[], s: KubeletSettings) => void;

function str(key: keyof KubeletSettings): Settable {
  return (v, field, problems, s) => {
    if (typeof v !== 'string' || v === '') return void problems.push({ field, reason: 'must be a non-empty string' });
    (s as unknown as Record<string, unknown>)[key] = v;
  };
}
function int(key: keyof KubeletSettings, min: number, max: number): Settable {
  return (v, field, problems, s) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return void problems.push({ field, reason: `must be an integer between ${min} and ${max}` });
    }
    (s as unknown as Record<string, unknown>)[key] = v;
  };
}
function duration(key: keyof KubeletSettings): Settable {
  return (v, field, problems, s) => {
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined || ms <= 0) return void problems.push({ field, reason: `must be a positive duration such as "10s" or "1m30s", got ${JSON.stringify(v)}` });
    (s as unknown as Record<string, unknown>)[key] = ms;
  };
}
/** A duration that may be 0 (off), in whole seconds as the CRI's stop timeout counts them. */
function wholeSeconds(key: keyof KubeletSettings): Settable {
  return (v, field, problems, s) => {
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined || ms % 1000 !== 0) return void problems.push({ field, reason: `must be a duration in whole seconds such as "30s" or "0" (off), got ${JSON.stringify(v)}` });
    (s as unknown as Record<string, unknown>)[key] = ms;
  };
}
function stringMap(key: keyof KubeletSettings): Settable {
  return (v, field, problems, s) => {
    if (!v || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
      return void problems.push({ field, reason: 'must be a map of strings' });
    }
    (s as unknown as Record<string, unknown>)[key] = { ...(v as Record<string, string>) };
  };
}

const KUBELET_FIELDS: Record<string, Settable> = {
  staticPodPath: str('staticPodPath'),
  containerRuntimeEndpoint: (v, field, problems, s) => {
    if (typeof v !== 'string' || !/^(unix:\/\/)?\//.test(v)) return void problems.push({ field, reason: 'must be a unix socket such as unix:///run/containerd/containerd.sock' });
    s.containerRuntimeEndpoint = v;
  },
  imageServiceEndpoint: (v, field, problems, s) => {
    if (typeof v !== 'string') return void problems.push({ field, reason: 'must be a string' });
    s.imageServiceEndpoint = v;
  },
  podLogsDir: str('podLogsDir'),
  maxPods: int('maxPods', 1, 10_000),
  clusterDNS: (v, field, problems, s) => {
    if (!Array.isArray(v)) return void problems.push({ field, reason: 'must be a list of IP addresses' });
    v.forEach((ip, i) => {
      if (typeof ip !== 'string' || isIP(ip) === 0) problems.push({ field: `${field}[${i}]`, reason: `not an IP address: ${JSON.stringify(ip)}` });
    });
    s.clusterDNS = v.filter((ip): ip is string => typeof ip === 'string' && isIP(ip) !== 0);
  },
  clusterDomain: (v, field, problems, s) => {
    if (typeof v !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i.test(v)) {
      return void problems.push({ field, reason: 'must be a DNS domain such as cluster.local' });
    }
    s.clusterDomain = v.toLowerCase();
  },
  resolvConf: (v, field, problems, s) => {
    if (typeof v !== 'string') return void problems.push({ field, reason: 'must be a path (or "" for none)' });
    s.resolvConf = v;
  },
  syncFrequency: duration('syncFrequencyMs'),
  fileCheckFrequency: duration('fileCheckFrequencyMs'),
  nodeStatusUpdateFrequency: duration('nodeStatusUpdateFrequencyMs'),
  nodeStatusReportFrequency: duration('nodeStatusReportFrequencyMs'),
  nodeLeaseDurationSeconds: int('nodeLeaseDurationSeconds', 1, 3600),
  runtimeRequestTimeout: duration('runtimeRequestTimeoutMs'),
  imageGCHighThresholdPercent: int('imageGCHighThresholdPercent', 0, 100),
  imageGCLowThresholdPercent: int('imageGCLowThresholdPercent', 0, 100),
  systemReserved: stringMap('systemReserved'),
  kubeReserved: stringMap('kubeReserved'),
  evictionHard: stringMap('evictionHard'),
  shutdownGracePeriod: wholeSeconds('shutdownGracePeriodMs'),
  shutdownGracePeriodCriticalPods: wholeSeconds('shutdownGracePeriodCriticalPodsMs'),
  healthzBindAddress: (v, field, problems, s) => {
    if (typeof v !== 'string' || isIP(v) === 0) return void problems.push({ field, reason: 'must be an IP address' });
    s.healthzBindAddress = v;
  },
  healthzPort: int('healthzPort', 0, 65535),
  address: (v, field, problems, s) => {
    if (typeof v !== 'string' || isIP(v) === 0) return void problems.push({ field, reason: 'must be an IP address' });
    s.address = v;
  },
  port: int('port', 1, 65535),
  seccompDefault: (v, field, problems, s) => {
    if (typeof v !== 'boolean') return void problems.push({ field, reason: 'must be true or false' });
    s.seccompDefault = v;
  },
  registerNode: (v, field, problems, s) => {
    if (typeof v !== 'boolean') return void problems.push({ field, reason: 'must be true or false' });
    s.registerNode = v;
  },
  registerWithTaints: (v, field, problems, s) => {
    if (!Array.isArray(v)) return void problems.push({ field, reason: 'must be a list of taints' });
    const taints: KubeletSettings['registerWithTaints'] = [];
    v.forEach((t, i) => {
      const taint = t as { key?: unknown; value?: unknown; effect?: unknown };
      if (!taint || typeof taint.key !== 'string' || !['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(String(taint.effect))) {
        problems.push({ field: `${field}[${i}]`, reason: 'needs a key and an effect of NoSchedule, PreferNoSchedule or NoExecute' });
        return;
      }
      taints.push({ key: taint.key, effect: String(taint.effect), ...(typeof taint.value === 'string' ? { value: taint.value } : {}) });
    });
    s.registerWithTaints = taints;
  },
};

/** Top-level keys that are not KubeletConfiguration settings. */
const ENVELOPE = new Set(['apiVersion', 'kind', 'proxy', 'dns', 'keelson']);

export interface ParsedConfigFile {
  kubelet: KubeletSettings;
  proxyRaw: unknown;
  dnsRaw: unknown;
  keelson: Record<string, unknown>;
  problems: ConfigProblem[];
  warnings: string[];
}

/** Validates a parsed KubeletConfiguration document; never throws. */
export function parseConfigObject(doc: unknown): ParsedConfigFile {
  const kubelet = defaultKubeletSettings();
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const result: ParsedConfigFile = { kubelet, proxyRaw: undefined, dnsRaw: undefined, keelson: {}, problems, warnings };
  if (doc === null || doc === undefined) return result;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push({ field: '(document)', reason: 'must be a mapping (a KubeletConfiguration)' });
    return result;
  }
  const obj = doc as Record<string, unknown>;
  if (obj.apiVersion !== undefined && obj.apiVersion !== 'kubelet.config.k8s.io/v1beta1') {
    problems.push({ field: 'apiVersion', reason: `must be kubelet.config.k8s.io/v1beta1, got ${JSON.stringify(obj.apiVersion)}` });
  }
  if (obj.kind !== undefined && obj.kind !== 'KubeletConfiguration') {
    problems.push({ field: 'kind', reason: `must be KubeletConfiguration, got ${JSON.stringify(obj.kind)}` });
  }
  for (const [key, value] of Object.entries(obj)) {
    if (ENVELOPE.has(key)) continue;
    const set = KUBELET_FIELDS[key];
    if (set) set(value, key, problems, kubelet);
    else if (UPSTREAM_IGNORED.has(key)) warnings.push(`${key}: KubeletConfiguration field not supported by keelson; ignored`);
    else problems.push({ field: key, reason: 'unknown field' });
  }
  if (kubelet.imageGCLowThresholdPercent >= kubelet.imageGCHighThresholdPercent) {
    problems.push({ field: 'imageGCLowThresholdPercent', reason: 'must be lower than imageGCHighThresholdPercent' });
  }
  if (kubelet.shutdownGracePeriodCriticalPodsMs > kubelet.shutdownGracePeriodMs) {
    problems.push({ field: 'shutdownGracePeriodCriticalPods', reason: 'must not be longer than shutdownGracePeriod (it is the part of it kept for critical pods)' });
  }
  result.proxyRaw = obj.proxy;
  result.dnsRaw = obj.dns;
  if (obj.keelson !== undefined) {
    if (!obj.keelson || typeof obj.keelson !== 'object' || Array.isArray(obj.keelson)) problems.push({ field: 'keelson', reason: 'must be a mapping' });
    else result.keelson = obj.keelson as Record<string, unknown>;
  }
  return result;
}

export function parseConfigText(text: string, path: string): ParsedConfigFile {
  let values: unknown[];
  try {
    values = loadAll(text).filter((v) => v !== null && v !== undefined);
  } catch (err) {
    if (err instanceof YAMLException) {
      throw configError(path, err.mark ? `line ${err.mark.line + 1}` : '(syntax)', err.reason || err.message);
    }
    throw err;
  }
  if (values.length > 1) throw configError(path, '(document)', 'expected one YAML document, found several');
  return parseConfigObject(values[0]);
}

export function configError(path: string, field: string, reason: string): KeelsonError {
  return new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid config ${path}: ${field}: ${reason}`, { object: path });
}

export interface ConfigFlags {
  config?: string;
  kubeconfig?: string;
  rootDir?: string;
  components?: string;
  hostnameOverride?: string;
  nodeIP?: string;
  logLevel?: string;
  staticPodPath?: string;
  containerRuntimeEndpoint?: string;
  podLogsDir?: string;
  nodeLabels?: string;
}

export interface LoadedConfig {
  config: KeelsonConfig;
  warnings: string[];
}

export function parseComponents(text: string): ComponentName[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(COMPONENTS as readonly string[]).includes(n));
  if (bad.length || names.length === 0) {
    throw new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid --components ${JSON.stringify(text)}: expected a comma-separated list of ${COMPONENTS.join(', ')}`, { object: '--components' });
  }
  return [...new Set(names)] as ComponentName[];
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid --node-labels entry ${JSON.stringify(pair)}: expected key=value`, { object: '--node-labels' });
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

/**
 * Reads the config file (when given, or the default one when it exists) and applies flags.
 * Throws KEELSON_ERR_CONFIG_INVALID naming the file, the field and the reason.
 */
export function loadConfig(flags: ConfigFlags, fileExists: (p: string) => boolean): LoadedConfig {
  const configPath = flags.config ?? (fileExists(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  let parsed: ParsedConfigFile = parseConfigObject(undefined);
  if (configPath) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (err) {
      throw new KeelsonError(ErrorCodes.CONFIG_UNREADABLE, `cannot read config ${configPath}: ${(err as Error).message}`, { object: configPath, cause: err });
    }
    parsed = parseConfigText(text, configPath);
    if (parsed.problems.length) {
      const detail = parsed.problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
      throw new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid config ${configPath}: ${detail}`, { object: configPath });
    }
  }
  const kubelet = parsed.kubelet;
  if (flags.staticPodPath) kubelet.staticPodPath = flags.staticPodPath;
  if (flags.containerRuntimeEndpoint) kubelet.containerRuntimeEndpoint = flags.containerRuntimeEndpoint;
  if (flags.podLogsDir) kubelet.podLogsDir = flags.podLogsDir;
  if (flags.nodeLabels) kubelet.nodeLabels = { ...kubelet.nodeLabels, ...parseLabels(flags.nodeLabels) };
  if (flags.nodeIP !== undefined && isIP(flags.nodeIP) === 0) {
    throw new KeelsonError(ErrorCodes.CONFIG_INVALID, `invalid --node-ip ${JSON.stringify(flags.nodeIP)}: not an IP address`, { object: '--node-ip' });
  }
  const kubeconfig = flags.kubeconfig ?? (fileExists(DEFAULT_KUBECONFIG_PATH) ? DEFAULT_KUBECONFIG_PATH : undefined);
  const nodeName = (flags.hostnameOverride ?? hostname()).trim().toLowerCase();
  const config: KeelsonConfig = {
    ...(configPath ? { configPath } : {}),
    ...(kubeconfig ? { kubeconfig } : {}),
    rootDir: flags.rootDir ?? DEFAULT_ROOT_DIR,
    components: parseComponents(flags.components ?? COMPONENTS.join(',')),
    ...(flags.hostnameOverride ? { hostnameOverride: flags.hostnameOverride } : {}),
    ...(flags.nodeIP ? { nodeIP: flags.nodeIP } : {}),
    nodeName,
    logLevel: flags.logLevel ?? 'info',
    kubelet,
    proxyRaw: parsed.proxyRaw,
    dnsRaw: parsed.dnsRaw,
  };
  return { config, warnings: parsed.warnings };
}
