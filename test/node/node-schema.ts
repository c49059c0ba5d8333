/**
 * A small structural check of a v1 Node against the Kubernetes OpenAPI schema's required fields
 * and types (the parts keelson writes): returns the list of violations, empty when valid.
 */
type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validateNode(node: Json): string[] {
  const errors: string[] = [];
  const need = (cond: boolean, msg: string) => void (cond || errors.push(msg));
  const str = (v: unknown) => typeof v === 'string';
  need(node?.apiVersion === 'v1' && node?.kind === 'Node', 'apiVersion/kind must be v1 Node');
  const meta = node?.metadata ?? {};
  need(str(meta.name) && DNS_SUBDOMAIN.test(meta.name) && meta.name.length <= 253, 'metadata.name must be a DNS subdomain');
  for (const [k, v] of Object.entries(meta.labels ?? {})) {
    need(LABEL_KEY.test(k), `metadata.labels key ${k} invalid`);
    need(str(v) && LABEL_VALUE.test(v as string), `metadata.labels[${k}] value invalid`);
  }
  for (const [i, taint] of ((node?.spec?.taints ?? []) as Json[]).entries()) {
    need(str(taint.key) && LABEL_KEY.test(taint.key), `spec.taints[${i}].key required`);
    need(['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(taint.effect), `spec.taints[${i}].effect invalid`);
    if (taint.value !== undefined) need(str(taint.value) && LABEL_VALUE.test(taint.value), `spec.taints[${i}].value invalid`);
  }
  const status = node?.status ?? {};
  for (const field of ['capacity', 'allocatable']) {
    need(typeof status[field] === 'object', `status.${field} required`);
    for (const [k, v] of Object.entries(status[field] ?? {})) need(str(v) && QUANTITY.test(v as string), `status.${field}.${k} not a quantity`);
  }
  for (const [i, c] of ((status.conditions ?? []) as Json[]).entries()) {
    need(str(c.type) && c.type !== '', `status.conditions[${i}].type required`);
    need(['True', 'False', 'Unknown'].includes(c.status), `status.conditions[${i}].status invalid`);
    for (const t of ['lastHeartbeatTime', 'lastTransitionTime']) if (c[t] !== undefined) need(RFC3339.test(c[t]), `status.conditions[${i}].${t} not RFC 3339`);
    for (const t of ['reason', 'message']) if (c[t] !== undefined) need(str(c[t]), `status.conditions[${i}].${t} not a string`);
  }
  const types = ((status.conditions ?? []) as Json[]).map((c) => c.type);
  need(new Set(types).size === types.length, 'status.conditions types must be unique');
  for (const [i, a] of ((status.addresses ?? []) as Json[]).entries()) {
    need(['Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS'].includes(a.type), `status.addresses[${i}].type invalid`);
    need(str(a.address) && a.address !== '', `status.addresses[${i}].address required`);
  }
  const info = status.nodeInfo;
  need(typeof info === 'object' && info !== null, 'status.nodeInfo required');
  for (const f of ['machineID', 'systemUUID', 'bootID', 'kernelVersion', 'osImage', 'containerRuntimeVersion', 'kubeletVersion', 'kubeProxyVersion', 'operatingSystem', 'architecture']) {
    need(str(info?.[f]), `status.nodeInfo.${f} required string`);
  }
  const port = status.daemonEndpoints?.kubeletEndpoint?.Port;
  need(Number.isInteger(port) && port > 0 && port < 65536, 'status.daemonEndpoints.kubeletEndpoint.Port required integer');
  return errors;
}
