/**
 * The resource table of the test apiserver: one line per kind. Everything else (routing, storage,
 * discovery, Table output) is generic over these definitions.
 */
export interface ResourceDef {
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  /** Subresources served: status, approval, eviction, binding, log, token. */
  subresources: string[];
  shortNames?: string[];
  /** Stored kinds list/watch; virtual ones (reviews) only answer a create. */
  virtual?: boolean;
  /** PUT on a missing object creates it (Leases, Events, EndpointSlices, as upstream). */
  createOnUpdate?: boolean;
  /** Field selector labels accepted besides metadata.name and metadata.namespace. */
  fields?: string[];
}

const EVENT_FIELDS = [
  'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
  'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath',
  'reason', 'reportingComponent', 'source', 'type',
];

export const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, subresources: ['status'], shortNames: ['ns'], fields: ['status.phase'] },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, subresources: ['status'], shortNames: ['no'], fields: ['spec.unschedulable'] },
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, subresources: ['status', 'eviction', 'binding', 'log'], shortNames: ['po'], fields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'] },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, subresources: ['status'], shortNames: ['svc'], fields: ['spec.clusterIP', 'spec.type'] },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, subresources: [], shortNames: ['cm'] },
  { group: '', version: 'v1', plural: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, subresources: [], fields: ['type'] },
  { group: '', version: 'v1', plural: 'serviceaccounts', singular: 'serviceaccount', kind: 'ServiceAccount', namespaced: true, subresources: ['token'], shortNames: ['sa'] },
  { group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, subresources: [], shortNames: ['ev'], createOnUpdate: true, fields: EVENT_FIELDS },
  { group: 'events.k8s.io', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, subresources: [], shortNames: ['ev'], createOnUpdate: true, fields: ['reason', 'reportingController', 'type', 'regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid'] },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true, subresources: [], createOnUpdate: true, fields: ['addressType'] },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, subresources: [], createOnUpdate: true },
  { group: 'certificates.k8s.io', version: 'v1', plural: 'certificatesigningrequests', singular: 'certificatesigningrequest', kind: 'CertificateSigningRequest', namespaced: false, subresources: ['status', 'approval'], shortNames: ['csr'], fields: ['spec.signerName'] },
  { group: 'authentication.k8s.io', version: 'v1', plural: 'tokenreviews', singular: 'tokenreview', kind: 'TokenReview', namespaced: false, subresources: [], virtual: true },
  { group: 'authorization.k8s.io', version: 'v1', plural: 'subjectaccessreviews', singular: 'subjectaccessreview', kind: 'SubjectAccessReview', namespaced: false, subresources: [], virtual: true },
  { group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', kind: 'SelfSubjectAccessReview', namespaced: false, subresources: [], virtual: true },
];

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** Stable id of a resource: `pods`, `events.events.k8s.io`. */
export function resourceId(def: ResourceDef): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

export function findResource(group: string, version: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** Finds a definition by kind (and apiVersion when given; core group preferred otherwise). */
export function resourceForKind(kind: string, apiVersion?: string): ResourceDef | undefined {
  const lower = kind.toLowerCase();
  const matches = RESOURCES.filter(
    (r) => r.kind === kind || r.plural === lower || r.singular === lower || r.shortNames?.includes(lower) || resourceId(r) === lower,
  );
  if (apiVersion) return matches.find((r) => apiVersionOf(r) === apiVersion);
  return matches[0];
}

export function hasStatusSubresource(def: ResourceDef): boolean {
  return def.subresources.includes('status');
}
