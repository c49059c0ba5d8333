/**
 * Static pod manifests: parse a file (YAML or JSON; one or several documents, or a v1 List), check
 * every document against the Pod schema (unknown fields, types, required fields, enums) and apply
 * the API defaults kubelet relies on. Problems name the field (`spec.containers[1].image`) so the
 * operator can fix the file; one bad document never hides the good ones beside it.
 */
import { CORE_SCHEMA, loadAll, YAMLException } from 'js-yaml';
import type { Container, DownwardAPIVolumeFile, Pod, Volume } from 'kubernetes-types/core/v1';
import { bytes, milliCpu } from './quantity';
import { seccompProblems } from './seccomp';
import { DEFAULT_TERMINATION_MESSAGE_PATH, TERMINATION_MESSAGE_POLICIES } from './termination-message';

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

const capabilities = obj({ add: 'stringList', drop: 'stringList' });
const seccompProfile = obj({ type: 'string', localhostProfile: 'string' });
const securityContext = obj({
  capabilities, privileged: 'bool', seLinuxOptions: 'any', windowsOptions: 'any', runAsUser: 'int',
  runAsGroup: 'int', runAsNonRoot: 'bool', readOnlyRootFilesystem: 'bool', allowPrivilegeEscalation: 'bool',
  procMount: 'string', seccompProfile, appArmorProfile: 'any',
});

const fieldRef = obj({ apiVersion: 'string', fieldPath: 'string' });
const resourceFieldRef = obj({ containerName: 'string', resource: 'string', divisor: 'any' });
const keyRef = obj({ name: 'string', key: 'string', optional: 'bool' });
const nameRef = obj({ name: 'string', optional: 'bool' });

const container = obj({
  name: 'string', image: 'string', command: 'stringList', args: 'stringList', workingDir: 'string',
  ports: list(obj({ name: 'string', hostPort: 'int', containerPort: 'int', protocol: 'string', hostIP: 'string' })),
  envFrom: list(obj({ prefix: 'string', configMapRef: nameRef, secretRef: nameRef })),
  env: list(obj({
    name: 'string', value: 'string',
    valueFrom: obj({ fieldRef, resourceFieldRef, configMapKeyRef: keyRef, secretKeyRef: keyRef }),
  })),
  resources: obj({ limits: 'quantityMap', requests: 'quantityMap', claims: 'any' }),
  resizePolicy: 'any', restartPolicy: 'string', volumeDevices: 'any',
  volumeMounts: list(obj({
    name: 'string', mountPath: 'string', readOnly: 'bool', subPath: 'string', subPathExpr: 'string', mountPropagation: 'string', recursiveReadOnly: 'string',
  })),
  livenessProbe: 'any', readinessProbe: 'any', startupProbe: 'any', lifecycle: 'any',
  terminationMessagePath: 'string', terminationMessagePolicy: 'string', imagePullPolicy: 'string',
  securityContext, stdin: 'bool', stdinOnce: 'bool', tty: 'bool',
});

const keyToPath = obj({ key: 'string', path: 'string', mode: 'int' });
const downwardFile = obj({ path: 'string', fieldRef, resourceFieldRef, mode: 'int' });
/** Volume types keelson does not set up: valid in the API, rejected for now. */
export const UNSUPPORTED_VOLUME_TYPES = [
  'persistentVolumeClaim', 'nfs', 'iscsi', 'csi', 'ephemeral', 'gitRepo', 'glusterfs', 'rbd', 'cephfs', 'cinder', 'fc', 'flexVolume',
  'flocker', 'awsElasticBlockStore', 'gcePersistentDisk', 'azureDisk', 'azureFile', 'vsphereVolume', 'quobyte', 'photonPersistentDisk',
  'portworxVolume', 'scaleIO', 'storageos', 'image',
];
const volume = obj({
  name: 'string',
  emptyDir: obj({ medium: 'string', sizeLimit: 'any' }),
  hostPath: obj({ path: 'string', type: 'string' }),
  configMap: obj({ name: 'string', items: list(keyToPath), defaultMode: 'int', optional: 'bool' }),
  secret: obj({ secretName: 'string', items: list(keyToPath), defaultMode: 'int', optional: 'bool' }),
  downwardAPI: obj({ items: list(downwardFile), defaultMode: 'int' }),
  projected: obj({
    defaultMode: 'int',
    sources: list(obj({
      configMap: obj({ name: 'string', items: list(keyToPath), optional: 'bool' }),
      secret: obj({ name: 'string', items: list(keyToPath), optional: 'bool' }),
      downwardAPI: obj({ items: list(downwardFile) }),
      serviceAccountToken: obj({ audience: 'string', expirationSeconds: 'int', path: 'string' }),
      clusterTrustBundle: 'any',
    })),
  }),
  ...Object.fromEntries(UNSUPPORTED_VOLUME_TYPES.map((t) => [t, 'any' as Type])),
});

