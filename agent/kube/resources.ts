/**
 * The Kubernetes resources keelson talks to, as descriptors the client turns into REST paths.
 * The type parameter only carries the object type to the client's methods (it has no runtime value).
 */
import type { TokenReview } from 'kubernetes-types/authentication/v1';
import type { SelfSubjectAccessReview, SubjectAccessReview } from 'kubernetes-types/authorization/v1';
import type { CertificateSigningRequest } from 'kubernetes-types/certificates/v1';
import type { Lease } from 'kubernetes-types/coordination/v1';
import type { ConfigMap, Event, Namespace, Node, Pod, Secret, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import type { ObjectMeta } from 'kubernetes-types/meta/v1';

export interface ResourceDescriptor<T = KubeObject> {
  /** API group, '' for the core group. */
  readonly group: string;
  readonly version: string;
  /** Plural resource name as in the URL path. */
  readonly resource: string;
  readonly namespaced: boolean;
  readonly kind: string;
  /** Type marker only; never set. */
  readonly __object?: T;
}

/** The part of every object the client and informers rely on. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

function describe<T>(group: string, version: string, resource: string, kind: string, namespaced: boolean): ResourceDescriptor<T> {
  return Object.freeze({ group, version, resource, kind, namespaced });
}

export const Resources = Object.freeze({
  namespaces: describe<Namespace>('', 'v1', 'namespaces', 'Namespace', false),
  nodes: describe<Node>('', 'v1', 'nodes', 'Node', false),
  pods: describe<Pod>('', 'v1', 'pods', 'Pod', true),
  services: describe<Service>('', 'v1', 'services', 'Service', true),
  configmaps: describe<ConfigMap>('', 'v1', 'configmaps', 'ConfigMap', true),
  secrets: describe<Secret>('', 'v1', 'secrets', 'Secret', true),
  events: describe<Event>('', 'v1', 'events', 'Event', true),
  endpointslices: describe<EndpointSlice>('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true),
  leases: describe<Lease>('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  certificatesigningrequests: describe<CertificateSigningRequest>(
    'certificates.k8s.io',
    'v1',
    'certificatesigningrequests',
    'CertificateSigningRequest',
    false,
  ),
  selfsubjectaccessreviews: describe<SelfSubjectAccessReview>(
    'authorization.k8s.io',
    'v1',
    'selfsubjectaccessreviews',
    'SelfSubjectAccessReview',
    false,
  ),
  subjectaccessreviews: describe<SubjectAccessReview>('authorization.k8s.io', 'v1', 'subjectaccessreviews', 'SubjectAccessReview', false),
  tokenreviews: describe<TokenReview>('authentication.k8s.io', 'v1', 'tokenreviews', 'TokenReview', false),
});

export function apiVersionOf(res: ResourceDescriptor<unknown>): string {
  return res.group ? `${res.group}/${res.version}` : res.version;
}

/** `/api/v1` or `/apis/group/version`. */
export function groupVersionPath(res: ResourceDescriptor<unknown>): string {
  return res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
}

/** The REST path of a collection (namespace given) or of one object (name given), with an optional subresource. */
export function resourcePath(
  res: ResourceDescriptor<unknown>,
  target: { namespace?: string; name?: string; subresource?: string } = {},
): string {
  let path = groupVersionPath(res);
  if (res.namespaced && target.namespace) path += `/namespaces/${encodeURIComponent(target.namespace)}`;
  path += `/${res.resource}`;
  if (target.name !== undefined) path += `/${encodeURIComponent(target.name)}`;
  if (target.subresource) path += `/${target.subresource}`;
  return path;
}

/** `Pod default/web`, `Node edge-1`, `Pod default/*` — the object named in errors and logs. */
export function describeObject(res: ResourceDescriptor<unknown>, namespace: string | undefined, name: string | undefined): string {
  const id = res.namespaced ? `${namespace || '*'}/${name ?? '*'}` : (name ?? '*');
  return `${res.kind} ${id}`;
}
