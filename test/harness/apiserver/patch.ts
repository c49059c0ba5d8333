/**
 * The three patch formats kube-apiserver accepts for built-in kinds: JSON merge patch (RFC 7386),
 * strategic merge patch (lists merged by their patch merge key, `$patch` directives,
 * `$setElementOrder`, `$deleteFromPrimitiveList`, `$retainKeys`), and JSON patch (RFC 6902).
 */
import type { ResourceDef } from './resources';
import { ApiError, errors } from './status';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return v === undefined ? v : (structuredClone(v) as T);
}

// ---- RFC 7386 ----

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

// ---- strategic merge patch ----

/**
 * How lists merge, by path (field names joined with '.', list indices left out). A list not named
 * here is atomic: the patch replaces it. `''` as key means a list of primitives merged as a set.
 */
const MERGE_KEYS: Record<string, string> = {
  'metadata.ownerReferences': 'uid',
  'metadata.finalizers': '',
  'spec.containers': 'name',
  'spec.initContainers': 'name',
  'spec.ephemeralContainers': 'name',
  'spec.volumes': 'name',
  'spec.imagePullSecrets': 'name',
  'spec.hostAliases': 'ip',
  'spec.resourceClaims': 'name',
  'spec.schedulingGates': 'name',
  'spec.podCIDRs': '',
  'spec.containers.ports': 'containerPort',
  'spec.containers.env': 'name',
  'spec.containers.volumeMounts': 'mountPath',
  'spec.containers.volumeDevices': 'devicePath',
  'spec.containers.resizePolicy': 'resourceName',
  'spec.initContainers.ports': 'containerPort',
  'spec.initContainers.env': 'name',
  'spec.initContainers.volumeMounts': 'mountPath',
  'status.conditions': 'type',
  'status.containerStatuses': 'name',
  'status.initContainerStatuses': 'name',
  'status.ephemeralContainerStatuses': 'name',
  'status.podIPs': 'ip',
  'status.hostIPs': 'ip',
  'status.resourceClaimStatuses': 'name',
  'status.addresses': 'type',
  'status.volumesAttached': 'name',
};

/** Service ports merge by port (upstream: patchMergeKey "port"). */
const KIND_MERGE_KEYS: Record<string, Record<string, string>> = {
  Service: { 'spec.ports': 'port' },
  Node: { 'spec.podCIDRs': '' },
};

function mergeKeyFor(kind: string, path: string): string | undefined {
  const perKind = KIND_MERGE_KEYS[kind]?.[path];
  if (perKind !== undefined) return perKind;
  return MERGE_KEYS[path];
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function smpObject(kind: string, path: string, target: JsonObject | undefined, patch: JsonObject): Json {
  const directive = patch.$patch;
  if (directive === 'replace') {
    const { $patch: _d, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (directive === 'delete') return null;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      const current = result[field];
      if (Array.isArray(current) && Array.isArray(value)) {
        result[field] = current.filter((item) => !value.some((v) => JSON.stringify(v) === JSON.stringify(item)));
      }
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const childPath = join(path, key);
    if (Array.isArray(value)) {
      result[key] = smpList(kind, childPath, result[key], value);
    } else if (isObject(value)) {
      const merged = smpObject(kind, childPath, isObject(result[key]) ? (result[key] as JsonObject) : undefined, value);
      if (merged === null) delete result[key];
      else result[key] = merged;
    } else {
      result[key] = value;
    }
  }
  if (Array.isArray(retain)) {
    for (const key of Object.keys(result)) if (!retain.includes(key)) delete result[key];
  }
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith('$setElementOrder/') || !Array.isArray(order)) continue;
    const field = key.slice('$setElementOrder/'.length);
    const mk = mergeKeyFor(kind, join(path, field));
    const list = result[field];
    if (!Array.isArray(list) || mk === undefined) continue;
    result[field] = reorder(list, order, mk);
  }
  return result;
}

function reorder(list: Json[], order: Json[], mergeKey: string): Json[] {
  const keyOf = (item: Json) => JSON.stringify(mergeKey && isObject(item) ? item[mergeKey] : item);
  const wanted = order.map((o) => JSON.stringify(mergeKey && isObject(o) ? o[mergeKey] : o));
  const ordered: Json[] = [];
  for (const k of wanted) {
    const found = list.find((item) => keyOf(item) === k);
    if (found !== undefined) ordered.push(found);
  }
  for (const item of list) if (!wanted.includes(keyOf(item))) ordered.push(item);
  return ordered;
}

function stripDirectives(value: Json): Json {
  if (Array.isArray(value)) return value.filter((v) => !(isObject(v) && v.$patch !== undefined && Object.keys(v).length === 1)).map(stripDirectives);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith('$')) out[k] = stripDirectives(v);
  return out;
}