const podSecurityContext = obj({
  runAsUser: 'int', runAsGroup: 'int', runAsNonRoot: 'bool', supplementalGroups: list('int'), fsGroup: 'int',
  supplementalGroupsPolicy: 'string', fsGroupChangePolicy: 'string', seLinuxOptions: 'any', windowsOptions: 'any',
  sysctls: 'any', seccompProfile, appArmorProfile: 'any', seLinuxChangePolicy: 'string',
});

const podSpec = obj({
  volumes: list(volume), initContainers: list(container), containers: list(container), ephemeralContainers: 'any',
  restartPolicy: 'string', terminationGracePeriodSeconds: 'int', activeDeadlineSeconds: 'int', dnsPolicy: 'string',
  nodeSelector: 'stringMap', serviceAccountName: 'string', serviceAccount: 'string', automountServiceAccountToken: 'bool',
  nodeName: 'string', hostNetwork: 'bool', hostPID: 'bool', hostIPC: 'bool', shareProcessNamespace: 'bool',
  securityContext: podSecurityContext, imagePullSecrets: list(obj({ name: 'string' })), hostname: 'string', subdomain: 'string', affinity: 'any',
  schedulerName: 'string', tolerations: 'any', hostAliases: list(obj({ ip: 'string', hostnames: 'stringList' })), priorityClassName: 'string', priority: 'int',
  dnsConfig: obj({ nameservers: 'stringList', searches: 'stringList', options: list(obj({ name: 'string', value: 'string' })) }), readinessGates: 'any', runtimeClassName: 'string', enableServiceLinks: 'bool',
  preemptionPolicy: 'string', overhead: 'quantityMap', topologySpreadConstraints: 'any', setHostnameAsFQDN: 'bool',
  os: 'any', hostUsers: 'bool', schedulingGates: 'any', resourceClaims: 'any', resources: 'any',
});

const podSchema = obj({ apiVersion: 'string', kind: 'string', metadata: objectMeta, spec: podSpec, status: 'any' });

/** Valid Pod fields that change what runs and that standalone keelson cannot honour yet: errors. */
const UNSUPPORTED = new Set([
  'spec.ephemeralContainers', 'spec.hostPID', 'spec.hostIPC', 'spec.shareProcessNamespace', 'spec.runtimeClassName',
  'spec.containers[].volumeDevices', 'spec.containers[].restartPolicy',
  'spec.volumes[].projected.sources[].clusterTrustBundle',
  ...UNSUPPORTED_VOLUME_TYPES.map((t) => `spec.volumes[].${t}`),
]);

/** Valid Pod fields that are accepted and not acted upon yet: warnings. */
const IGNORED = new Set([
  'spec.affinity', 'spec.tolerations', 'spec.nodeSelector', 'spec.activeDeadlineSeconds',
  'spec.readinessGates', 'spec.topologySpreadConstraints', 'spec.schedulingGates', 'spec.resourceClaims',
  'spec.resources', 'spec.overhead', 'spec.os', 'spec.hostUsers',
  'spec.securityContext.seLinuxOptions', 'spec.securityContext.windowsOptions', 'spec.securityContext.sysctls',
  'spec.securityContext.appArmorProfile',
  'spec.securityContext.supplementalGroupsPolicy', 'spec.securityContext.seLinuxChangePolicy',
  'spec.containers[].securityContext.seLinuxOptions',
  'spec.containers[].securityContext.appArmorProfile', 'spec.containers[].stdin', 'spec.containers[].tty',
  'spec.containers[].volumeMounts[].recursiveReadOnly',
]);

