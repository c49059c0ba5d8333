/**
 * Static pod manifests: parse a file (YAML or JSON; one or several documents, or a v1 List), check
 * every document against the Pod schema (unknown fields, types, required fields, enums) and apply
 * the API defaults kubelet relies on. Problems name the field (`spec.containers[1].image`) so the
 * operator can fix the file; one bad document never hides the good ones beside it.
 */
import { CORE_SCHEMA, loadAll, YAMLException } from 'js-yaml';
import type { Container, Pod } from 'kubernetes-types/core/v1';
import { bytes, milliCpu } from './quantity';

export interface FieldProblem {
  field: string;
  message: string;
}

export interface ManifestDocument {
  /** 0-based position of the document in the file (or of the item in a List). */
  index: number;
  /** The raw object as written; used for the static pod UID. */
  raw: unknown;
  /** Set when the document is a valid Pod; defaults applied. */
  pod?: Pod;
  errors: FieldProblem[];
  /** Valid fields keelson does not act on yet (probes, affinity…): reported, not fatal. */
  warnings: FieldProblem[];
}

export interface ParsedManifest {
  documents: ManifestDocument[];
  /** A problem with the file as a whole (syntax); when set, documents is empty. */
  fileError?: FieldProblem;
}

// ---------------------------------------------------------------- schema

type Type =
  | 'string' | 'int' | 'bool' | 'any' | 'stringMap' | 'stringList' | 'quantityMap'
  | { object: Record<string, Type> }
  | { list: Type };

const obj = (fields: Record<string, Type>): Type => ({ object: fields });
const list = (item: Type): Type => ({ list: item });

const objectMeta = obj({
  name: 'string', generateName: 'string', namespace: 'string', uid: 'string', resourceVersion: 'string',
  generation: 'int', creationTimestamp: 'any', deletionTimestamp: 'any', deletionGracePeriodSeconds: 'int',
  labels: 'stringMap', annotations: 'stringMap', ownerReferences: 'any', finalizers: 'stringList',
  managedFields: 'any', selfLink: 'string',
});

const securityContext = obj({
  capabilities: 'any', privileged: 'bool', seLinuxOptions: 'any', windowsOptions: 'any', runAsUser: 'int',
  runAsGroup: 'int', runAsNonRoot: 'bool', readOnlyRootFilesystem: 'bool', allowPrivilegeEscalation: 'bool',
  procMount: 'string', seccompProfile: 'any', appArmorProfile: 'any',
});

const container = obj({
  name: 'string', image: 'string', command: 'stringList', args: 'stringList', workingDir: 'string',
  ports: list(obj({ name: 'string', hostPort: 'int', containerPort: 'int', protocol: 'string', hostIP: 'string' })),
  envFrom: 'any',
  env: list(obj({
    name: 'string', value: 'string',
    valueFrom: obj({ fieldRef: obj({ apiVersion: 'string', fieldPath: 'string' }), resourceFieldRef: 'any', configMapKeyRef: 'any', secretKeyRef: 'any' }),
  })),
  resources: obj({ limits: 'quantityMap', requests: 'quantityMap', claims: 'any' }),
  resizePolicy: 'any', restartPolicy: 'string', volumeMounts: 'any', volumeDevices: 'any',
  livenessProbe: 'any', readinessProbe: 'any', startupProbe: 'any', lifecycle: 'any',
  terminationMessagePath: 'string', terminationMessagePolicy: 'string', imagePullPolicy: 'string',
  securityContext, stdin: 'bool', stdinOnce: 'bool', tty: 'bool',
});

const podSpec = obj({
  volumes: 'any', initContainers: 'any', containers: list(container), ephemeralContainers: 'any',
  restartPolicy: 'string', terminationGracePeriodSeconds: 'int', activeDeadlineSeconds: 'int', dnsPolicy: 'string',
  nodeSelector: 'stringMap', serviceAccountName: 'string', serviceAccount: 'string', automountServiceAccountToken: 'bool',
  nodeName: 'string', hostNetwork: 'bool', hostPID: 'bool', hostIPC: 'bool', shareProcessNamespace: 'bool',
  securityContext: 'any', imagePullSecrets: 'any', hostname: 'string', subdomain: 'string', affinity: 'any',
  schedulerName: 'string', tolerations: 'any', hostAliases: 'any', priorityClassName: 'string', priority: 'int',
  dnsConfig: 'any', readinessGates: 'any', runtimeClassName: 'string', enableServiceLinks: 'bool',
  preemptionPolicy: 'string', overhead: 'quantityMap', topologySpreadConstraints: 'any', setHostnameAsFQDN: 'bool',
  os: 'any', hostUsers: 'bool', schedulingGates: 'any', resourceClaims: 'any', resources: 'any',
});

