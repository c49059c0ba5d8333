/**
 * REST semantics over the raw store, as kube-apiserver's generic registry applies them: metadata
 * (uid, creationTimestamp, generation, namespace), generateName, optimistic concurrency (409 on a
 * stale resourceVersion), status subresources, no-op updates that write nothing, graceful pod
 * deletion, finalizers, list with selectors and paging at a consistent version.
 */
import { randomUUID, randomInt } from 'node:crypto';
import { createAllocators, defaultEndpointSlice, defaultNamespace, defaultPod, defaultSecret, defaultService, releaseService } from './defaults';
import type { Allocators } from './defaults';
import { applyPatch } from './patch';
import { RESOURCES, apiVersionOf, hasStatusSubresource, resourceId } from './resources';
import type { ResourceDef } from './resources';
import { parseFieldSelector, parseLabelSelector } from './selectors';
import type { Matcher } from './selectors';
import { ApiError, errors } from './status';
import { objectKey } from './store';
import type { Obj, Store } from './store';
import { validate, validatePodUpdate } from './validation';

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
  limit?: number;
  continue?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: string;
}

export interface WriteContext {
  /** The authenticated user (CSR spec.username/groups are set from it). */
  user?: { username: string; groups: string[]; uid?: string };
  /** pods/binding: the one way to set spec.nodeName on an existing pod. */
  binding?: boolean;
}

export interface Registry {
  store: Store;
  create(def: ResourceDef, namespace: string | undefined, body: Obj, ctx?: WriteContext): Obj;
  get(def: ResourceDef, namespace: string | undefined, name: string): Obj;
  list(def: ResourceDef, namespace: string | undefined, options?: ListOptions): Obj;
  /** subresource: undefined (main), 'status' or 'approval'. */
  update(def: ResourceDef, namespace: string | undefined, name: string, body: Obj, subresource?: string, ctx?: WriteContext): { object: Obj; created: boolean };
  patch(def: ResourceDef, namespace: string | undefined, name: string, contentType: string, patch: unknown, subresource?: string): Obj;
  delete(def: ResourceDef, namespace: string | undefined, name: string, options?: DeleteOptions): { object: Obj; removed: boolean };
  deleteCollection(def: ResourceDef, namespace: string | undefined, options?: ListOptions, deleteOptions?: DeleteOptions): Obj;
  /** pods/binding: assigns an unbound pod to a node. */
  bind(namespace: string | undefined, name: string, body: Obj): void;
  matchers(def: ResourceDef, options: { labelSelector?: string; fieldSelector?: string }): Matcher;
  allocators: Allocators;
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export function nowTimestamp(ms = Date.now()): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** pods/status never touches ownerReferences (old kubelets corrupted them). */
function keepOwnerReferences(next: Obj, old: Obj): void {
  if (old.metadata.ownerReferences === undefined) delete next.metadata.ownerReferences;
  else next.metadata.ownerReferences = old.metadata.ownerReferences;
}

function stripTypeMeta(obj: Obj): Obj {
  const { kind: _k, apiVersion: _a, ...rest } = obj;
  return rest;
}

function withTypeMeta(def: ResourceDef, obj: Obj): Obj {
  const { kind: _k, apiVersion: _a, ...rest } = obj;
  return { kind: def.kind, apiVersion: apiVersionOf(def), ...rest };
}

/** Stable JSON for comparing objects regardless of key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** The parts of an object other than metadata and status: a change there bumps generation. */
function specOf(obj: Obj): string {
  const { metadata: _m, status: _s, kind: _k, apiVersion: _a, ...rest } = obj;
  return canonical(rest);
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as ContinueToken;
    if (typeof token.rv === 'number' && typeof token.start === 'string') return token;
  } catch {
    // fall through
  }
  throw errors.badRequest(`continue key is not valid: ${text}`);
}

