/**
 * The sandbox DNS config for standalone mode: the host's resolv.conf (kubelet's dnsPolicy
 * "Default"), since there is no cluster DNS service to point pods at yet.
 */
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