const podSchema = obj({ apiVersion: 'string', kind: 'string', metadata: objectMeta, spec: podSpec, status: 'any' });

/** Valid Pod fields that change what runs and that standalone keelson cannot honour yet: errors. */
const UNSUPPORTED = new Set([
  'spec.volumes', 'spec.initContainers', 'spec.ephemeralContainers', 'spec.hostPID', 'spec.hostIPC',
  'spec.shareProcessNamespace', 'spec.runtimeClassName', 'spec.containers[].volumeMounts',
  'spec.containers[].volumeDevices', 'spec.containers[].envFrom', 'spec.containers[].restartPolicy',
  'spec.containers[].env[].valueFrom.resourceFieldRef', 'spec.containers[].env[].valueFrom.configMapKeyRef',
  'spec.containers[].env[].valueFrom.secretKeyRef',
]);

/** Valid Pod fields that are accepted and not acted upon yet: warnings. */
const IGNORED = new Set([
  'spec.containers[].livenessProbe', 'spec.containers[].readinessProbe', 'spec.containers[].startupProbe',
  'spec.containers[].lifecycle', 'spec.affinity', 'spec.tolerations', 'spec.nodeSelector', 'spec.hostAliases',
  'spec.dnsConfig', 'spec.securityContext', 'spec.imagePullSecrets', 'spec.activeDeadlineSeconds',
  'spec.readinessGates', 'spec.topologySpreadConstraints', 'spec.schedulingGates', 'spec.resourceClaims',
  'spec.resources', 'spec.overhead', 'spec.os', 'spec.hostUsers', 'spec.subdomain', 'spec.setHostnameAsFQDN',
  'spec.containers[].securityContext.capabilities', 'spec.containers[].securityContext.seLinuxOptions',
  'spec.containers[].securityContext.runAsGroup', 'spec.containers[].securityContext.runAsNonRoot',
  'spec.containers[].securityContext.readOnlyRootFilesystem', 'spec.containers[].securityContext.seccompProfile',
  'spec.containers[].securityContext.appArmorProfile', 'spec.containers[].securityContext.allowPrivilegeEscalation',
  'spec.containers[].securityContext.procMount', 'spec.containers[].stdin', 'spec.containers[].tty',
]);

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function walk(value: unknown, type: Type, path: string, shape: string, out: ManifestDocument): void {
  if (value === null || value === undefined) return;
  const wrong = (expected: string): void => {
    out.errors.push({ field: path, message: `Invalid value: expected ${expected}, got ${typeName(value)}` });
  };
  if (type === 'any') return;
  if (type === 'string') return void (typeof value === 'string' || wrong('string'));
  if (type === 'bool') return void (typeof value === 'boolean' || wrong('boolean'));
  if (type === 'int') return void (Number.isInteger(value) || wrong('integer'));
  if (type === 'stringList') {
    if (!Array.isArray(value)) return wrong('array of strings');
    value.forEach((v, i) => typeof v === 'string' || out.errors.push({ field: `${path}[${i}]`, message: `Invalid value: expected string, got ${typeName(v)}` }));
    return;
  }
  if (type === 'stringMap' || type === 'quantityMap') {
    if (typeof value !== 'object' || Array.isArray(value)) return wrong('object');
    for (const [k, v] of Object.entries(value)) {
      const ok = typeof v === 'string' || (type === 'quantityMap' && typeof v === 'number');
      if (!ok) out.errors.push({ field: `${path}.${k}`, message: `Invalid value: expected string, got ${typeName(v)}` });
    }
    return;
  }
  if ('list' in type) {
    if (!Array.isArray(value)) return wrong('array');
    value.forEach((v, i) => walk(v, type.list, `${path}[${i}]`, `${shape}[]`, out));
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) return wrong('object');
  for (const [key, v] of Object.entries(value)) {
    const fieldPath = path ? `${path}.${key}` : key;
    const fieldShape = shape ? `${shape}.${key}` : key;
    const fieldType = type.object[key];
    if (!fieldType) {
      out.errors.push({ field: fieldPath, message: 'unknown field' });
      continue;
    }
    if (v !== null && v !== undefined && v !== false) {
      if (UNSUPPORTED.has(fieldShape)) out.errors.push({ field: fieldPath, message: 'Unsupported: keelson does not support this field for static pods yet' });
      else if (IGNORED.has(fieldShape)) out.warnings.push({ field: fieldPath, message: 'ignored: keelson does not act on this field yet' });
    }
    walk(v, fieldType, fieldPath, fieldShape, out);
  }
}

