/**
 * Pod admission (kubelet's predicate admit handler): before a pod bound to this node runs, check it
 * against the Node and the pods already admitted, as the scheduler should have done. A pod that does
 * not fit is rejected: phase Failed with the upstream reason (`OutOfcpu`, `OutOfmemory`, `OutOfpods`,
 * `NodeAffinity`, `NodeName`, `NodePorts`, `TaintToleration`) and message `Pod was rejected: …`.
 * Pure: the kubelet owns the list of admitted pods and acts on the result.
 */
import type { Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration } from 'kubernetes-types/core/v1';
import { bytes, milliCpu } from './quantity';

export type AdmitResult = { admit: true } | { admit: false; reason: string; message: string };

/** Requests of a pod as the scheduler counts them: max(sum of containers, largest init container) + overhead. */
export function podRequests(pod: Pod): Map<string, number> {
  const sum = new Map<string, number>();
  const value = (name: string, q: string | number) => (name === 'cpu' ? milliCpu(q) : bytes(q)) ?? 0;
  const requestsOf = (c: { resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> } }) => {
    const out = new Map<string, number>();
    const limits = c.resources?.limits ?? {};
    const requests = c.resources?.requests ?? {};
    for (const name of new Set([...Object.keys(limits), ...Object.keys(requests)])) {
      const q = requests[name] ?? limits[name]; // requests default to limits
      if (q !== undefined) out.set(name, value(name, q));
    }
    return out;
  };
  for (const c of pod.spec?.containers ?? []) for (const [k, v] of requestsOf(c)) sum.set(k, (sum.get(k) ?? 0) + v);
  for (const c of pod.spec?.initContainers ?? []) {
    for (const [k, v] of requestsOf(c as never)) if (v > (sum.get(k) ?? 0)) sum.set(k, v);
  }
  for (const [k, q] of Object.entries(pod.spec?.overhead ?? {})) sum.set(k, (sum.get(k) ?? 0) + value(k, q));
  return sum;
}

function requirementMatches(req: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1) return false;
      const a = Number.parseInt(value, 10);
      const b = Number.parseInt(values[0], 10);
      if (Number.isNaN(a) || Number.isNaN(b)) return false;
      return req.operator === 'Gt' ? a > b : a < b;
    }
    default:
      return false;
  }
}

function termMatches(term: NodeSelectorTerm, node: Node): boolean {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (exprs.length === 0 && fields.length === 0) return false; // an empty term matches no node
  const labels = node.metadata?.labels ?? {};
  if (!exprs.every((r) => requirementMatches(r, labels[r.key]))) return false;
  return fields.every((r) => r.key === 'metadata.name' && requirementMatches(r, node.metadata?.name));
}

/** nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity. */
export function matchesNodeAffinity(pod: Pod, node: Node): boolean {
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (!required) return true;
  return required.nodeSelectorTerms.some((t) => termMatches(t, node));
}

export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  const op = toleration.operator ?? 'Equal';
  if (op === 'Exists') return !toleration.key || toleration.key === taint.key;
  if (!toleration.key) return false; // an empty key needs operator Exists
  return (toleration.value ?? '') === (taint.value ?? '');
}

/** The first NoExecute taint the pod does not tolerate (the kubelet only cares about NoExecute). */
export function untoleratedNoExecuteTaint(pod: Pod, node: Node): Taint | undefined {
  const tolerations = pod.spec?.tolerations ?? [];
  return (node.spec?.taints ?? []).find((t) => t.effect === 'NoExecute' && !tolerations.some((tol) => tolerates(tol, t)));
}

interface HostPort {
  ip: string;
  protocol: string;
  port: number;
}

function hostPorts(pod: Pod): HostPort[] {
  const out: HostPort[] = [];
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (!p.hostPort) continue;
      out.push({ ip: p.hostIP || '0.0.0.0', protocol: p.protocol ?? 'TCP', port: p.hostPort });
    }
  }
  return out;
}

function portsConflict(a: HostPort, b: HostPort): boolean {
  return a.port === b.port && a.protocol === b.protocol && (a.ip === b.ip || a.ip === '0.0.0.0' || b.ip === '0.0.0.0');
}

const predicate = (name: string, desc: string): AdmitResult => ({ admit: false, reason: name, message: `Predicate ${name} failed: ${desc}` });

function insufficient(resource: string, requested: number, used: number, capacity: number): AdmitResult {
  return {
    admit: false,
    reason: `OutOf${resource}`,
    message: `Node didn't have enough resource: ${resource}, requested: ${requested}, used: ${used}, capacity: ${capacity}`,
  };
}

function allocatableValue(name: string, q: string | number | undefined): number {
  if (q === undefined) return 0;
  return (name === 'cpu' ? milliCpu(q) : bytes(q)) ?? 0;
}

/**
 * Checks pod against node and the pods already admitted (not terminal), in kubelet's order:
 * resources (pods count first), node affinity/selector, node name, host ports, NoExecute taints.
 * Static pods skip the taint check, as in kubelet. The first failure decides the reason.
 */
export function admitPod(pod: Pod, node: Node, admitted: Pod[]): AdmitResult {
  const allocatable = node.status?.allocatable ?? {};
  if (allocatable.pods !== undefined) {
    const capacity = allocatableValue('pods', allocatable.pods);
    if (admitted.length + 1 > capacity) return insufficient('pods', 1, admitted.length, capacity);
  }
  const wanted = podRequests(pod);
  for (const [name, requested] of wanted) {
    if (requested <= 0 || name === 'pods') continue;
    const known = allocatable[name] !== undefined;
    // resources the node does not report are not checked, except cpu and memory (0 available)
    if (!known && name !== 'cpu' && name !== 'memory' && name !== 'ephemeral-storage') continue;
    const capacity = allocatableValue(name, allocatable[name]);
    const used = admitted.reduce((sum, p) => sum + (podRequests(p).get(name) ?? 0), 0);
    if (requested + used > capacity) return insufficient(name, requested, used, capacity);
  }
  if (!matchesNodeAffinity(pod, node)) return predicate('NodeAffinity', "node(s) didn't match Pod's node affinity/selector");
  if (pod.spec?.nodeName && pod.spec.nodeName !== node.metadata?.name) return predicate('NodeName', "node(s) didn't match the requested node name");
  const mine = hostPorts(pod);
  if (mine.length) {
    const taken = admitted.flatMap(hostPorts);
    if (mine.some((a, i) => taken.some((b) => portsConflict(a, b)) || mine.slice(i + 1).some((b) => portsConflict(a, b)))) {
      return predicate('NodePorts', "node(s) didn't have free ports for the requested pod ports");
    }
  }
  const isStatic = pod.metadata?.annotations?.['kubernetes.io/config.source'] === 'file';
  if (!isStatic && untoleratedNoExecuteTaint(pod, node)) return predicate('TaintToleration', 'node(s) had untolerated taint');
  return { admit: true };
}

/** The status kubelet writes for a rejected pod. */
export function rejectedStatus(result: { reason: string; message: string }) {
  return { phase: 'Failed', reason: result.reason, message: `Pod was rejected: ${result.message}` };
}