export function createRegistry(store: Store): Registry {
  const allocators = createAllocators();

  function keyFor(def: ResourceDef, namespace: string | undefined, name: string): string {
    return objectKey(def.namespaced ? namespace : undefined, name);
  }

  function requireNamespace(def: ResourceDef, namespace: string | undefined): void {
    if (!def.namespaced) return;
    if (!namespace) throw errors.badRequest('the server could not find the requested resource (namespace required)');
    if (!store.get('namespaces', objectKey(undefined, namespace))) {
      throw errors.notFound({ plural: 'namespaces', group: '' }, namespace);
    }
  }

  function checkBodyIdentity(def: ResourceDef, namespace: string | undefined, body: Obj): void {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('the body of the request was not a JSON object');
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw errors.badRequest(`the object provided is unrecognized (must be of type ${def.kind}): kind "${String(body.kind)}"`);
    }
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(def)) {
      throw errors.badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    body.metadata ??= {};
    if (typeof body.metadata !== 'object' || Array.isArray(body.metadata)) throw errors.badRequest('metadata must be an object');
    if (def.namespaced) {
      if (body.metadata.namespace && namespace && body.metadata.namespace !== namespace) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      body.metadata.namespace = namespace ?? body.metadata.namespace;
    } else {
      delete body.metadata.namespace;
    }
  }

  function applyCreateDefaults(def: ResourceDef, obj: Obj, ctx?: WriteContext): void {
    switch (def.kind) {
      case 'Pod':
        defaultPod(obj);
        break;
      case 'Service':
        defaultService(obj, allocators);
        break;
      case 'Namespace':
        defaultNamespace(obj);
        break;
      case 'Secret':
        defaultSecret(obj);
        break;
      case 'EndpointSlice':
        defaultEndpointSlice(obj);
        break;
      case 'CertificateSigningRequest':
        obj.spec.username = ctx?.user?.username ?? obj.spec.username ?? '';
        obj.spec.groups = ctx?.user?.groups ?? obj.spec.groups ?? [];
        if (ctx?.user?.uid) obj.spec.uid = ctx.user.uid;
        obj.spec.usages ??= ['digital signature', 'key encipherment'];
        obj.status = {};
        break;
    }
  }

  function create(def: ResourceDef, namespace: string | undefined, input: Obj, ctx?: WriteContext): Obj {
    const body = structuredClone(input);
    checkBodyIdentity(def, namespace, body);
    const meta = body.metadata;
    if (!meta.name && meta.generateName) {
      meta.name = meta.generateName + Array.from({ length: 5 }, () => NAME_CHARS[randomInt(NAME_CHARS.length)]).join('');
    }
    validate(def, body);
    requireNamespace(def, meta.namespace);
    const key = keyFor(def, meta.namespace, meta.name);
    if (store.get(resourceId(def), key)) throw errors.alreadyExists(def, meta.name);
    if (meta.resourceVersion) throw errors.badRequest('resourceVersion should not be set on objects to be created');
    const obj = withTypeMeta(def, body);
    obj.metadata = { ...meta, uid: randomUUID(), creationTimestamp: nowTimestamp() };
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    delete obj.metadata.generation;
    applyCreateDefaults(def, obj, ctx);
    if (specOf(obj) !== '{}') obj.metadata.generation = 1;
    return withTypeMeta(def, store.put(resourceId(def), key, obj));
  }

  function getStored(def: ResourceDef, namespace: string | undefined, name: string): Obj {
    const obj = store.get(resourceId(def), keyFor(def, namespace, name));
    if (!obj) throw errors.notFound(def, name);
    return obj;
  }

  function matchers(def: ResourceDef, options: { labelSelector?: string; fieldSelector?: string }): Matcher {
    const labels = parseLabelSelector(options.labelSelector);
    const fields = parseFieldSelector(options.fieldSelector, { supported: def.fields ?? [], kind: def.kind, apiVersion: apiVersionOf(def) });
    return (obj) => labels(obj) && fields(obj);
  }

  function list(def: ResourceDef, namespace: string | undefined, options: ListOptions = {}): Obj {
    const match = matchers(def, options);
    const prefix = def.namespaced && namespace ? `${namespace}/` : undefined;
    let at = store.currentRv();
    let start = '';
    let items: Obj[];
    if (options.continue) {
      const token = decodeContinue(options.continue);
      at = token.rv;
      start = token.start;
      if (at < store.compactedRv()) {
        throw errors.gone(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        );
      }
      items = store.listAt(resourceId(def), at, prefix);
    } else if (options.resourceVersion && options.resourceVersionMatch === 'Exact') {
      at = Number(options.resourceVersion);
      if (!Number.isInteger(at)) throw errors.badRequest(`invalid resource version: ${options.resourceVersion}`);
      items = store.listAt(resourceId(def), at, prefix);
    } else {
      if (options.resourceVersion && options.resourceVersion !== '0') {
        const wanted = Number(options.resourceVersion);
        if (!Number.isInteger(wanted) || wanted < 0) throw errors.badRequest(`invalid resource version: ${options.resourceVersion}`);
        if (wanted > store.currentRv()) throw errors.tooLargeResourceVersion(wanted, store.currentRv());
      }
      items = store.list(resourceId(def), prefix);
    }
    const keyed = items.map((obj) => ({ key: objectKey(obj.metadata?.namespace, obj.metadata?.name), obj }));
    const filtered = keyed.filter(({ key, obj }) => (!start || key > start) && match(obj));
    const metadata: Obj = { resourceVersion: String(at) };
    let page = filtered;
    const limit = options.limit && options.limit > 0 ? options.limit : 0;
    if (limit && filtered.length > limit) {
      page = filtered.slice(0, limit);
      metadata.continue = encodeContinue({ rv: at, start: page[page.length - 1]!.key });
      if (!options.labelSelector && !options.fieldSelector) metadata.remainingItemCount = filtered.length - limit;
    }
    return { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata, items: page.map(({ obj }) => stripTypeMeta(obj)) };
  }

  /** Writes `next` over `old` unless nothing changed; deletes when finalizers are done. */
  function commit(def: ResourceDef, key: string, old: Obj, next: Obj): Obj {
    const meta = next.metadata;
    if (meta.deletionTimestamp && !(meta.finalizers?.length) && !(meta.deletionGracePeriodSeconds > 0)) {
      return withTypeMeta(def, remove(def, key));
    }
    if (canonical({ ...next, metadata: { ...meta, resourceVersion: '' } }) === canonical({ ...old, metadata: { ...old.metadata, resourceVersion: '' } })) {
      return withTypeMeta(def, old);
    }
    return withTypeMeta(def, store.put(resourceId(def), key, next));
  }

  function remove(def: ResourceDef, key: string): Obj {
    const removed = store.remove(resourceId(def), key)!;
    if (def.kind === 'Service') releaseService(removed, allocators);
    if (def.kind === 'Namespace') {
      // The namespace controller empties a deleted namespace; here it happens at once.
      for (const other of RESOURCES) {
        if (!other.namespaced || other.virtual) continue;
        for (const obj of store.list(resourceId(other), `${removed.metadata.name}/`)) {
          remove(other, objectKey(obj.metadata.namespace, obj.metadata.name));
        }
      }
    }
    return removed;
  }

  function update(def: ResourceDef, namespace: string | undefined, name: string, input: Obj, subresource?: string, ctx?: WriteContext) {
    const body = structuredClone(input);
    checkBodyIdentity(def, namespace, body);
    if (body.metadata.name !== undefined && body.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${String(body.metadata.name)}) does not match the name on the URL (${name})`);
    }
    body.metadata.name = name;
    const key = keyFor(def, namespace, name);
    const old = store.get(resourceId(def), key);
    if (!old) {
      if (def.createOnUpdate && !subresource) {
        delete body.metadata.resourceVersion;
        return { object: create(def, namespace, body, ctx), created: true };
      }
      throw errors.notFound(def, name);
    }
    const wantRv = body.metadata.resourceVersion;
    if (wantRv && wantRv !== old.metadata.resourceVersion) {
      throw errors.conflict(def, name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    if (body.metadata.uid && body.metadata.uid !== old.metadata.uid) {
      throw errors.conflict(def, name, `Precondition failed: UID in precondition: ${String(body.metadata.uid)}, UID in object meta: ${String(old.metadata.uid)}`);
    }
    let next: Obj;
    if (subresource === 'status') {
      // Status strategies reset spec (everything but metadata and status); metadata may change.
      next = { ...old, metadata: body.metadata, status: body.status };
      if (body.status === undefined) delete next.status;
      if (def.kind === 'Pod') keepOwnerReferences(next, old);
    } else if (subresource === 'approval') {
      next = { ...old, metadata: body.metadata, status: { ...(old.status ?? {}), conditions: body.status?.conditions ?? [] } };
    } else {
      next = withTypeMeta(def, body);
      if (hasStatusSubresource(def)) {
        if (old.status === undefined) delete next.status;
        else next.status = old.status;
      }
      if (def.kind === 'CertificateSigningRequest') next.spec = old.spec; // spec is immutable
      if (def.kind === 'Service') {
        next.spec ??= {};
        next.spec.clusterIP ??= old.spec?.clusterIP;
        next.spec.clusterIPs ??= old.spec?.clusterIPs;
        if (next.spec.clusterIP !== old.spec?.clusterIP) {
          throw errors.invalid(def.kind, def.group, name, [{ field: 'spec.clusterIP', message: 'Invalid value: field is immutable' }]);
        }
      }
      validate(def, next);
      if (def.kind === 'Pod' && !ctx?.binding) validatePodUpdate(old, next);
    }
    next.metadata = {
      ...next.metadata,
      name,
      uid: old.metadata.uid,
      creationTimestamp: old.metadata.creationTimestamp,
      resourceVersion: old.metadata.resourceVersion,
    };
    if (def.namespaced) next.metadata.namespace = old.metadata.namespace;
    for (const field of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
      if (old.metadata[field] === undefined) delete next.metadata[field];
      else next.metadata[field] = old.metadata[field];
    }
    if (old.metadata.deletionTimestamp && (next.metadata.finalizers?.length ?? 0) > (old.metadata.finalizers?.length ?? 0)) {
      throw errors.invalid(def.kind, def.group, name, [{ field: 'metadata.finalizers', message: 'Forbidden: no new finalizers can be added if the object is being deleted' }]);
    }
    if (old.metadata.generation !== undefined && specOf(next) !== specOf(old)) next.metadata.generation = old.metadata.generation + 1;
    return { object: commit(def, key, old, next), created: false };
  }

  function patch(def: ResourceDef, namespace: string | undefined, name: string, contentType: string, patchBody: unknown, subresource?: string): Obj {
    const old = withTypeMeta(def, getStored(def, namespace, name));
    const patched = applyPatch(contentType, old, patchBody, def);
    if (!patched || typeof patched !== 'object' || Array.isArray(patched)) {
      throw errors.badRequest('the patch did not produce an object');
    }
    const result = patched as Obj;
    result.metadata ??= {};
    if (result.metadata.name !== name) result.metadata.name = name;
    if (def.namespaced) result.metadata.namespace = namespace;
    // A patch that sets resourceVersion is a precondition; otherwise the current version applies.
    result.metadata.resourceVersion ??= old.metadata.resourceVersion;
    return update(def, namespace, name, result, subresource).object;
  }

  function del(def: ResourceDef, namespace: string | undefined, name: string, options: DeleteOptions = {}) {
    const key = keyFor(def, namespace, name);
    const old = getStored(def, namespace, name);
    const pre = options.preconditions ?? {};
    if (pre.uid && pre.uid !== old.metadata.uid) {
      throw errors.conflict(def, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(old.metadata.uid)}`);
    }
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw errors.conflict(def, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(old.metadata.resourceVersion)}`);
    }
    let grace = 0;
    if (def.kind === 'Pod') {
      const phase = old.status?.phase;
      const bound = Boolean(old.spec?.nodeName);
      grace = options.gracePeriodSeconds ?? old.spec?.terminationGracePeriodSeconds ?? 30;
      if (!bound || phase === 'Succeeded' || phase === 'Failed') grace = 0;
      if (grace < 0) grace = 0;
    }
    const finalizers: string[] = old.metadata.finalizers ?? [];
    if (grace === 0 && finalizers.length === 0) {
      return { object: withTypeMeta(def, remove(def, key)), removed: true };
    }
    const meta = old.metadata;
    if (meta.deletionTimestamp) {
      // Already terminating: a deletion can only shorten the grace period.
      const current = meta.deletionGracePeriodSeconds ?? 0;
      if (grace >= current) return { object: withTypeMeta(def, old), removed: false };
    }
    const next = structuredClone(old);
    next.metadata.deletionTimestamp = nowTimestamp(Date.now() + grace * 1000);
    next.metadata.deletionGracePeriodSeconds = grace;
    if (def.kind === 'Namespace') next.status = { ...(next.status ?? {}), phase: 'Terminating' };
    return { object: withTypeMeta(def, store.put(resourceId(def), key, next)), removed: false };
  }

  function bind(namespace: string | undefined, name: string, body: Obj): void {
    const def = RESOURCES.find((r) => r.kind === 'Pod')!;
    const target = body?.target ?? {};
    if (!target.name) throw errors.invalid('Binding', '', name, [{ field: 'target.name', message: 'Required value', reason: 'FieldValueRequired' }]);
    const pod = getStored(def, namespace, name);
    if (pod.metadata.deletionTimestamp) throw errors.conflict(def, name, 'pod is being deleted, cannot be assigned to a host');
    if (pod.spec?.nodeName) throw errors.conflict(def, name, `pod ${name} is already assigned to node "${pod.spec.nodeName}"`);
    update(def, namespace, name, { ...pod, spec: { ...pod.spec, nodeName: target.name } }, undefined, { binding: true });
  }

  function deleteCollection(def: ResourceDef, namespace: string | undefined, options: ListOptions = {}, deleteOptions: DeleteOptions = {}): Obj {
    const listed = list(def, namespace, { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector });
    const items: Obj[] = [];
    for (const item of listed.items as Obj[]) {
      try {
        items.push(stripTypeMeta(del(def, item.metadata.namespace, item.metadata.name, deleteOptions).object));
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      }
    }
    return { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.currentRv()) }, items };
  }

  return {
    store,
    allocators,
    create,
    get: (def, namespace, name) => withTypeMeta(def, getStored(def, namespace, name)),
    list,
    update,
    patch,
    delete: del,
    deleteCollection,
    bind,
    matchers,
  };
}