// ---------------------------------------------------------------- semantic checks

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'];
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];
const DNS_POLICIES = ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'];
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const FIELD_REFS = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.podIP', 'status.hostIP'];

function unsupportedValue(value: unknown, allowed: string[]): string {
  return `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => `"${a}"`).join(', ')}`;
}

function checkContainer(c: Container, path: string, errors: FieldProblem[]): void {
  if (!c.name) errors.push({ field: `${path}.name`, message: 'Required value' });
  else if (c.name.length > 63 || !DNS_LABEL.test(c.name)) errors.push({ field: `${path}.name`, message: `Invalid value: ${JSON.stringify(c.name)}: must be a lowercase RFC 1123 label` });
  if (!c.image || !c.image.trim()) errors.push({ field: `${path}.image`, message: 'Required value' });
  if (c.imagePullPolicy !== undefined && !PULL_POLICIES.includes(c.imagePullPolicy)) {
    errors.push({ field: `${path}.imagePullPolicy`, message: unsupportedValue(c.imagePullPolicy, PULL_POLICIES) });
  }
  (c.ports ?? []).forEach((p, i) => {
    const pp = `${path}.ports[${i}]`;
    if (p.containerPort === undefined) errors.push({ field: `${pp}.containerPort`, message: 'Required value' });
    else if (p.containerPort < 1 || p.containerPort > 65535) errors.push({ field: `${pp}.containerPort`, message: `Invalid value: ${p.containerPort}: must be between 1 and 65535` });
    if (p.hostPort !== undefined && (p.hostPort < 0 || p.hostPort > 65535)) errors.push({ field: `${pp}.hostPort`, message: `Invalid value: ${p.hostPort}: must be between 0 and 65535` });
    if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol)) errors.push({ field: `${pp}.protocol`, message: unsupportedValue(p.protocol, PROTOCOLS) });
  });
  (c.env ?? []).forEach((e, i) => {
    const ep = `${path}.env[${i}]`;
    if (!e.name) errors.push({ field: `${ep}.name`, message: 'Required value' });
    else if (e.name.includes('=')) errors.push({ field: `${ep}.name`, message: `Invalid value: ${JSON.stringify(e.name)}: must not contain '='` });
    const ref = e.valueFrom?.fieldRef;
    if (e.valueFrom && e.value !== undefined && e.value !== '') errors.push({ field: `${ep}.valueFrom`, message: 'Invalid value: may not be specified when `value` is not empty' });
    if (ref && !FIELD_REFS.includes(ref.fieldPath)) errors.push({ field: `${ep}.valueFrom.fieldRef.fieldPath`, message: unsupportedValue(ref.fieldPath, FIELD_REFS) });
  });
  for (const kind of ['limits', 'requests'] as const) {
    for (const [name, q] of Object.entries(c.resources?.[kind] ?? {})) {
      const field = `${path}.resources.${kind}.${name}`;
      const parsed = name === 'cpu' ? milliCpu(q) : bytes(q);
      if (parsed === undefined) errors.push({ field, message: `Invalid value: ${JSON.stringify(q)}: must be a quantity` });
    }
  }
  const runAsUser = c.securityContext?.runAsUser;
  if (runAsUser !== undefined && runAsUser < 0) errors.push({ field: `${path}.securityContext.runAsUser`, message: `Invalid value: ${runAsUser}: must be >= 0` });
}

function checkKind(raw: { apiVersion?: unknown; kind?: unknown }, errors: FieldProblem[]): void {
  if (raw.apiVersion !== 'v1') errors.push({ field: 'apiVersion', message: raw.apiVersion === undefined ? 'Required value: must be "v1"' : unsupportedValue(raw.apiVersion, ['v1']) });
  if (raw.kind !== 'Pod') errors.push({ field: 'kind', message: raw.kind === undefined ? 'Required value: must be "Pod"' : unsupportedValue(raw.kind, ['Pod']) });
}

