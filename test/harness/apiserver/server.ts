/**
 * The HTTP layer: request log and faults, authentication, authorization, routing of
 * `/api/v1/...` and `/apis/<group>/<version>/...` paths onto the registry, watch and reviews,
 * discovery and health endpoints, and Status error bodies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { Authenticator, UserInfo } from './authn';
import { authorize } from './authz';
import type { PolicyRule } from './authz';
import { SERVER_VERSION, coreVersions, group, groupList, resourceList } from './discovery';
import type { Faults, RequestRecord } from './faults';
import type { DeleteOptions, Registry } from './registry';
import { findResource } from './resources';
import type { ResourceDef } from './resources';
import { ApiError, errors } from './status';
import { tableFor, wantsTable } from './table';
import type { Obj } from './store';
import type { WatchHub } from './watch';

export interface ServerContext {
  registry: Registry;
  hub: WatchHub;
  authn: Authenticator;
  policy(): readonly PolicyRule[];
  faults: Faults;
  /** `https://127.0.0.1:port`, for discovery's serverAddress. */
  address(): string;
  /** Virtual create-only kinds (reviews) and create-only subresources (eviction, token). */
  review(def: ResourceDef, body: Obj, user: UserInfo): Obj;
  tokenRequest(namespace: string, name: string, body: Obj): Obj;
  /** pods/log, forwarded to the pod's kubelet. */
  podLog(namespace: string, name: string, query: URLSearchParams, res: ServerResponse): Promise<void>;
  maxLog: number;
}

interface ResourceRoute {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
}

const NON_RESOURCE_OK = new Set(['/healthz', '/livez', '/readyz']);

