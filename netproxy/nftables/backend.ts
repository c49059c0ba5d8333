/**
 * The nftables backend: keeps the fragments it last applied and turns each sync into one `nft -f`
 * transaction. An incremental sync only adds and deletes the map elements (and the few chains) of
 * the Services that changed; a full sync re-declares everything it owns and removes the rest.
 */
import type { ProxyBackend, BackendContext, SyncRequest } from '../backend';
import type { ServicePortState } from '../desiredstate';
import { run } from '../exec';
import { FAMILIES, TABLE, renderBase, renderFragment, splitName, type NftChain, type NftFragment, type RenderContext } from './render';

/** Map elements with their owners: the first owner's value is the one in the kernel. */
type ElementOwners = Map<string, Map<string, string>>;

interface Applied {
  fragments: Map<string, NftFragment>;
  /** `family map` → key → owner → value. */
  elements: Map<string, ElementOwners>;
  /** shared chain → rules and reference count. */
  shared: Map<string, { rules: string[]; refs: number }>;
}

const STATIC_MAPS = ['service-ips', 'service-nodeports', 'no-endpoint-services', 'no-endpoint-nodeports', 'endpoints', 'nodeport-endpoints', 'hairpin'];
const BASE_CHAINS = ['nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-input', 'filter-forward', 'filter-output', 'services', 'endpoints-check', 'reject-chain'];

function effective(owners: Map<string, string> | undefined): string | undefined {
  if (!owners || owners.size === 0) return undefined;
  return owners.values().next().value;
}

export interface NftTransaction {
  text: string;
  /** Number of rules and elements in the kernel after it is applied. */
  count: number;
}

