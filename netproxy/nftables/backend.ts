/**
 * The nftables backend: keeps the fragments it last applied and turns each sync into one `nft -f`
 * transaction. An incremental sync only adds and deletes the map elements (and the few chains) of
 * the Services that changed; a full sync re-declares everything it owns and removes the rest.
 */
import type { ProxyBackend, BackendContext, SyncRequest } from '../backend';
import type { ServicePortState } from '../desiredstate';
import { run } from '../exec';
import { FAMILIES, PROTOS, TABLE, endpointMap, renderBase, renderFragment, splitName, type NftChain, type NftFragment, type RenderContext } from './render';

/**
 * One map or set element and the Services that want it: several Services may claim the same
 * element (a shared endpoint's hairpin entry, two Services on one external IP and port); the first
 * claimant's value is the one in the kernel. Indexed by `family map\0key`.
 */
type Claims = [owner: string, value: string][];

interface Applied {
  fragments: Map<string, NftFragment>;
  elements: Map<string, Claims>;
  /** shared chain → rules and reference count. */
  shared: Map<string, { rules: string[]; refs: number }>;
  /** Rules plus elements, kept up to date as elements come and go. */
  count: number;
}

export const STATIC_MAPS = ['service-ips', 'service-nodeports', 'no-endpoint-services', 'no-endpoint-nodeports', ...PROTOS.flatMap((p) => [endpointMap(false, p), endpointMap(true, p)])];
export const STATIC_SETS = ['hairpin', 'nodeport-ips'];
const BASE_CHAINS = ['nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-input', 'filter-forward', 'filter-output', 'services', 'endpoints-check', 'reject-chain'];
/** Elements per `add element` statement: big statements parse much faster than one per line. */
const BATCH = 2000;

export interface NftTransaction {
  text: string;
  /** Number of rules and elements in the kernel after it is applied. */
  count: number;
}

const elementId = (map: string, key: string) => `${map}\0${key}`;

function emptyApplied(): Applied {
  return { fragments: new Map(), elements: new Map(), shared: new Map(), count: 0 };
}

/** Writes element statements grouped by map, `BATCH` elements per statement. */
function elementStatements(verb: 'add' | 'delete', byMap: Map<string, string[]>, out: string[]): void {
  for (const [map, items] of byMap) {
    const [fam, name] = splitName(map);
    for (let i = 0; i < items.length; i += BATCH) out.push(`${verb} element ${fam} ${TABLE} ${name} { ${items.slice(i, i + BATCH).join(', ')} }`);
  }
}

function push(byMap: Map<string, string[]>, map: string, item: string): void {
  let l = byMap.get(map);
  if (!l) byMap.set(map, (l = []));
  l.push(item);
}

/**
 * Pure planner: given what was applied and a sync request, the transaction text. An incremental
 * plan updates the applied state in place; `commit` accepts it, `reset` (the transaction failed)
 * makes the next plan a full one that rebuilds the table from scratch, as does planning again
 * without committing.
 */
