/**
 * A small in-memory stand-in for the apiserver's Node and Lease endpoints, for fake-clock unit
 * tests of the heartbeat and status loops (integration tests use the test apiserver). It keeps
 * resourceVersions (409 on a stale update), records every call, and fails calls on demand.
 */
import { ApiStatusError } from '../../agent/kube/api-error';
import { ErrorCodes, KeelsonError } from '../../agent/errors';
import type { KubeClient } from '../../agent/kube/client';
import type { ResourceDescriptor } from '../../agent/kube/resources';

export interface Call {
  verb: 'get' | 'create' | 'update' | 'patch';
  resource: string;
  name: string;
  subresource?: string;
  body?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

type Failure = { code: number } | { unreachable: true };

export function createFakeApi(now: () => number) {
  const objects = new Map<string, any>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  const calls: Call[] = [];
  let rv = 1;
  let failures: Failure[] = [];
  let down = false;
  const key = (res: ResourceDescriptor<unknown>, ns: string | undefined, name: string) => `${res.resource}/${ns ?? ''}/${name}`;

  function maybeFail(verb: string, res: ResourceDescriptor<unknown>, name: string): void {
    const object = `${res.kind} ${name}`;
    if (down) throw new KeelsonError(ErrorCodes.API_UNREACHABLE, `${verb} ${object}: apiserver unreachable: connect ECONNREFUSED`, { object: 'fake' });
    const f = failures.shift();
    if (!f) return;
    if ('unreachable' in f) throw new KeelsonError(ErrorCodes.API_UNREACHABLE, `${verb} ${object}: apiserver unreachable`, { object: 'fake' });
    const reason = f.code === 409 ? 'Conflict' : f.code === 404 ? 'NotFound' : 'InternalError';
    throw new ApiStatusError({ code: f.code, reason, message: `injected ${f.code}` }, object, verb.toUpperCase());
  }

  const client: Pick<KubeClient, 'get' | 'create' | 'update' | 'patch' | 'setCredentials'> = {
    async get(res, name, opts) {
      calls.push({ verb: 'get', resource: res.resource, name, at: now() });
      maybeFail('get', res, name);
      const obj = objects.get(key(res, opts?.namespace, name));
      if (!obj) throw new ApiStatusError({ code: 404, reason: 'NotFound', message: 'not found' }, `${res.kind} ${name}`, 'GET');
      return structuredClone(obj);
    },
    async create(res, obj) {
      const o = obj as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      calls.push({ verb: 'create', resource: res.resource, name: o.metadata.name, body: structuredClone(o), at: now() });
      maybeFail('create', res, o.metadata.name);
      const k = key(res, o.metadata.namespace, o.metadata.name);
      if (objects.has(k)) throw new ApiStatusError({ code: 409, reason: 'AlreadyExists', message: 'exists' }, `${res.kind} ${o.metadata.name}`, 'POST');
      const stored = { ...structuredClone(o), metadata: { ...o.metadata, uid: `uid-${o.metadata.name}`, resourceVersion: String(++rv) } };
      objects.set(k, stored);
      return structuredClone(stored);
    },
    async update(res, obj) {
      const o = obj as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      calls.push({ verb: 'update', resource: res.resource, name: o.metadata.name, body: structuredClone(o), at: now() });
      maybeFail('update', res, o.metadata.name);
      const k = key(res, o.metadata.namespace, o.metadata.name);
      const current = objects.get(k);
      if (!current) throw new ApiStatusError({ code: 404, reason: 'NotFound', message: 'not found' }, `${res.kind} ${o.metadata.name}`, 'PUT');
      if (o.metadata.resourceVersion !== current.metadata.resourceVersion) throw new ApiStatusError({ code: 409, reason: 'Conflict', message: 'stale' }, `${res.kind} ${o.metadata.name}`, 'PUT');
      const stored = { ...structuredClone(o), metadata: { ...o.metadata, resourceVersion: String(++rv) } };
      objects.set(k, stored);
      return structuredClone(stored);
    },
    async patch(res, name, patch, opts) {
      calls.push({ verb: 'patch', resource: res.resource, name, subresource: opts.subresource, body: structuredClone(patch), at: now() });
      maybeFail('patch', res, name);
      const k = key(res, opts.namespace, name);
      const current = objects.get(k);
      if (!current) throw new ApiStatusError({ code: 404, reason: 'NotFound', message: 'not found' }, `${res.kind} ${name}`, 'PATCH');
      const p = patch as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      const next = { ...current, metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...(p.metadata?.labels ?? {}) }, resourceVersion: String(++rv) } };
      if (p.status) next.status = { ...current.status, ...p.status };
      objects.set(k, next);
      return structuredClone(next);
    },
    setCredentials() {},
  };

  return {
    client,
    calls,
    objects,
    /** The next n calls fail with this HTTP code (or as unreachable). */
    failNext(n: number, failure: Failure) {
      for (let i = 0; i < n; i++) failures.push(failure);
    },
    setDown(value: boolean) {
      down = value;
    },
    clearFailures() {
      failures = [];
    },
    /** Bumps an object's resourceVersion behind the client's back (someone else wrote it). */
    touch(resource: string, ns: string | undefined, name: string) {
      const k = `${resource}/${ns ?? ''}/${name}`;
      const o = objects.get(k);
      if (o) o.metadata.resourceVersion = String(++rv);
    },
  };
}