/** Init containers share the container schema; their restartPolicy (sidecars) is supported. */
function ruleShape(shape: string): string {
  if (shape === 'spec.initContainers[].restartPolicy') return shape;
  return shape.startsWith('spec.initContainers[]') ? 'spec.containers[]' + shape.slice('spec.initContainers[]'.length) : shape;
}

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
      if (UNSUPPORTED.has(ruleShape(fieldShape))) out.errors.push({ field: fieldPath, message: 'Unsupported: keelson does not support this field for static pods yet' });
      else if (IGNORED.has(ruleShape(fieldShape))) out.warnings.push({ field: fieldPath, message: 'ignored: keelson does not act on this field yet' });
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
const FIELD_REFS = [
  'metadata.name', 'metadata.namespace', 'metadata.uid', "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']", 'spec.nodeName',
  'spec.serviceAccountName', 'status.podIP', 'status.podIPs', 'status.hostIP', 'status.hostIPs',
];
const VOLUME_FIELD_REFS = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'metadata.labels', 'metadata.annotations', "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"];
const SUBSCRIPTED = /^metadata\.(labels|annotations)\['.+'\]$/;
const RESOURCE_FIELDS = ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage'];
const HOST_PATH_TYPES = ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'];
const MOUNT_PROPAGATIONS = ['None', 'HostToContainer', 'Bidirectional'];
const fieldRefAllowed = (path: string, allowed: string[]) => allowed.includes(path) || (SUBSCRIPTED.test(path) && allowed.some((a) => a.endsWith("['<KEY>']")));

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
  if (c.terminationMessagePolicy !== undefined && !TERMINATION_MESSAGE_POLICIES.includes(c.terminationMessagePolicy)) {
    errors.push({ field: `${path}.terminationMessagePolicy`, message: unsupportedValue(c.terminationMessagePolicy, TERMINATION_MESSAGE_POLICIES) });
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
    if (ref && !fieldRefAllowed(ref.fieldPath, FIELD_REFS)) errors.push({ field: `${ep}.valueFrom.fieldRef.fieldPath`, message: unsupportedValue(ref.fieldPath, FIELD_REFS) });
    const res = e.valueFrom?.resourceFieldRef;
    if (res && !RESOURCE_FIELDS.includes(res.resource)) errors.push({ field: `${ep}.valueFrom.resourceFieldRef.resource`, message: unsupportedValue(res.resource, RESOURCE_FIELDS) });
    for (const kind of ['configMapKeyRef', 'secretKeyRef'] as const) {
      const kr = e.valueFrom?.[kind];
      if (kr && !kr.key) errors.push({ field: `${ep}.valueFrom.${kind}.key`, message: 'Required value' });
      if (kr && !kr.name) errors.push({ field: `${ep}.valueFrom.${kind}.name`, message: 'Required value' });
    }
  });
  (c.envFrom ?? []).forEach((f, i) => {
    const count = (f.configMapRef ? 1 : 0) + (f.secretRef ? 1 : 0);
    if (count !== 1) errors.push({ field: `${path}.envFrom[${i}]`, message: 'Invalid value: must specify exactly one of configMapRef or secretRef' });
  });
  (c.volumeMounts ?? []).forEach((m, i) => {
    const mp = `${path}.volumeMounts[${i}]`;
    if (!m.name) errors.push({ field: `${mp}.name`, message: 'Required value' });
    if (!m.mountPath) errors.push({ field: `${mp}.mountPath`, message: 'Required value' });
    else if (!m.mountPath.startsWith('/')) errors.push({ field: `${mp}.mountPath`, message: `Invalid value: ${JSON.stringify(m.mountPath)}: must be an absolute path` });
    if (m.subPath && (m.subPath.startsWith('/') || m.subPath.split('/').includes('..'))) errors.push({ field: `${mp}.subPath`, message: `Invalid value: ${JSON.stringify(m.subPath)}: must be a relative path without '..'` });
    if (m.subPathExpr) {
      if (m.subPath) errors.push({ field: `${mp}.subPathExpr`, message: `Invalid value: ${JSON.stringify(m.subPathExpr)}: subPathExpr and subPath are mutually exclusive` });
      if (m.subPathExpr.startsWith('/') || m.subPathExpr.split('/').includes('..')) errors.push({ field: `${mp}.subPathExpr`, message: `Invalid value: ${JSON.stringify(m.subPathExpr)}: must be a relative path without '..'` });
    }
    if (m.mountPropagation !== undefined && !MOUNT_PROPAGATIONS.includes(m.mountPropagation)) errors.push({ field: `${mp}.mountPropagation`, message: unsupportedValue(m.mountPropagation, MOUNT_PROPAGATIONS) });
  });
  for (const kind of ['limits', 'requests'] as const) {
    for (const [name, q] of Object.entries(c.resources?.[kind] ?? {})) {
      const field = `${path}.resources.${kind}.${name}`;
      const parsed = name === 'cpu' ? milliCpu(q) : bytes(q);
      if (parsed === undefined) errors.push({ field, message: `Invalid value: ${JSON.stringify(q)}: must be a quantity` });
    }
  }
  errors.push(...seccompProblems(c.securityContext?.seccompProfile, `${path}.securityContext.seccompProfile`));
  const runAsUser = c.securityContext?.runAsUser;
  if (runAsUser !== undefined && runAsUser < 0) errors.push({ field: `${path}.securityContext.runAsUser`, message: `Invalid value: ${runAsUser}: must be >= 0` });
}

