/**
 * Pod DNS as kubelet sets it up: the sandbox resolver per dnsPolicy (ClusterFirst → clusterDNS with
 * the `<ns>.svc.<domain> svc.<domain> <domain>` search path and ndots:5; Default → the host's
 * resolv.conf; None → only spec.dnsConfig, which is merged into the others too), the pod's
 * hostname and subdomain, and the managed /etc/hosts.
 */
import type { Pod } from 'kubernetes-types/core/v1';
import type { DnsConfig } from './runtime';

export function parseResolvConf(text: string): DnsConfig {
  const config: DnsConfig = { servers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [keyword, ...values] = line.split(/\s+/);
    if (keyword === 'nameserver' && values[0]) config.servers.push(values[0]);
    else if (keyword === 'search' || keyword === 'domain') config.searches = values;
    else if (keyword === 'options') config.options.push(...values);
  }
  // glibc honours at most 3 nameservers and 6 search domains (kubelet trims the same way)
  config.servers = config.servers.slice(0, 3);
  config.searches = config.searches.slice(0, 6);
  return config;
}

/** kubelet's clusterDNS / clusterDomain, and the host's resolver (for dnsPolicy Default and search paths). */
export interface ClusterDnsSettings {
  clusterDNS: string[];
  clusterDomain: string;
  /** Parsed host resolv.conf; undefined when it could not be read (the runtime default applies). */
  host?: DnsConfig;
}

const MAX_SERVERS = 3;
const MAX_SEARCHES = 32;
const MAX_SEARCH_CHARS = 2048;

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v !== ''))];
}

/** dnsConfig options override same-name options of the policy (`ndots:2` replaces `ndots:5`). */
function mergeOptions(base: string[], extra: { name?: string; value?: string }[]): string[] {
  const byName = new Map<string, string>();
  for (const o of base) byName.set(o.split(':')[0], o);
  for (const o of extra) if (o.name) byName.set(o.name, o.value === undefined ? o.name : `${o.name}:${o.value}`);
  return [...byName.values()];
}

export type PodDnsType = 'cluster' | 'host' | 'none';

/** Which resolver a pod gets: ClusterFirst on the host network falls back to the host's, as in kubelet. */
export function podDnsType(pod: Pod, settings: ClusterDnsSettings): PodDnsType {
  const policy = pod.spec?.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'None') return 'none';
  const wantsCluster = policy === 'ClusterFirstWithHostNet' || (policy === 'ClusterFirst' && pod.spec?.hostNetwork !== true);
  // without a cluster DNS address kubelet falls back to the host's resolver
  return wantsCluster && settings.clusterDNS.length > 0 ? 'cluster' : 'host';
}

/**
 * The sandbox DNS config for a pod (kubelet's GetPodDNS). undefined leaves the runtime's default
 * (the host's resolv.conf), for host resolution when the host file could not be read.
 */
export function podDnsConfig(pod: Pod, settings: ClusterDnsSettings): DnsConfig | undefined {
  const type = podDnsType(pod, settings);
  let config: DnsConfig;
  if (type === 'none') {
    config = { servers: [], searches: [], options: [] };
  } else if (type === 'cluster') {
    const ns = pod.metadata?.namespace ?? 'default';
    const domain = settings.clusterDomain;
    const cluster = domain ? [`${ns}.svc.${domain}`, `svc.${domain}`, domain] : [];
    config = { servers: [...settings.clusterDNS], searches: unique([...cluster, ...(settings.host?.searches ?? [])]), options: ['ndots:5'] };
  } else {
    if (!settings.host && !pod.spec?.dnsConfig) return undefined;
    config = structuredClone(settings.host ?? { servers: [], searches: [], options: [] });
  }
  const extra = pod.spec?.dnsConfig;
  if (extra) {
    config.servers = unique([...config.servers, ...(extra.nameservers ?? [])]);
    config.searches = unique([...config.searches, ...(extra.searches ?? [])]);
    config.options = mergeOptions(config.options, extra.options ?? []);
  }
  config.servers = config.servers.slice(0, MAX_SERVERS);
  const searches: string[] = [];
  let chars = 0;
  for (const s of config.searches.slice(0, MAX_SEARCHES)) {
    chars += s.length + 1;
    if (chars > MAX_SEARCH_CHARS) break;
    searches.push(s);
  }
  config.searches = searches;
  return config;
}

/** Hostname and domain of a pod's sandbox (spec.hostname / subdomain, or the pod name), truncated to 63. */
export function podHostnameAndDomain(pod: Pod, clusterDomain: string): { hostname: string; domain: string } {
  const raw = pod.spec?.hostname || pod.metadata!.name!;
  const hostname = raw.length > 63 ? raw.slice(0, 63).replace(/[-.]+$/, '') : raw;
  const sub = pod.spec?.subdomain;
  const domain = sub && clusterDomain ? `${sub}.${pod.metadata?.namespace ?? 'default'}.svc.${clusterDomain}` : '';
  return { hostname, domain };
}

/** kubelet's managed /etc/hosts for pods on the pod network: localhost, the pod's own names, hostAliases. */
export function renderEtcHosts(pod: Pod, podIPs: string[], clusterDomain: string): string {
  const { hostname, domain } = podHostnameAndDomain(pod, clusterDomain);
  const lines = [
    '# Kubernetes-managed hosts file (keelson).',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of podIPs) lines.push(domain ? `${ip}\t${hostname}.${domain}\t${hostname}` : `${ip}\t${hostname}`);
  const aliases = pod.spec?.hostAliases ?? [];
  if (aliases.length) {
    lines.push('', '# Entries added by HostAliases.');
    for (const a of aliases) if (a.ip && a.hostnames?.length) lines.push(`${a.ip}\t${a.hostnames.join('\t')}`);
  }
  return lines.join('\n') + '\n';
}