function smpList(kind: string, path: string, target: Json | undefined, patch: Json[]): Json {
  const current = Array.isArray(target) ? target : [];
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace')).map(stripDirectives);
  }
  const mergeKey = mergeKeyFor(kind, path);
  if (mergeKey === undefined) return patch.map(stripDirectives);
  if (mergeKey === '') {
    const result = [...current];
    for (const item of patch) if (!result.some((r) => JSON.stringify(r) === JSON.stringify(item))) result.push(item);
    return result;
  }
  const result: Json[] = current.map((item) => clone(item));
  for (const item of patch) {
    if (!isObject(item)) throw errors.badRequest(`unable to merge list ${path}: element is not an object`);
    const key = item[mergeKey];
    if (key === undefined) throw errors.badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    const index = result.findIndex((r) => isObject(r) && JSON.stringify(r[mergeKey]) === JSON.stringify(key));
    if (item.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    if (index >= 0) result[index] = smpObject(kind, path, result[index] as JsonObject, item);
    else result.push(smpObject(kind, path, undefined, item));
  }
  return result;
}

export function strategicMergePatch(kind: string, target: Json, patch: Json): Json {
  if (!isObject(patch)) throw errors.badRequest('strategic merge patch must be a JSON object');
  return smpObject(kind, '', isObject(target) ? target : {}, patch);
}

// ---- RFC 6902 ----

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`invalid JSON pointer "${pointer}"`);
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function resolveParent(doc: Json, tokens: string[], pointer: string): { parent: Json; last: string } {
  let cur: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, token, false, pointer)]!;
    else if (isObject(cur) && token in cur) cur = cur[token]!;
    else throw new Error(`doc is missing path: "${pointer}"`);
  }
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function arrayIndex(arr: Json[], token: string, forAdd: boolean, pointer: string): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`invalid array index "${token}" in "${pointer}"`);
  const index = Number(token);
  if (index > arr.length || (!forAdd && index === arr.length)) throw new Error(`index out of range in "${pointer}"`);
  return index;
}

function getAt(doc: Json, pointer: string): Json {
  let cur: Json = doc;
  for (const token of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, token, false, pointer)]!;
    else if (isObject(cur) && token in cur) cur = cur[token]!;
    else throw new Error(`doc is missing path: "${pointer}"`);
  }
  return cur;
}

function addAt(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return clone(value);
  const { parent, last } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, pointer), 0, clone(value));
  else if (isObject(parent)) parent[last] = clone(value);
  else throw new Error(`doc is missing path: "${pointer}"`);
  return doc;
}

function removeAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new Error('cannot remove the whole document');
  const { parent, last } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false, pointer), 1);
  else if (isObject(parent) && last in parent) delete parent[last];
  else throw new Error(`unable to remove nonexistent key: ${last}: missing value`);
  return doc;
}

export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be an array of operations');
  let doc = clone(target);
  for (const raw of ops as Operation[]) {
    if (!isObject(raw as unknown) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw errors.badRequest(`invalid json patch operation: ${JSON.stringify(raw)}`);
    }
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, raw.value ?? null);
        break;
      case 'remove':
        doc = removeAt(doc, raw.path);
        break;
      case 'replace':
        getAt(doc, raw.path);
        doc = raw.path === '' ? clone(raw.value ?? null) : addAt(removeAt(doc, raw.path), raw.path, raw.value ?? null);
        break;
      case 'move': {
        const value = getAt(doc, raw.from ?? '');
        doc = addAt(removeAt(doc, raw.from ?? ''), raw.path, value);
        break;
      }
      case 'copy':
        doc = addAt(doc, raw.path, getAt(doc, raw.from ?? ''));
        break;
      case 'test': {
        const actual = getAt(doc, raw.path);
        if (JSON.stringify(canonical(actual)) !== JSON.stringify(canonical(raw.value ?? null))) {
          throw new Error(`testing value ${raw.path} failed: test failed`);
        }
        break;
      }
      default:
        throw errors.badRequest(`Unexpected kind: ${raw.op}`);
    }
  }
  return doc;
}

function canonical(value: Json): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k]!)]));
}

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
] as const;

/** Applies a patch of the given Content-Type; errors are Status errors as kube-apiserver's. */
export function applyPatch(contentType: string, target: unknown, patch: unknown, def: ResourceDef): unknown {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  try {
    switch (type) {
      case 'application/merge-patch+json':
        return mergePatch(target as Json, patch as Json);
      case 'application/strategic-merge-patch+json':
        return strategicMergePatch(def.kind, target as Json, patch as Json);
      case 'application/json-patch+json':
        return jsonPatch(target as Json, patch);
      default:
        throw errors.unsupportedMediaType(type);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const name = (target as { metadata?: { name?: string } })?.metadata?.name ?? '';
    throw errors.invalid(def.kind, def.group, name, [{ field: 'patch', message: `Invalid value: ${(err as Error).message}` }]);
  }
}