/** Pure planner: given what was applied and a sync request, the transaction text and the new applied state. */
export function createNftPlanner(ctx: RenderContext) {
  let applied: Applied = { fragments: new Map(), elements: new Map(), shared: new Map() };
  let first = true;

  function countRules(a: Applied): number {
    let n = 0;
    for (const m of a.elements.values()) n += m.size;
    for (const s of a.shared.values()) n += s.rules.length;
    for (const f of a.fragments.values()) for (const c of f.chains) n += c.rules.length;
    return n;
  }

  function plan(request: SyncRequest): { transaction: NftTransaction; commit: () => void; reset: () => void } {
    const full = request.full || first;
    const next: Applied = full
      ? { fragments: new Map(), elements: new Map(), shared: new Map() }
      : { fragments: new Map(applied.fragments), elements: cloneElements(applied.elements), shared: new Map([...applied.shared].map(([k, v]) => [k, { ...v }])) };
    const keys = full ? [...request.state.services.keys()] : [...request.changed];
    const removedChains: string[] = [];
    const changedChains = new Map<string, string[]>();
    const newDynamicMaps: { name: string; decl: string }[] = [];
    const flushDynamicMaps: string[] = [];
    const removedDynamicMaps: string[] = [];

    for (const key of keys) {
      const oldFrag = full ? undefined : next.fragments.get(key);
      const ports: ServicePortState[] | undefined = request.state.services.get(key);
      const newFrag = ports ? renderFragment(ports, ctx) : undefined;
      if (oldFrag) {
        for (const e of oldFrag.elements) next.elements.get(e.map)?.get(e.key)?.delete(key);
        for (const c of oldFrag.sharedChains) {
          const s = next.shared.get(c.name)!;
          s.refs--;
        }
      }
      if (newFrag) {
        for (const e of newFrag.elements) {
          let m = next.elements.get(e.map);
          if (!m) next.elements.set(e.map, (m = new Map()));
          let owners = m.get(e.key);
          if (!owners) m.set(e.key, (owners = new Map()));
          owners.set(key, e.value);
        }
        for (const c of newFrag.sharedChains) {
          const s = next.shared.get(c.name);
          if (s) s.refs++;
          else next.shared.set(c.name, { rules: c.rules, refs: 1 });
        }
        next.fragments.set(key, newFrag);
      } else next.fragments.delete(key);
      // Chains of the Service itself (affinity).
      const oldChains = new Map((oldFrag?.chains ?? []).map((c) => [c.name, c.rules]));
      for (const c of newFrag?.chains ?? []) {
        if (full || JSON.stringify(oldChains.get(c.name)) !== JSON.stringify(c.rules)) changedChains.set(c.name, c.rules);
        oldChains.delete(c.name);
      }
      removedChains.push(...oldChains.keys());
      const oldMaps = new Set((oldFrag?.dynamicMaps ?? []).map((m) => m.name));
      for (const m of newFrag?.dynamicMaps ?? []) {
        if (!oldMaps.has(m.name)) newDynamicMaps.push(m);
        else if (endpointRemoved(oldFrag!, newFrag!)) flushDynamicMaps.push(m.name);
        oldMaps.delete(m.name);
      }
      removedDynamicMaps.push(...oldMaps);
    }

    const t = (qualified: string) => {
      const [fam, name] = splitName(qualified);
      return `${fam} ${TABLE} ${name}`;
    };
    // Full: declare the base objects, flush them, then write their rules.
    const text: string[] = [];
    if (full) {
      for (const f of FAMILIES) {
        const base = renderBase(f, ctx);
        const split = base.indexOf('\nadd ');
        const decl = base.slice(0, split + 1);
        const rules = base.slice(split + 1);
        if (first) text.push(`add table ${f} ${TABLE}`, `delete table ${f} ${TABLE}`);
        text.push(decl.trimEnd());
        for (const c of BASE_CHAINS) text.push(`flush chain ${f} ${TABLE} ${c}`);
        for (const m of [...STATIC_MAPS, 'nodeport-ips']) text.push(`flush ${m === 'hairpin' || m === 'nodeport-ips' ? 'set' : 'map'} ${f} ${TABLE} ${m}`);
        text.push(rules.trimEnd());
      }
      // Chains we applied before and no longer want.
      for (const name of applied.shared.keys()) if (!next.shared.has(name) || next.shared.get(name)!.refs <= 0) removedChains.push(name);
      for (const frag of applied.fragments.values()) {
        for (const c of frag.chains) if (![...next.fragments.values()].some((nf) => nf.chains.some((x) => x.name === c.name))) removedChains.push(c.name);
        for (const m of frag.dynamicMaps) if (![...next.fragments.values()].some((nf) => nf.dynamicMaps.some((x) => x.name === m.name))) removedDynamicMaps.push(m.name);
      }
    }
    // New shared chains (or all of them on a full sync).
    for (const [name, s] of next.shared) {
      if (s.refs <= 0) continue;
      if (full || !applied.shared.has(name) || applied.shared.get(name)!.refs <= 0) changedChains.set(name, s.rules);
    }
    for (const m of newDynamicMaps) text.push(`add map ${t(m.name)} { ${m.decl} }`);
    if (full) for (const frag of next.fragments.values()) for (const m of frag.dynamicMaps) text.push(`add map ${t(m.name)} { ${m.decl} }`);
    for (const name of flushDynamicMaps) text.push(`flush map ${t(name)}`);
    for (const [name, rules] of changedChains) {
      text.push(`add chain ${t(name)}`, `flush chain ${t(name)}`);
      for (const r of rules) text.push(`add rule ${t(name)} ${r}`);
    }
    // Element changes.
    const adds: string[] = [];
    const dels: string[] = [];
    const mapNames = new Set([...applied.elements.keys(), ...next.elements.keys()]);
    for (const map of mapNames) {
      const before = full ? undefined : applied.elements.get(map);
      const after = next.elements.get(map);
      const touchedKeys = full ? [...(after?.keys() ?? [])] : touchedElementKeys(map, keys, applied, next);
      for (const k of touchedKeys) {
        const b = effective(before?.get(k));
        const a = effective(after?.get(k));
        if (b === a) continue;
        if (b !== undefined) dels.push(`delete element ${t(map)} { ${k} }`);
        if (a !== undefined) adds.push(`add element ${t(map)} { ${k}${a === '' ? '' : ` : ${a}`} }`);
      }
    }
    text.push(...dels, ...adds);
    for (const [name, s] of next.shared) {
      if (s.refs <= 0) {
        removedChains.push(name);
        next.shared.delete(name);
      }
    }
    for (const name of new Set(removedChains)) {
      if (changedChains.has(name)) continue;
      text.push(`flush chain ${t(name)}`);
    }
    for (const name of new Set(removedChains)) {
      if (changedChains.has(name)) continue;
      text.push(`delete chain ${t(name)}`);
    }
    for (const name of new Set(removedDynamicMaps)) text.push(`delete map ${t(name)}`);
    // Drop empty element-owner entries.
    for (const m of next.elements.values()) for (const [k, owners] of m) if (owners.size === 0) m.delete(k);

    const transaction = { text: text.join('\n') + '\n', count: countRules(next) };
    return {
      transaction,
      commit: () => {
        applied = next;
        first = false;
      },
      reset: () => {
        first = true;
      },
    };
  }

  return { plan, isFirst: () => first };
}

function touchedElementKeys(map: string, serviceKeys: string[], applied: Applied, next: Applied): string[] {
  const out = new Set<string>();
  for (const sk of serviceKeys) {
    for (const frag of [applied.fragments.get(sk), next.fragments.get(sk)]) {
      for (const e of frag?.elements ?? []) if (e.map === map) out.add(e.key);
    }
  }
  return [...out];
}

function cloneElements(src: Map<string, ElementOwners>): Map<string, ElementOwners> {
  const out = new Map<string, ElementOwners>();
  for (const [map, keys] of src) {
    const m: ElementOwners = new Map();
    for (const [k, owners] of keys) m.set(k, new Map(owners));
    out.set(map, m);
  }
  return out;
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
