/**
 * The one place where the desired state is built: tracked Service and EndpointSlice changes in,
 * per-Service port states out (one per port and IP family), rebuilt only for the Services that
 * changed since the last build.
 */
import type { Node, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import type { Logger } from 'pino';
import { createChangeTracker } from './changetracker';
import { categorizeEndpoints, endpointsFor, type EndpointAddress, type TrafficTarget } from './endpoints';
import { familyOf, orNone, parseService, serviceKey, type IPFamily, type ParsedService, type Protocol } from './serviceport';

export interface ServicePortState {
  /** Unique id: `ns/name:portName/PROTO/v4`. */
  id: string;
  service: string;
  portName: string;
  protocol: Protocol;
  family: IPFamily;
  clusterIP: string;
  port: number;
  nodePort?: number;
  externalIPs: string[];
  loadBalancerIPs: string[];
  /** Only for LoadBalancer Services that set spec.loadBalancerSourceRanges (this family's CIDRs). */
  loadBalancerSourceRanges?: string[];
  affinityTimeoutSeconds?: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort?: number;
  internal: TrafficTarget;
  external: TrafficTarget;
  localReady: number;
  serving: EndpointAddress[];
}

/** Desired state per Service key (`ns/name`); a key absent from `services` has no rules. */
export interface DesiredState {
  services: Map<string, ServicePortState[]>;
}

export interface BuildResult {
  state: DesiredState;
  /** Service keys whose port states changed (or 'all' after a full rebuild). */
  changed: Set<string>;
  /** The port states each changed Service had before, for conntrack cleanup. */
  previous: Map<string, ServicePortState[]>;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface ProxyState {
  recordService(previous: Service | undefined, current: Service | undefined): void;
  recordEndpointSlice(previous: EndpointSlice | undefined, current: EndpointSlice | undefined): void;
  recordNode(node: Node | undefined): void;
  /** Pending changes since the last build. */
  pending(): number;
  build(full?: boolean): BuildResult;
  /** Oldest EndpointSlice trigger time among the changes of the last build (network programming latency). */
  lastTriggerTimes(): number[];
}

/**
 * Structural equality of plain data (port states): a full rebuild at 10 000 Services compared them
 * through JSON.stringify, megabytes of garbage per sync for an answer that is nearly always "same".
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function sliceService(slice: EndpointSlice): string | undefined {
  const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  return name ? `${slice.metadata?.namespace ?? ''}/${name}` : undefined;
}

export function createProxyState(options: { nodeName: string; logger: Logger }): ProxyState {
  const { nodeName, logger } = options;
  const serviceChanges = createChangeTracker<Service>();
  const sliceChanges = createChangeTracker<EndpointSlice>();
  const services = new Map<string, ParsedService>();
  const slicesByService = new Map<string, Map<string, EndpointSlice>>();
  const unknownServiceSlices = new Set<string>();
  let nodeZone: string | undefined;
  let zoneChanged = false;
  let current = new Map<string, ServicePortState[]>();
  let triggerTimes: number[] = [];

  function buildService(key: string): ServicePortState[] | undefined {
    const parsed = services.get(key);
    if (!parsed || parsed.ports.length === 0) return undefined;
    const slices = [...(slicesByService.get(key)?.values() ?? [])];
    const out: ServicePortState[] = [];
    for (const spec of parsed.ports) {
      for (const clusterIP of spec.clusterIPs) {
        const family = familyOf(clusterIP);
        const eps = endpointsFor(slices, spec, family, nodeName);
        const cat = categorizeEndpoints(eps, spec, nodeZone);
        out.push({
          id: `${key}:${spec.portName}/${spec.protocol}/v${family}`,
          service: key,
          portName: spec.portName,
          protocol: spec.protocol,
          family,
          clusterIP,
          port: spec.port,
          ...(spec.nodePort !== undefined ? { nodePort: spec.nodePort } : {}),
          externalIPs: orNone(spec.externalIPs.filter((ip) => familyOf(ip) === family)),
          loadBalancerIPs: orNone(spec.loadBalancerIPs.filter((ip) => familyOf(ip) === family)),
          ...(spec.loadBalancerSourceRanges.length ? { loadBalancerSourceRanges: spec.loadBalancerSourceRanges.map((c) => c.trim()).filter((c) => familyOf(c.split('/')[0]!) === family) } : {}),
          ...(spec.affinityTimeoutSeconds !== undefined ? { affinityTimeoutSeconds: spec.affinityTimeoutSeconds } : {}),
          externalPolicyLocal: spec.externalPolicyLocal,
          internalPolicyLocal: spec.internalPolicyLocal,
          ...(spec.healthCheckNodePort !== undefined ? { healthCheckNodePort: spec.healthCheckNodePort } : {}),
          internal: cat.internal,
          external: cat.external,
          localReady: cat.localReady,
          serving: cat.serving,
        });
      }
    }
    return out;
  }

  return {
    recordService(previous, cur) {
      const obj = cur ?? previous;
      if (obj) serviceChanges.record(serviceKey(obj), previous, cur);
    },
    recordEndpointSlice(previous, cur) {
      const obj = cur ?? previous;
      if (obj) sliceChanges.record(serviceKey(obj), previous, cur);
    },
    recordNode(node) {
      if (node && node.metadata?.name !== nodeName) return;
      const zone = node?.metadata?.labels?.[ZONE_LABEL];
      if (zone !== nodeZone) {
        nodeZone = zone;
        zoneChanged = true;
      }
    },
    pending: () => serviceChanges.pending() + sliceChanges.pending() + (zoneChanged ? 1 : 0),
    build(full = false) {
      const touched = new Set<string>();
      triggerTimes = [];
      for (const [key, change] of serviceChanges.drain()) {
        touched.add(key);
        if (!change.current) {
          services.delete(key);
          continue;
        }
        const parsed = parseService(change.current);
        for (const problem of parsed.problems) logger.warn({ service: key, code: 'KEELSON_ERR_PROXY_SERVICE_INVALID' }, `service skipped in part: ${problem}`);
        services.set(key, parsed);
      }
      for (const [sliceKey, change] of sliceChanges.drain()) {
        const before = change.previous && sliceService(change.previous);
        const after = change.current && sliceService(change.current);
        if (before) {
          slicesByService.get(before)?.delete(sliceKey);
          if (slicesByService.get(before)?.size === 0) slicesByService.delete(before);
          touched.add(before);
        }
        if (change.current) {
          if (!after) {
            logger.warn({ endpointslice: sliceKey, code: 'KEELSON_ERR_PROXY_ENDPOINTSLICE_INVALID' }, `endpointslice without ${SERVICE_NAME_LABEL} label skipped`);
            continue;
          }
          let m = slicesByService.get(after);
          if (!m) slicesByService.set(after, (m = new Map()));
          m.set(sliceKey, change.current);
          touched.add(after);
          const trigger = change.current.metadata?.annotations?.['endpoints.kubernetes.io/last-change-trigger-time'];
          const t = trigger ? Date.parse(trigger) : NaN;
          if (Number.isFinite(t)) triggerTimes.push(t);
        }
      }
      const all = full || zoneChanged;
      zoneChanged = false;
      const keys = all ? new Set([...current.keys(), ...services.keys(), ...touched]) : touched;
      const previous = new Map<string, ServicePortState[]>();
      const next = new Map(current);
      const changed = new Set<string>();
      for (const key of keys) {
        if (slicesByService.has(key) && !services.has(key)) {
          if (!unknownServiceSlices.has(key)) logger.info({ service: key }, 'endpointslice for unknown service ignored until the service exists');
          unknownServiceSlices.add(key);
        } else unknownServiceSlices.delete(key);
        const before = current.get(key);
        const after = buildService(key);
        if (sameValue(before, after)) continue;
        changed.add(key);
        if (before) previous.set(key, before);
        if (after) next.set(key, after);
        else next.delete(key);
      }
      current = next;
      return { state: { services: current }, changed, previous };
    },
    lastTriggerTimes: () => triggerTimes,
  };
}
