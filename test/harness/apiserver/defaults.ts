/**
 * Defaulting and allocation done by kube-apiserver on create, for the fields keelson reads:
 * pod spec defaults and the initial Pending status, Service type/ports/clusterIP/nodePort
 * allocation, Namespace phase and name label, Secret type.
 */
import type { Obj } from './store';

export interface Allocators {
  /** Next free ClusterIP from 10.96.0.0/12 (10.96.0.1 is the `kubernetes` Service). */
  clusterIP(): string;
  release(ip: string): void;
  nodePort(): number;
  releasePort(port: number): void;
  reserve(ip?: string, ports?: number[]): void;
}

export function createAllocators(): Allocators {
  const usedIps = new Set<string>(['10.96.0.1']);
  const usedPorts = new Set<number>();
  let nextIp = 10;
  let nextPort = 30000;
  return {
    clusterIP() {
      for (;;) {
        const n = nextIp++;
        const ip = `10.${96 + ((n >> 16) & 0x0f)}.${(n >> 8) & 0xff}.${n & 0xff}`;
        if ((n & 0xff) === 0 || (n & 0xff) === 255 || usedIps.has(ip)) continue;
        usedIps.add(ip);
        return ip;
      }
    },
    release: (ip) => void usedIps.delete(ip),
    nodePort() {
      for (let i = 0; i < 2768; i++) {
        const port = nextPort;
        nextPort = nextPort >= 32767 ? 30000 : nextPort + 1;
        if (!usedPorts.has(port)) {
          usedPorts.add(port);
          return port;
        }
      }
      throw new Error('node port range exhausted');
    },
    releasePort: (port) => void usedPorts.delete(port),
    reserve(ip, ports = []) {
      if (ip && ip !== 'None') usedIps.add(ip);
      for (const p of ports) usedPorts.add(p);
    },
  };
}

function defaultContainer(c: Obj): void {
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  if (!c.imagePullPolicy) {
    const image = String(c.image ?? '');
    const tag = /:([^/:@]+)$/.exec(image.split('@')[0]!)?.[1];
    c.imagePullPolicy = image.includes('@') ? 'IfNotPresent' : !tag || tag === 'latest' ? 'Always' : 'IfNotPresent';
  }
  c.resources ??= {};
  for (const p of c.ports ?? []) p.protocol ??= 'TCP';
  for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
    if (!probe) continue;
    probe.timeoutSeconds ??= 1;
    probe.periodSeconds ??= 10;
    probe.successThreshold ??= 1;
    probe.failureThreshold ??= 3;
    if (probe.httpGet) probe.httpGet.scheme ??= 'HTTP';
  }
}

function qosClass(spec: Obj): string {
  const containers: Obj[] = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
  let anySet = false;
  let guaranteed = true;
  for (const c of containers) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) anySet = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || (req[r] !== undefined && req[r] !== lim[r])) guaranteed = false;
    }
  }
  if (!anySet) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export function defaultPod(pod: Obj): void {
  const spec = (pod.spec ??= {});
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  spec.enableServiceLinks ??= true;
  spec.priority ??= 0;
  spec.preemptionPolicy ??= 'PreemptLowerPriority';
  spec.serviceAccountName ??= spec.serviceAccount ?? 'default';
  spec.serviceAccount ??= spec.serviceAccountName;
  for (const c of spec.containers ?? []) defaultContainer(c);
  for (const c of spec.initContainers ?? []) defaultContainer(c);
  const tolerations: Obj[] = (spec.tolerations ??= []);
  for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
    if (!tolerations.some((t) => t.key === key)) {
      tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    }
  }
  // Status is reset on create, as the pod strategy does.
  pod.status = { phase: 'Pending', qosClass: qosClass(spec) };
}

export function defaultService(svc: Obj, alloc: Allocators): void {
  const spec = (svc.spec ??= {});
  spec.type ??= 'ClusterIP';
  spec.sessionAffinity ??= 'None';
  for (const p of spec.ports ?? []) {
    p.protocol ??= 'TCP';
    p.targetPort ??= p.port;
  }
  if (spec.type === 'ExternalName') return;
  spec.internalTrafficPolicy ??= 'Cluster';
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') spec.externalTrafficPolicy ??= 'Cluster';
  spec.ipFamilies ??= ['IPv4'];
  spec.ipFamilyPolicy ??= 'SingleStack';
  if (!spec.clusterIP && spec.clusterIPs?.[0]) spec.clusterIP = spec.clusterIPs[0];
  if (!spec.clusterIP) spec.clusterIP = alloc.clusterIP();
  else alloc.reserve(spec.clusterIP);
  spec.clusterIPs ??= [spec.clusterIP];
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') {
    for (const p of spec.ports ?? []) {
      if (p.nodePort) alloc.reserve(undefined, [p.nodePort]);
      else p.nodePort = alloc.nodePort();
    }
  }
  svc.status = { loadBalancer: {} }; // status is reset on create, as the service strategy does
}

export function releaseService(svc: Obj, alloc: Allocators): void {
  const ip = svc.spec?.clusterIP;
  if (ip && ip !== 'None') alloc.release(ip);
  for (const p of svc.spec?.ports ?? []) if (p.nodePort) alloc.releasePort(p.nodePort);
}

export function defaultNamespace(ns: Obj): void {
  ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata.name };
  ns.spec = { finalizers: ['kubernetes'], ...(ns.spec ?? {}) };
  ns.status = { phase: 'Active' };
}

export function defaultSecret(secret: Obj): void {
  secret.type ??= 'Opaque';
}

export function defaultEndpointSlice(slice: Obj): void {
  for (const p of slice.ports ?? []) p.protocol ??= 'TCP';
  for (const e of slice.endpoints ?? []) {
    e.conditions ??= {};
  }
}