function parseResourcePath(segments: string[]): ResourceRoute | undefined | 'notfound' {
  let group = '';
  let version: string;
  let rest: string[];
  if (segments[0] === 'api') {
    if (segments.length < 3) return undefined;
    version = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === 'apis') {
    if (segments.length < 4) return undefined;
    group = segments[1]!;
    version = segments[2]!;
    rest = segments.slice(3);
  } else {
    return undefined;
  }
  let watchPath = false;
  if (rest[0] === 'watch') {
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const nested = findResource(group, version, rest[2]!);
    if (nested?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  if (rest.length === 0 || rest.length > 3) return 'notfound';
  const def = findResource(group, version, rest[0]!);
  if (!def) return 'notfound';
  const route: ResourceRoute = { def, namespace, name: rest[1], subresource: rest[2], watchPath };
  if (route.subresource && !def.subresources.includes(route.subresource)) return 'notfound';
  return route;
}

function verbFor(method: string, route: ResourceRoute, watch: boolean): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (watch) return 'watch';
      return route.name ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return route.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Request bodies must be JSON: protobuf and CBOR are not spoken here (415, as for an unknown type). */
function requireJsonBody(req: IncomingMessage): void {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type && type !== 'application/json' && type !== '*/*') throw errors.unsupportedMediaType(type);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw errors.badRequest(`the body of the request could not be decoded: ${(err as Error).message}`);
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  if (err.code === 429 && err.details?.retryAfterSeconds && !res.headersSent) res.setHeader('Retry-After', String(err.details.retryAfterSeconds));
  send(res, err.code, err.toStatus());
}

function intParam(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw errors.badRequest(`invalid ${name}: ${value}`);
  return n;
}

function deleteOptionsFrom(body: string, query: URLSearchParams): DeleteOptions {
  const options: DeleteOptions = {};
  if (body.trim()) {
    const parsed = parseJson(body) as Obj;
    if (parsed && typeof parsed === 'object') {
      if (typeof parsed.gracePeriodSeconds === 'number') options.gracePeriodSeconds = parsed.gracePeriodSeconds;
      if (parsed.preconditions) options.preconditions = parsed.preconditions;
      if (parsed.propagationPolicy) options.propagationPolicy = parsed.propagationPolicy;
    }
  }
  const grace = intParam(query, 'gracePeriodSeconds');
  if (grace !== undefined) options.gracePeriodSeconds = grace;
  return options;
}

/** Kinds whose DELETE answers with the object; the others answer with a Success Status. */
const RETURNS_DELETED_OBJECT = new Set(['Pod', 'Namespace', 'Service']);

export function createRequestHandler(ctx: ServerContext) {
  const { registry, hub, authn, faults } = ctx;

  async function handleResource(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, query: URLSearchParams, user: UserInfo, watch: boolean): Promise<void> {
    const { def, namespace, name, subresource } = route;
    const method = req.method ?? 'GET';
    const accept = String(req.headers.accept ?? '');
    if (def.virtual) {
      if (method !== 'POST' || name) throw errors.methodNotAllowed(method);
      requireJsonBody(req);
      const body = parseJson(await readBody(req)) as Obj;
      send(res, 201, ctx.review(def, body, user));
      return;
    }
    switch (method) {
      case 'GET':
      case 'HEAD': {
        if (name) {
          if (watch) {
            const match = registry.matchers(def, { fieldSelector: `metadata.name=${name}` });
            hub.serve(def, namespace, match, watchOptions(query, accept, def), res, user.username);
            return;
          }
          if (subresource === 'log') {
            await ctx.podLog(namespace!, name, query, res);
            return;
          }
          const obj = registry.get(def, namespace, name);
          send(res, 200, wantsTable(accept) ? tableFor(def, [obj], query.get('includeObject'), obj.metadata?.resourceVersion) : obj);
          return;
        }
        const selectors = { labelSelector: query.get('labelSelector') ?? undefined, fieldSelector: query.get('fieldSelector') ?? undefined };
        if (watch) {
          const match = registry.matchers(def, selectors);
          hub.serve(def, namespace, match, watchOptions(query, accept, def), res, user.username);
          return;
        }
        const list = registry.list(def, namespace, {
          ...selectors,
          resourceVersion: query.get('resourceVersion') ?? undefined,
          resourceVersionMatch: query.get('resourceVersionMatch') ?? undefined,
          limit: intParam(query, 'limit'),
          continue: query.get('continue') ?? undefined,
        });
        if (wantsTable(accept)) {
          const table = tableFor(def, list.items as Obj[], query.get('includeObject'), list.metadata.resourceVersion);
          (table.metadata as Obj).continue = list.metadata.continue;
          if (list.metadata.remainingItemCount !== undefined) (table.metadata as Obj).remainingItemCount = list.metadata.remainingItemCount;
          send(res, 200, table);
        } else {
          send(res, 200, list);
        }
        return;
      }
      case 'POST': {
        requireJsonBody(req);
        const body = parseJson(await readBody(req)) as Obj;
        if (name && subresource === 'eviction' && def.kind === 'Pod') {
          const options: DeleteOptions = {};
          const deleteOptions = (body?.deleteOptions ?? {}) as Obj;
          if (typeof deleteOptions.gracePeriodSeconds === 'number') options.gracePeriodSeconds = deleteOptions.gracePeriodSeconds;
          if (deleteOptions.preconditions) options.preconditions = deleteOptions.preconditions;
          registry.delete(def, namespace, name, options);
          send(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
          return;
        }
        if (name && subresource === 'binding' && def.kind === 'Pod') {
          registry.bind(namespace, name, body);
          send(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
          return;
        }
        if (name && subresource === 'token' && def.kind === 'ServiceAccount') {
          registry.get(def, namespace, name);
          send(res, 201, ctx.tokenRequest(namespace!, name, body));
          return;
        }
        if (name) throw errors.methodNotAllowed(method);
        send(res, 201, registry.create(def, namespace, body, { user }));
        return;
      }
      case 'PUT': {
        if (!name) throw errors.methodNotAllowed(method);
        requireJsonBody(req);
        const body = parseJson(await readBody(req)) as Obj;
        const { object, created } = registry.update(def, namespace, name, body, subresource, { user });
        send(res, created ? 201 : 200, object);
        return;
      }
      case 'PATCH': {
        if (!name) throw errors.methodNotAllowed(method);
        const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const text = await readBody(req);
        if (type === 'application/apply-patch+yaml' || type === 'application/apply-patch+cbor') {
          throw errors.unsupportedMediaType(type);
        }
        send(res, 200, registry.patch(def, namespace, name, type, parseJson(text), subresource));
        return;
      }
      case 'DELETE': {
        const options = deleteOptionsFrom(await readBody(req), query);
        if (!name) {
          send(res, 200, registry.deleteCollection(def, namespace, { labelSelector: query.get('labelSelector') ?? undefined, fieldSelector: query.get('fieldSelector') ?? undefined }, options));
          return;
        }
        const { object, removed } = registry.delete(def, namespace, name, options);
        if (RETURNS_DELETED_OBJECT.has(def.kind) || !removed) {
          send(res, removed ? 200 : 202, object);
        } else {
          send(res, 200, {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Success',
            details: { name, group: def.group || undefined, kind: def.plural, uid: object.metadata?.uid },
          });
        }
        return;
      }
      default:
        throw errors.methodNotAllowed(method);
    }
  }

  function watchOptions(query: URLSearchParams, accept: string, def: ResourceDef) {
    const bool = (name: string) => ['1', 'true'].includes(query.get(name) ?? '');
    if (bool('sendInitialEvents') && (!bool('allowWatchBookmarks') || query.get('resourceVersionMatch') !== 'NotOlderThan')) {
      throw errors.invalid('ListOptions', 'meta.k8s.io', '', [
        { field: 'sendInitialEvents', message: 'Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks', reason: 'FieldValueForbidden' },
      ]);
    }
    return {
      resourceVersion: query.get('resourceVersion') ?? undefined,
      allowWatchBookmarks: bool('allowWatchBookmarks'),
      timeoutSeconds: intParam(query, 'timeoutSeconds'),
      sendInitialEvents: bool('sendInitialEvents'),
      // Each event carries a one-row Table; column definitions only in the first, as kube-apiserver.
      transform: wantsTable(accept)
        ? (obj: Obj, first: boolean) => {
            const table = tableFor(def, [obj], query.get('includeObject'), obj.metadata?.resourceVersion);
            if (!first) table.columnDefinitions = [];
            return table;
          }
        : undefined,
    };
  }

  function nonResource(path: string, res: ServerResponse): boolean {
    const segments = path.split('/').filter(Boolean);
    if (NON_RESOURCE_OK.has(path) || path.startsWith('/healthz/') || path.startsWith('/livez/') || path.startsWith('/readyz/')) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return true;
    }
    if (path === '/version' || path === '/version/') {
      send(res, 200, SERVER_VERSION);
      return true;
    }
    if (path === '/api') {
      send(res, 200, coreVersions(ctx.address().replace(/^https:\/\//, '')));
      return true;
    }
    if (path === '/apis') {
      send(res, 200, groupList());
      return true;
    }
    if (segments[0] === 'api' && segments.length === 2) {
      const doc = resourceList('', segments[1]!);
      if (!doc) throw errors.notFound({ plural: '', group: '' }, path);
      send(res, 200, doc);
      return true;
    }
    if (segments[0] === 'apis' && segments.length === 2) {
      const doc = group(segments[1]!);
      if (!doc) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      send(res, 200, doc);
      return true;
    }
    if (segments[0] === 'apis' && segments.length === 3) {
      const doc = resourceList(segments[1]!, segments[2]!);
      if (!doc) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      send(res, 200, doc);
      return true;
    }
    return false;
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://apiserver');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const query = url.searchParams;
    const method = req.method ?? 'GET';
    const segments = path.split('/').filter(Boolean);
    const route = parseResourcePath(segments);
    const watch = ['1', 'true'].includes(query.get('watch') ?? '') || (typeof route === 'object' && route.watchPath);
    const record: RequestRecord = { time: Date.now(), method, path, query: Object.fromEntries(query), user: '', watch };
    faults.log.push(record);
    if (faults.log.length > ctx.maxLog) faults.log.splice(0, faults.log.length - ctx.maxLog);
    res.on('finish', () => (record.code = res.statusCode));
    try {
      const latency = faults.latency();
      if (latency > 0) await delay(latency);
      const injected = faults.take(method, path, watch);
      if (injected) throw injected;
      const user: UserInfo = authn.authenticate(req);
      record.user = user.username;
      if (route === undefined) {
        if (!authorize(ctx.policy(), { user: user.username, groups: user.groups, verb: method.toLowerCase(), path }).allowed) {
          throw errors.forbiddenPath(user.username, path);
        }
        if (method !== 'GET' && method !== 'HEAD') throw errors.methodNotAllowed(method);
        if (!nonResource(path, res)) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
        return;
      }
      if (route === 'notfound') throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      const verb = verbFor(method, route, watch);
      const decision = authorize(ctx.policy(), {
        user: user.username,
        groups: user.groups,
        verb,
        resource: route.def.plural,
        subresource: route.subresource,
        apiGroup: route.def.group,
        namespace: route.namespace,
        name: route.name,
      });
      if (!decision.allowed) {
        throw errors.forbidden(user.username, verb, route.def, route.def.namespaced ? route.namespace : undefined, route.name, route.subresource);
      }
      await handleResource(req, res, route, query, user, watch);
    } catch (err) {
      if (err instanceof ApiError) sendError(res, err);
      else sendError(res, errors.internal((err as Error)?.message ?? String(err)));
    }
  };
}