export function createNftPlanner(ctx: RenderContext) {
  let applied = emptyApplied();
  let first = true;
  let uncommitted = false;

  const t = (qualified: string) => {
    const [fam, name] = splitName(qualified);
    return `${fam} ${TABLE} ${name}`;
  };
  const chainText = (name: string, rules: string[], out: string[]) => {
    out.push(`add chain ${t(name)}`, `flush chain ${t(name)}`);
    for (const r of rules) out.push(`add rule ${t(name)} ${r}`);
  };
  const item = (key: string, value: string) => (value === '' ? key : `${key} : ${value}`);

  function planFull(request: SyncRequest): { text: string; next: Applied } {
    const next = emptyApplied();
    const text: string[] = [];
    const adds = new Map<string, string[]>();
    const chains: [string, string[]][] = [];
    const dynamicMaps: { name: string; decl: string }[] = [];
    for (const [key, ports] of request.state.services) {
      const frag = renderFragment(ports, ctx);
      next.fragments.set(key, frag);
      for (const e of frag.elements) {
        const id = elementId(e.map, e.key);
        const claims = next.elements.get(id);
        if (claims) claims.push([key, e.value]);
        else {
          next.elements.set(id, [[key, e.value]]);
          push(adds, e.map, item(e.key, e.value));
          next.count++;
        }
      }
      for (const c of frag.sharedChains) {
        const s = next.shared.get(c.name);
        if (s) s.refs++;
        else {
          next.shared.set(c.name, { rules: c.rules, refs: 1 });
          chains.push([c.name, c.rules]);
          next.count += c.rules.length;
        }
      }
      for (const c of frag.chains) {
        chains.push([c.name, c.rules]);
        next.count += c.rules.length;
      }
      dynamicMaps.push(...frag.dynamicMaps);
    }
    for (const f of FAMILIES) {
      const base = renderBase(f, ctx);
      const split = base.indexOf('\nadd ');
      if (first) text.push(`add table ${f} ${TABLE}`, `delete table ${f} ${TABLE}`);
      text.push(base.slice(0, split + 1).trimEnd());
      for (const c of BASE_CHAINS) text.push(`flush chain ${f} ${TABLE} ${c}`);
      for (const m of STATIC_MAPS) text.push(`flush map ${f} ${TABLE} ${m}`);
      for (const m of STATIC_SETS) text.push(`flush set ${f} ${TABLE} ${m}`);
      text.push(base.slice(split + 1).trimEnd());
    }
    const wantedChains = new Set(chains.map(([n]) => n));
    const wantedMaps = new Set(dynamicMaps.map((m) => m.name));
    for (const m of dynamicMaps) text.push(`add map ${t(m.name)} { ${m.decl} }`);
    for (const m of dynamicMaps) text.push(`flush map ${t(m.name)}`);
    for (const [name, rules] of chains) chainText(name, rules, text);
    elementStatements('add', adds, text);
    if (!first) {
      // What the previous state had and this one does not: its elements went with the flushes.
      const stale = new Set<string>();
      for (const name of applied.shared.keys()) if (!wantedChains.has(name)) stale.add(name);
      for (const frag of applied.fragments.values()) for (const c of frag.chains) if (!wantedChains.has(c.name)) stale.add(c.name);
      for (const name of stale) text.push(`flush chain ${t(name)}`);
      for (const name of stale) text.push(`delete chain ${t(name)}`);
      const staleMaps = new Set<string>();
      for (const frag of applied.fragments.values()) for (const m of frag.dynamicMaps) if (!wantedMaps.has(m.name)) staleMaps.add(m.name);
      for (const name of staleMaps) text.push(`delete map ${t(name)}`);
    }
    return { text: text.join('\n') + '\n', next };
  }

  function planIncremental(request: SyncRequest): string {
    const a = applied;
    const newChains = new Map<string, string[]>();
    const removedChains = new Set<string>();
    const newMaps: { name: string; decl: string }[] = [];
    const flushMaps: string[] = [];
    const removedMaps: string[] = [];
    // Effective value of every touched element before this plan, captured on first touch.
    const before = new Map<string, { map: string; key: string; value: string | undefined }>();
    const touch = (map: string, key: string) => {
      const id = elementId(map, key);
      if (!before.has(id)) before.set(id, { map, key, value: a.elements.get(id)?.[0]?.[1] });
      return id;
    };
    for (const key of request.changed) {
      const oldFrag = a.fragments.get(key);
      const ports: ServicePortState[] | undefined = request.state.services.get(key);
      const newFrag = ports ? renderFragment(ports, ctx) : undefined;
      for (const e of oldFrag?.elements ?? []) {
        const id = touch(e.map, e.key);
        const claims = a.elements.get(id);
        if (!claims) continue;
        const i = claims.findIndex(([o]) => o === key);
        if (i >= 0) claims.splice(i, 1);
        if (claims.length === 0) a.elements.delete(id);
      }
      for (const e of newFrag?.elements ?? []) {
        const id = touch(e.map, e.key);
        const claims = a.elements.get(id);
        if (claims) claims.push([key, e.value]);
        else a.elements.set(id, [[key, e.value]]);
      }
      for (const c of oldFrag?.sharedChains ?? []) a.shared.get(c.name)!.refs--;
      for (const c of newFrag?.sharedChains ?? []) {
        const s = a.shared.get(c.name);
        if (s) {
          if (s.refs <= 0) newChains.set(c.name, c.rules); // dropped earlier in this plan, wanted again
          s.refs++;
        } else {
          a.shared.set(c.name, { rules: c.rules, refs: 1 });
          newChains.set(c.name, c.rules);
          a.count += c.rules.length;
        }
      }
      const oldChains = new Map((oldFrag?.chains ?? []).map((c) => [c.name, c.rules]));
      for (const c of newFrag?.chains ?? []) {
        const was = oldChains.get(c.name);
        if (!was || was.join('\n') !== c.rules.join('\n')) newChains.set(c.name, c.rules);
        a.count += c.rules.length - (was?.length ?? 0);
        oldChains.delete(c.name);
      }
      for (const [name, rules] of oldChains) {
        removedChains.add(name);
        a.count -= rules.length;
      }
      const oldMaps = new Set((oldFrag?.dynamicMaps ?? []).map((m) => m.name));
      for (const m of newFrag?.dynamicMaps ?? []) {
        if (!oldMaps.has(m.name)) newMaps.push(m);
        else if (endpointRemoved(oldFrag!, newFrag!)) flushMaps.push(m.name);
        oldMaps.delete(m.name);
      }
      removedMaps.push(...oldMaps);
      if (newFrag) a.fragments.set(key, newFrag);
      else a.fragments.delete(key);
    }
    for (const [name, s] of a.shared) {
      if (s.refs > 0) continue;
      removedChains.add(name);
      newChains.delete(name);
      a.count -= s.rules.length;
      a.shared.delete(name);
    }
    const adds = new Map<string, string[]>();
    const dels = new Map<string, string[]>();
    for (const [id, b] of before) {
      const after = a.elements.get(id)?.[0]?.[1];
      if (b.value === after) continue;
      if (b.value !== undefined) push(dels, b.map, b.key);
      if (after !== undefined) push(adds, b.map, item(b.key, after));
      a.count += (after !== undefined ? 1 : 0) - (b.value !== undefined ? 1 : 0);
    }
    const text: string[] = [];
    for (const m of newMaps) text.push(`add map ${t(m.name)} { ${m.decl} }`);
    for (const name of flushMaps) text.push(`flush map ${t(name)}`);
    for (const [name, rules] of newChains) chainText(name, rules, text);
    elementStatements('delete', dels, text);
    elementStatements('add', adds, text);
    for (const name of removedChains) if (!newChains.has(name)) text.push(`flush chain ${t(name)}`);
    for (const name of removedChains) if (!newChains.has(name)) text.push(`delete chain ${t(name)}`);
    for (const name of new Set(removedMaps)) text.push(`delete map ${t(name)}`);
    return text.length ? text.join('\n') + '\n' : '';
  }

  function plan(request: SyncRequest): { transaction: NftTransaction; commit: () => void; reset: () => void } {
    if (uncommitted) first = true;
    const full = request.full || first;
    let text: string;
    let next = applied;
    if (full) ({ text, next } = planFull(request));
    else text = planIncremental(request);
    uncommitted = true;
    const wasFirst = first;
    return {
      transaction: { text, count: next.count },
      commit: () => {
        applied = next;
        first = false;
        uncommitted = false;
      },
      reset: () => {
        first = true;
        uncommitted = false;
        if (wasFirst) applied = emptyApplied();
      },
    };
  }

  return { plan, isFirst: () => first };
}

