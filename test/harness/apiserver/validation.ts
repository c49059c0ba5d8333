/**
 * The validation kube-apiserver does that a client can trip over: names, labels, and the few
 * required fields of the kinds keelson writes. Violations are 422 Invalid with field causes.
 */
import type { ResourceDef } from './resources';
import { errors } from './status';
import type { Obj } from './store';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Kinds whose names must be DNS labels rather than subdomains. */
const LABEL_NAMED = new Set(['Namespace', 'Service']);

interface Cause {
  field: string;
  message: string;
  reason?: string;
}

function validLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : '';
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length > 0 && name.length <= 63 && LABEL_KEY_NAME.test(name);
}

function validateMetadata(def: ResourceDef, obj: Obj, causes: Cause[]): void {
  const meta = obj.metadata ?? {};
  const name: string = meta.name ?? '';
  if (!name) {
    causes.push({ field: 'metadata.name', message: 'Required value: name or generateName is required', reason: 'FieldValueRequired' });
  } else if (LABEL_NAMED.has(def.kind) ? !(DNS_LABEL.test(name) && name.length <= 63) : !(DNS_SUBDOMAIN.test(name) && name.length <= 253)) {
    const what = LABEL_NAMED.has(def.kind) ? 'RFC 1123 label' : 'RFC 1123 subdomain';
    causes.push({ field: 'metadata.name', message: `Invalid value: "${name}": a lowercase ${what} must consist of lower case alphanumeric characters or '-'` });
  }
  for (const [key, value] of Object.entries((meta.labels ?? {}) as Record<string, unknown>)) {
    if (!validLabelKey(key)) causes.push({ field: 'metadata.labels', message: `Invalid value: "${key}": name part must consist of alphanumeric characters, '-', '_' or '.'` });
    if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
      causes.push({ field: 'metadata.labels', message: `Invalid value: "${String(value)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'` });
    }
  }
  for (const [key, value] of Object.entries((meta.annotations ?? {}) as Record<string, unknown>)) {
    if (!validLabelKey(key)) causes.push({ field: 'metadata.annotations', message: `Invalid value: "${key}": name part must consist of alphanumeric characters, '-', '_' or '.'` });
    if (typeof value !== 'string') causes.push({ field: `metadata.annotations`, message: `Invalid value: annotation values must be strings` });
  }
}

function validatePod(pod: Obj, causes: Cause[]): void {
  const containers: Obj[] = pod.spec?.containers ?? [];
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push({ field: 'spec.containers', message: 'Required value', reason: 'FieldValueRequired' });
    return;
  }
  const names = new Set<string>();
  containers.forEach((c, i) => {
    if (!c?.name) causes.push({ field: `spec.containers[${i}].name`, message: 'Required value', reason: 'FieldValueRequired' });
    else if (names.has(c.name)) causes.push({ field: `spec.containers[${i}].name`, message: `Duplicate value: "${c.name}"`, reason: 'FieldValueDuplicate' });
    else names.add(c.name);
    if (!c?.image) causes.push({ field: `spec.containers[${i}].image`, message: 'Required value', reason: 'FieldValueRequired' });
  });
}

function validateService(svc: Obj, causes: Cause[]): void {
  const spec = svc.spec ?? {};
  if (spec.type !== 'ExternalName' && spec.clusterIP !== 'None' && !(spec.ports?.length > 0)) {
    causes.push({ field: 'spec.ports', message: 'Required value', reason: 'FieldValueRequired' });
  }
  (spec.ports ?? []).forEach((p: Obj, i: number) => {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      causes.push({ field: `spec.ports[${i}].port`, message: `Invalid value: ${JSON.stringify(p.port)}: must be between 1 and 65535, inclusive` });
    }
  });
}

/** Throws 422 Invalid when the object breaks a rule kube-apiserver enforces. */
export function validate(def: ResourceDef, obj: Obj): void {
  const causes: Cause[] = [];
  validateMetadata(def, obj, causes);
  if (def.kind === 'Pod') validatePod(obj, causes);
  if (def.kind === 'Service') validateService(obj, causes);
  if (def.kind === 'CertificateSigningRequest') {
    if (!obj.spec?.request) causes.push({ field: 'spec.request', message: 'Required value', reason: 'FieldValueRequired' });
    if (!obj.spec?.signerName) causes.push({ field: 'spec.signerName', message: 'Required value', reason: 'FieldValueRequired' });
  }
  if (def.kind === 'Node' && obj.spec?.podCIDR === '') delete obj.spec.podCIDR;
  if (causes.length) throw errors.invalid(def.kind, def.group, obj.metadata?.name ?? '', causes);
}

/**
 * Pod updates may change only container images, activeDeadlineSeconds, added tolerations and
 * removed scheduling gates (spec.nodeName is set through pods/binding), as upstream validation.
 */
export function validatePodUpdate(oldPod: Obj, newPod: Obj): void {
  const relaxed = structuredClone(oldPod.spec ?? {});
  const next = newPod.spec ?? {};
  for (const list of ['containers', 'initContainers'] as const) {
    const mine: Obj[] = relaxed[list] ?? [];
    const theirs: Obj[] = next[list] ?? [];
    if (mine.length === theirs.length) mine.forEach((c, i) => (c.image = theirs[i]!.image));
  }
  if (next.activeDeadlineSeconds === undefined) delete relaxed.activeDeadlineSeconds;
  else relaxed.activeDeadlineSeconds = next.activeDeadlineSeconds;
  const oldTolerations: Obj[] = relaxed.tolerations ?? [];
  const newTolerations: Obj[] = next.tolerations ?? [];
  const kept = oldTolerations.every((o) => newTolerations.some((n) => JSON.stringify(n) === JSON.stringify(o)));
  if (kept && next.tolerations !== undefined) relaxed.tolerations = next.tolerations;
  if (next.schedulingGates === undefined || (next.schedulingGates as Obj[]).length < (relaxed.schedulingGates ?? []).length) {
    if (next.schedulingGates === undefined) delete relaxed.schedulingGates;
    else relaxed.schedulingGates = next.schedulingGates;
  }
  if (sortedJson(relaxed) !== sortedJson(next)) {
    throw errors.invalid('Pod', '', newPod.metadata?.name ?? '', [
      {
        field: 'spec',
        message: 'Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
        reason: 'FieldValueForbidden',
      },
    ]);
  }
}

function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