function checkMode(mode: number | undefined, field: string, errors: FieldProblem[]): void {
  if (mode !== undefined && (mode < 0 || mode > 0o777)) errors.push({ field, message: `Invalid value: ${mode}: must be a number between 0 and 0777 (octal), both inclusive` });
}

function checkPaths(items: { path?: string; mode?: number }[] | undefined, field: string, errors: FieldProblem[]): void {
  (items ?? []).forEach((item, i) => {
    const p = item.path ?? '';
    if (!p) errors.push({ field: `${field}[${i}].path`, message: 'Required value' });
    else if (p.startsWith('/') || p.split('/').includes('..') || p.startsWith('..')) errors.push({ field: `${field}[${i}].path`, message: `Invalid value: ${JSON.stringify(p)}: must be a relative path without '..'` });
    checkMode(item.mode, `${field}[${i}].mode`, errors);
  });
}

function checkDownwardItems(items: DownwardAPIVolumeFile[] | undefined, field: string, errors: FieldProblem[]): void {
  checkPaths(items, field, errors);
  (items ?? []).forEach((item, i) => {
    if (!!item.fieldRef === !!item.resourceFieldRef) errors.push({ field: `${field}[${i}]`, message: 'Invalid value: must specify exactly one of fieldRef or resourceFieldRef' });
    if (item.fieldRef && !fieldRefAllowed(item.fieldRef.fieldPath, VOLUME_FIELD_REFS)) errors.push({ field: `${field}[${i}].fieldRef.fieldPath`, message: unsupportedValue(item.fieldRef.fieldPath, VOLUME_FIELD_REFS) });
    if (item.resourceFieldRef && !item.resourceFieldRef.containerName) errors.push({ field: `${field}[${i}].resourceFieldRef.containerName`, message: 'Required value' });
  });
}

const VOLUME_TYPES = ['emptyDir', 'hostPath', 'configMap', 'secret', 'downwardAPI', 'projected', ...UNSUPPORTED_VOLUME_TYPES];

