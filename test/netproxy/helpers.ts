/** Shared test helpers: a silent logger that records lines, and desired state from fixtures. */
import pino, { type Logger } from 'pino';
import type { Node, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { defaultProxyConfig, type ProxyConfig } from '../../netproxy/config';
import { createProxyState } from '../../netproxy/desiredstate';
import { NODE, POD_CIDR } from './fixtures';

export function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

export function testConfig(over: Partial<ProxyConfig> = {}): ProxyConfig {
  return { ...structuredClone(defaultProxyConfig), clusterCIDR: [POD_CIDR], ...over };
}

export const zoneNode: Node = { metadata: { name: NODE, labels: { 'topology.kubernetes.io/zone': 'zone-a' } } };

export function buildState(services: Service[], slices: EndpointSlice[], logger = recordingLogger().logger) {
  const state = createProxyState({ nodeName: NODE, logger });
  state.recordNode(zoneNode);
  for (const s of services) state.recordService(undefined, s);
  for (const s of slices) state.recordEndpointSlice(undefined, s);
  return { state, result: state.build(true) };
}
