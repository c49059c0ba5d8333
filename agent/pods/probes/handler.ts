/**
 * The actions a probe or a lifecycle hook runs (exec, httpGet, tcpSocket, grpc), resolved from the
 * API shape against the container: defaults applied, a named port looked up in the container's
 * ports, the host defaulted to the pod IP. A spec that cannot be resolved (unknown port name, no
 * action) is a ProbeSpecError: the probe then errors, it does not fail (kubelet keeps the last result).
 */
import type { Container, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction } from 'kubernetes-types/core/v1';

export type Action =
  | { kind: 'exec'; command: string[] }
  | { kind: 'httpGet'; scheme: 'http' | 'https'; host: string; port: number; path: string; headers: { name: string; value: string }[] }
  | { kind: 'tcpSocket'; host: string; port: number }
  | { kind: 'grpc'; host: string; port: number; service: string }
  | { kind: 'sleep'; seconds: number };

export class ProbeSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeSpecError';
  }
}

/** upstream probe defaults (k8s.io/api core/v1 Probe). */
export const PROBE_DEFAULTS = { periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, initialDelaySeconds: 0 } as const;

export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

const positive = (v: number | undefined, d: number) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : d);

export function probeTiming(probe: Probe, kind: 'liveness' | 'readiness' | 'startup'): ProbeTiming {
  return {
    initialDelayMs: Math.max(0, probe.initialDelaySeconds ?? 0) * 1000,
    periodMs: positive(probe.periodSeconds, PROBE_DEFAULTS.periodSeconds) * 1000,
    timeoutMs: positive(probe.timeoutSeconds, PROBE_DEFAULTS.timeoutSeconds) * 1000,
    // liveness and startup probes must have successThreshold 1 (API validation); be lenient
    successThreshold: kind === 'readiness' ? positive(probe.successThreshold, PROBE_DEFAULTS.successThreshold) : 1,
    failureThreshold: positive(probe.failureThreshold, PROBE_DEFAULTS.failureThreshold),
  };
}

function resolvePort(port: number | string | undefined, container: Container, field: string): number {
  if (typeof port === 'number') {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ProbeSpecError(`${field}: invalid port number ${port}`);
    return port;
  }
  if (typeof port === 'string') {
    if (/^\d+$/.test(port)) return resolvePort(Number(port), container, field);
    const found = (container.ports ?? []).find((p) => p.name === port);
    if (!found) throw new ProbeSpecError(`${field}: port name "${port}" not found in the ports of container ${container.name}`);
    return found.containerPort;
  }
  throw new ProbeSpecError(`${field}: port is required`);
}

function httpAction(a: HTTPGetAction, container: Container, podIP: string, field: string): Action {
  const scheme = (a.scheme ?? 'HTTP').toUpperCase();
  if (scheme !== 'HTTP' && scheme !== 'HTTPS') throw new ProbeSpecError(`${field}.scheme: unsupported scheme ${a.scheme}`);
  let path = a.path ?? '/';
  if (!path.startsWith('/')) path = `/${path}`;
  return {
    kind: 'httpGet',
    scheme: scheme === 'HTTPS' ? 'https' : 'http',
    host: a.host || podIP,
    port: resolvePort(a.port as number | string, container, `${field}.port`),
    path,
    headers: (a.httpHeaders ?? []).map((h) => ({ name: h.name, value: h.value })),
  };
}

function tcpAction(a: TCPSocketAction, container: Container, podIP: string, field: string): Action {
  return { kind: 'tcpSocket', host: a.host || podIP, port: resolvePort(a.port as number | string, container, `${field}.port`) };
}

function grpcAction(a: GRPCAction, container: Container, podIP: string, field: string): Action {
  return { kind: 'grpc', host: podIP, port: resolvePort(a.port, container, `${field}.port`), service: a.service ?? '' };
}

/** Resolves a probe's or hook's action; `field` names it in errors (`livenessProbe`, `lifecycle.preStop`). */
export function resolveAction(handler: Probe | LifecycleHandler, container: Container, podIP: string, field: string): Action {
  const h = handler as Probe & LifecycleHandler;
  const set = [h.exec && 'exec', h.httpGet && 'httpGet', h.tcpSocket && 'tcpSocket', h.grpc && 'grpc', h.sleep && 'sleep'].filter(Boolean);
  if (set.length !== 1) throw new ProbeSpecError(`${field}: exactly one handler (exec, httpGet, tcpSocket, grpc) must be set, found ${set.length}`);
  if (h.exec) {
    if (!h.exec.command?.length) throw new ProbeSpecError(`${field}.exec.command: required`);
    return { kind: 'exec', command: h.exec.command };
  }
  if (!podIP && !(h.httpGet?.host || h.tcpSocket?.host) && !h.sleep) throw new ProbeSpecError(`${field}: the pod has no IP yet`);
  if (h.httpGet) return httpAction(h.httpGet, container, podIP, `${field}.httpGet`);
  if (h.tcpSocket) return tcpAction(h.tcpSocket, container, podIP, `${field}.tcpSocket`);
  if (h.grpc) return grpcAction(h.grpc, container, podIP, `${field}.grpc`);
  return { kind: 'sleep', seconds: Math.max(0, h.sleep!.seconds) };
}