function checkPod(pod: Pod, errors: FieldProblem[]): void {
  const name = pod.metadata?.name;
  if (!name) errors.push({ field: 'metadata.name', message: 'Required value' });
  else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) errors.push({ field: 'metadata.name', message: `Invalid value: ${JSON.stringify(name)}: must be a lowercase RFC 1123 subdomain` });
  const ns = pod.metadata?.namespace;
  if (ns && (ns.length > 63 || !DNS_LABEL.test(ns))) errors.push({ field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(ns)}: must be a lowercase RFC 1123 label` });
  const spec = pod.spec;
  if (!spec) return void errors.push({ field: 'spec', message: 'Required value' });
  if (!spec.containers || spec.containers.length === 0) errors.push({ field: 'spec.containers', message: 'Required value' });
  const seen = new Set<string>();
  (spec.containers ?? []).forEach((c, i) => {
    if (!c || typeof c !== 'object') return;
    checkContainer(c, `spec.containers[${i}]`, errors);
    if (c.name && seen.has(c.name)) errors.push({ field: `spec.containers[${i}].name`, message: `Duplicate value: ${JSON.stringify(c.name)}` });
    if (c.name) seen.add(c.name);
  });
  if (spec.restartPolicy !== undefined && !RESTART_POLICIES.includes(spec.restartPolicy)) {
    errors.push({ field: 'spec.restartPolicy', message: unsupportedValue(spec.restartPolicy, RESTART_POLICIES) });
  }
  if (spec.dnsPolicy !== undefined && !DNS_POLICIES.includes(spec.dnsPolicy)) errors.push({ field: 'spec.dnsPolicy', message: unsupportedValue(spec.dnsPolicy, DNS_POLICIES) });
  const grace = spec.terminationGracePeriodSeconds;
  if (grace !== undefined && grace < 0) errors.push({ field: 'spec.terminationGracePeriodSeconds', message: `Invalid value: ${grace}: must be >= 0` });
  if (spec.hostname !== undefined && (spec.hostname.length > 63 || !DNS_LABEL.test(spec.hostname))) {
    errors.push({ field: 'spec.hostname', message: `Invalid value: ${JSON.stringify(spec.hostname)}: must be a lowercase RFC 1123 label` });
  }
}

// ---------------------------------------------------------------- defaults

/** IfNotPresent, unless the image has no tag or the tag `latest` (then Always), as the API defaults it. */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  if (image.includes('@')) return 'IfNotPresent';
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastPart.lastIndexOf(':');
  if (colon < 0) return 'Always';
  return lastPart.slice(colon + 1) === 'latest' ? 'Always' : 'IfNotPresent';
}

/** A deep copy of pod with the API defaults kubelet relies on. */
export function applyDefaults(input: Pod): Pod {
  const pod = structuredClone(input);
  const metadata = (pod.metadata ??= {});
  metadata.namespace ||= 'default';
  const spec = pod.spec!;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  for (const c of spec.containers) {
    c.imagePullPolicy ??= defaultPullPolicy(c.image!);
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    for (const p of c.ports ?? []) {
      p.protocol ??= 'TCP';
      if (spec.hostNetwork && !p.hostPort) p.hostPort = p.containerPort;
    }
  }
  return pod;
}

// ---------------------------------------------------------------- parsing

/** Checks one decoded document; returns it with a defaulted pod when valid. */
export function validateDocument(raw: unknown, index: number): ManifestDocument {
  const doc: ManifestDocument = { index, raw, errors: [], warnings: [] };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    doc.errors.push({ field: '', message: `Invalid value: expected an object, got ${typeName(raw)}` });
    return doc;
  }
  checkKind(raw, doc.errors);
  if (doc.errors.length === 0) walk(raw, podSchema, '', '', doc);
  if (doc.errors.length === 0) checkPod(raw as Pod, doc.errors);
  if (doc.errors.length === 0) doc.pod = applyDefaults(raw as Pod);
  return doc;
}

function isList(value: unknown): value is { kind: string; items: unknown[] } {
  const v = value as { kind?: unknown; items?: unknown } | null;
  return !!v && typeof v === 'object' && (v.kind === 'List' || v.kind === 'PodList') && Array.isArray(v.items);
}

/** Parses a manifest file's text: YAML (several `---` documents allowed), JSON, or a v1 List. */
export function parseManifest(text: string): ParsedManifest {
  let values: unknown[];
  try {
    values = loadAll(text, undefined, { schema: CORE_SCHEMA });
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    const where = err.mark ? `line ${err.mark.line + 1}, column ${err.mark.column + 1}` : 'document';
    return { documents: [], fileError: { field: where, message: `YAML syntax error: ${err.reason || err.message.split('\n')[0]}` } };
  }
  const raws: unknown[] = [];
  for (const value of values) {
    if (value === null || value === undefined) continue; // empty document (e.g. a trailing ---)
    if (isList(value)) raws.push(...value.items);
    else raws.push(value);
  }
  return { documents: raws.map((raw, i) => validateDocument(raw, i)) };
}
