/**
 * Legacy (non-aggregated) discovery documents built from the resource table: /api, /api/v1,
 * /apis, /apis/<group>, /apis/<group>/<version>, and /version. Clients that ask for aggregated
 * discovery get these with Content-Type application/json and fall back, as with older servers.
 */
import { RESOURCES, apiVersionOf } from './resources';
import type { ResourceDef } from './resources';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-keelson-test',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23',
  compiler: 'gc',
  platform: 'linux/amd64',
};

function verbsOf(def: ResourceDef): string[] {
  if (def.virtual) return ['create'];
  return ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
}

function subVerbs(sub: string): string[] {
  if (sub === 'eviction' || sub === 'token' || sub === 'binding') return ['create'];
  if (sub === 'log') return ['get'];
  return ['get', 'patch', 'update'];
}

export function resourceList(group: string, version: string): Record<string, unknown> | undefined {
  const defs = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (defs.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const def of defs) {
    const entry: Record<string, unknown> = {
      name: def.plural,
      singularName: def.singular,
      namespaced: def.namespaced,
      kind: def.kind,
      verbs: verbsOf(def),
    };
    if (def.shortNames) entry.shortNames = def.shortNames;
    if (!def.virtual) entry.storageVersionHash = Buffer.from(`${def.group}/${def.version}/${def.kind}`).toString('base64').slice(0, 11);
    resources.push(entry);
    for (const sub of def.subresources) {
      const kind = sub === 'eviction' ? 'Eviction' : sub === 'token' ? 'TokenRequest' : sub === 'binding' ? 'Binding' : def.kind;
      const subEntry: Record<string, unknown> = { name: `${def.plural}/${sub}`, singularName: '', namespaced: def.namespaced, kind, verbs: subVerbs(sub) };
      if (sub === 'eviction') Object.assign(subEntry, { group: 'policy', version: 'v1' });
      if (sub === 'token') Object.assign(subEntry, { group: 'authentication.k8s.io', version: 'v1' });
      resources.push(subEntry);
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

export function coreVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groups(): { name: string; versions: string[] }[] {
  const out = new Map<string, Set<string>>();
  for (const def of RESOURCES) {
    if (!def.group) continue;
    if (!out.has(def.group)) out.set(def.group, new Set());
    out.get(def.group)!.add(def.version);
  }
  return [...out.entries()].map(([name, versions]) => ({ name, versions: [...versions] }));
}

function groupDoc(name: string, versions: string[]): Record<string, unknown> {
  const list = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: list, preferredVersion: list[0] };
}

export function groupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups().map((g) => groupDoc(g.name, g.versions)) };
}

export function group(name: string): Record<string, unknown> | undefined {
  const found = groups().find((g) => g.name === name);
  return found ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(found.name, found.versions) } : undefined;
}

export { apiVersionOf };
