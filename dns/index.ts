export { createDnsComponent, type DnsComponent, type DnsComponentOptions } from './component';
export { parseDnsConfig, DNS_DEFAULTS, type DnsConfig, type PodMode } from './config';
export type { DnsInput, Feed, FeedHandler } from './input';
export { slimEndpointSlice, slimNamespace, slimPod, slimService } from './transform';