function checkVolumes(volumes: Volume[], errors: FieldProblem[]): void {
  const names = new Set<string>();
  volumes.forEach((v, i) => {
    const vp = `spec.volumes[${i}]`;
    if (!v || typeof v !== 'object') return;
    if (!v.name) errors.push({ field: `${vp}.name`, message: 'Required value' });
    else if (v.name.length > 63 || !DNS_LABEL.test(v.name)) errors.push({ field: `${vp}.name`, message: `Invalid value: ${JSON.stringify(v.name)}: must be a lowercase RFC 1123 label` });
    else if (names.has(v.name)) errors.push({ field: `${vp}.name`, message: `Duplicate value: ${JSON.stringify(v.name)}` });
    if (v.name) names.add(v.name);
    const fields = v as unknown as Record<string, unknown>;
    const types = VOLUME_TYPES.filter((t) => fields[t] !== undefined && fields[t] !== null);
    if (types.length !== 1) errors.push({ field: vp, message: types.length ? 'Forbidden: may not specify more than 1 volume type' : 'Required value: must specify a volume type' });
    if (v.hostPath) {
      if (!v.hostPath.path) errors.push({ field: `${vp}.hostPath.path`, message: 'Required value' });
      if (v.hostPath.type !== undefined && !HOST_PATH_TYPES.includes(v.hostPath.type)) errors.push({ field: `${vp}.hostPath.type`, message: unsupportedValue(v.hostPath.type, HOST_PATH_TYPES) });
    }
    if (v.emptyDir?.medium !== undefined && !['', 'Memory'].includes(v.emptyDir.medium)) errors.push({ field: `${vp}.emptyDir.medium`, message: unsupportedValue(v.emptyDir.medium, ['', 'Memory']) });
    if (v.emptyDir?.sizeLimit !== undefined && bytes(v.emptyDir.sizeLimit) === undefined) errors.push({ field: `${vp}.emptyDir.sizeLimit`, message: `Invalid value: ${JSON.stringify(v.emptyDir.sizeLimit)}: must be a quantity` });
    if (v.configMap) {
      if (!v.configMap.name) errors.push({ field: `${vp}.configMap.name`, message: 'Required value' });
      checkPaths(v.configMap.items, `${vp}.configMap.items`, errors);
      checkMode(v.configMap.defaultMode, `${vp}.configMap.defaultMode`, errors);
    }
    if (v.secret) {
      if (!v.secret.secretName) errors.push({ field: `${vp}.secret.secretName`, message: 'Required value' });
      checkPaths(v.secret.items, `${vp}.secret.items`, errors);
      checkMode(v.secret.defaultMode, `${vp}.secret.defaultMode`, errors);
    }
    if (v.downwardAPI) {
      checkDownwardItems(v.downwardAPI.items, `${vp}.downwardAPI.items`, errors);
      checkMode(v.downwardAPI.defaultMode, `${vp}.downwardAPI.defaultMode`, errors);
    }
    if (v.projected) {
      checkMode(v.projected.defaultMode, `${vp}.projected.defaultMode`, errors);
      (v.projected.sources ?? []).forEach((src, j) => {
        const sp = `${vp}.projected.sources[${j}]`;
        if (src.configMap) checkPaths(src.configMap.items, `${sp}.configMap.items`, errors);
        if (src.secret) checkPaths(src.secret.items, `${sp}.secret.items`, errors);
        if (src.downwardAPI) checkDownwardItems(src.downwardAPI.items, `${sp}.downwardAPI.items`, errors);
        const t = src.serviceAccountToken;
        if (t) {
          checkPaths([{ path: t.path }], `${sp}.serviceAccountToken`, errors);
          if (t.expirationSeconds !== undefined && t.expirationSeconds < 600) errors.push({ field: `${sp}.serviceAccountToken.expirationSeconds`, message: `Invalid value: ${t.expirationSeconds}: may not specify a duration less than 10 minutes` });
        }
      });
    }
  });
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
  errors.push(...seccompProblems(spec.securityContext?.seccompProfile, 'spec.securityContext.seccompProfile'));
  const seen = new Set<string>();
  const volumeNames = new Set((spec.volumes ?? []).map((v) => v?.name));
  for (const list of ['initContainers', 'containers'] as const) {
    (spec[list] ?? []).forEach((c, i) => {
      if (!c || typeof c !== 'object') return;
      const cp = `spec.${list}[${i}]`;
      checkContainer(c, cp, errors);
      if (c.name && seen.has(c.name)) errors.push({ field: `${cp}.name`, message: `Duplicate value: ${JSON.stringify(c.name)}` });
      if (c.name) seen.add(c.name);
      if (list === 'initContainers' && c.restartPolicy !== undefined && c.restartPolicy !== 'Always') errors.push({ field: `${cp}.restartPolicy`, message: unsupportedValue(c.restartPolicy, ['Always']) });
      (c.volumeMounts ?? []).forEach((m, j) => {
        if (m.name && !volumeNames.has(m.name)) errors.push({ field: `${cp}.volumeMounts[${j}].name`, message: `Not found: ${JSON.stringify(m.name)}` });
      });
    });
  }
  checkVolumes(spec.volumes ?? [], errors);
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
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    c.imagePullPolicy ??= defaultPullPolicy(c.image!);
    c.terminationMessagePath ??= DEFAULT_TERMINATION_MESSAGE_PATH;
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