function endpointRemoved(oldFrag: NftFragment, newFrag: NftFragment): boolean {
  const eps = (f: NftFragment) => new Set(f.chains.filter((c) => c.name.includes('-ep-')).map((c) => c.rules[1]));
  const after = eps(newFrag);
  for (const r of eps(oldFrag)) if (!after.has(r)) return true;
  return false;
}

export function createNftablesBackend(ctx: BackendContext): ProxyBackend & { lastTransaction(): string } {
  const planner = createNftPlanner({ config: ctx.config, nodeIPs: ctx.nodeIPs });
  let last = '';
  return {
    mode: 'nftables',
    async sync(request) {
      const { transaction, commit, reset } = planner.plan(request);
      last = transaction.text;
      if (transaction.text === '') {
        commit();
        return { rules: transaction.count };
      }
      try {
        await run(ctx.exec, ['nft', '-f', '-'], transaction.text);
      } catch (err) {
        reset();
        throw err;
      }
      commit();
      return { rules: transaction.count };
    },
    async cleanup() {
      await cleanupNftables(ctx.exec);
    },
    lastTransaction: () => last,
  };
}

/** Removes keelson's nftables tables (both families); absent tables are fine. */
export async function cleanupNftables(exec: BackendContext['exec']): Promise<void> {
  const text = FAMILIES.map((f) => `add table ${f} ${TABLE}\ndelete table ${f} ${TABLE}`).join('\n') + '\n';
  await run(exec, ['nft', '-f', '-'], text);
}

export type { NftChain };
