/**
 * Turns a sync request into `iptables-restore --noflush` input, one per IP family. A full sync
 * declares (and so flushes) every chain netproxy owns and writes all of its rules; a partial sync
 * touches only the Services that changed: their own chains whose rules differ are rewritten, chains
 * they no longer need are deleted, and their rules in the shared chains are deleted (`-D`) or
 * inserted (`-I`) one by one, so an unchanged Service costs nothing. The canary chains are
 * re-declared on full syncs; partial syncs append to and delete from them in the same
 * transaction, which fails (and forces a full sync) if someone removed them.
 */
import { createHash } from 'node:crypto';
import type { DesiredState } from '../desiredstate';
import { KUBE_PROXY_CANARY, KUBE_SERVICES, STATIC_CHAINS, isServiceChain } from './chains';
import { jumpRules, nodePortsTail, renderBase, renderService, type DispatchRule, type Family, type IptTable, type RenderContext, type ServiceRules } from './render';

/** What `iptables-save` shows: the chains of each table and the jumps from built-in chains. */
export interface Observed {
  chains: Map<string, Set<string>>;
  /** `table from to` for every rule in a built-in chain that jumps to `to`. */
  jumps: Set<string>;
  /** `table from rule` lines of built-in chains, as saved (for cleanup). */
  builtinRules: { table: string; chain: string; rule: string; target: string }[];
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

export function parseSave(text: string): Observed {
  const observed: Observed = { chains: new Map(), jumps: new Set(), builtinRules: [] };
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      if (!observed.chains.has(table)) observed.chains.set(table, new Set());
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (!BUILTIN.has(name)) observed.chains.get(table)?.add(name);
    } else if (line.startsWith('-A ')) {
      const [, chain, ...rest] = line.split(' ');
      if (!chain || !BUILTIN.has(chain)) continue;
      const rule = rest.join(' ');
      const m = / -j (\S+)/.exec(` ${rule}`);
      if (!m) continue;
      observed.jumps.add(`${table} ${chain} ${m[1]}`);
      observed.builtinRules.push({ table, chain, rule, target: m[1]! });
    }
  }
  return observed;
}

export const emptyObserved = (): Observed => ({ chains: new Map(), jumps: new Set(), builtinRules: [] });

export interface FamilyPlan {
  family: Family;
  /** Restore input ('' when nothing needs to change). */
  text: string;
}

export interface Plan {
  families: FamilyPlan[];
  /** Rules netproxy holds after the plan is applied (both families). */
  rules: number;
  /** Chains written (declared) by this plan, for logs and tests. */
  chainsWritten: number;
  commit(): void;
}

/**
 * What was written for one Service, kept small: at 10 000 Services × 10 endpoints the rendered rules
 * would keep ~75 MB alive only to be compared. Its own chains are one flat string of
 * "<chain> <digest of its rules>" lines; its rules in the shared chains are kept as text (a partial
 * sync deletes them one by one), flattened so no string keeps the pieces it was built from.
 */
interface AppliedService {
  chains: string;
  dispatch: DispatchRule[];
  /** Rules in its own chains plus its dispatch rules. */
  rules: number;
}

type Applied = Map<string, AppliedService>;

/** A copy of `text` as one flat string (rendered rules are concatenations of many small pieces). */
const flat = (text: string): string => Buffer.from(text, 'latin1').toString('latin1');

function digestOf(rules: string[]): string {
  const hash = createHash('sha256');
  for (const r of rules) hash.update(r).update('\n');
  return hash.digest('base64').slice(0, 22); // 132 bits
}

function compact(rendered: ServiceRules): AppliedService {
  let chains = '';
  let rules = rendered.dispatch.length;
  for (const [c, list] of rendered.chains) {
    chains += `${c} ${digestOf(list)}\n`;
    rules += list.length;
  }
  return { chains: flat(chains), dispatch: rendered.dispatch.map((d) => ({ table: d.table, chain: flat(d.chain), rule: flat(d.rule) })), rules };
}

function chainNames(a: AppliedService | undefined): string[] {
  if (!a) return [];
  return a.chains.split('\n').filter(Boolean).map((line) => line.slice(0, line.indexOf(' ')));
}

function chainDigest(a: AppliedService | undefined, chain: string): string | undefined {
  if (!a) return undefined;
  // With a newline in front, the first line matches like every other one.
  const line = `\n${a.chains}`.indexOf(`\n${chain} `);
  if (line < 0) return undefined;
  const from = line + chain.length + 1;
  return a.chains.slice(from, a.chains.indexOf('\n', from));
}

function countRules(applied: Applied): number {
  let n = 0;
  for (const s of applied.values()) n += s.rules;
  return n;
}

const sameChain = (old: AppliedService | undefined, cur: AppliedService, chain: string) => {
  const digest = chainDigest(old, chain);
  return digest !== undefined && digest === chainDigest(cur, chain);
};

export function createIptablesPlanner(ctx: RenderContext) {
  const applied = new Map<Family, Applied>([[4, new Map()], [6, new Map()]]);
  const baseRuleCount = (f: Family) => {
    const base = renderBase(f, ctx);
    let n = nodePortsTail(f, ctx).length;
    for (const t of [base.filter, base.nat]) for (const r of t.values()) n += r.length;
    return n;
  };

  function render(state: DesiredState, key: string, family: Family): ServiceRules | undefined {
    const ports = state.services.get(key)?.filter((p) => p.family === family);
    if (!ports || ports.length === 0) return undefined;
    const r = renderService(ports, family, ctx);
    return r.chains.size || r.dispatch.length ? r : undefined;
  }

  function planFull(state: DesiredState, family: Family, observed: Observed): { text: string; next: Applied; chains: number } {
    const next = new Map<string, ServiceRules>();
    for (const key of state.services.keys()) {
      const r = render(state, key, family);
      if (r) next.set(key, r);
    }
    const base = renderBase(family, ctx);
    const out: string[] = [];
    const wanted = new Set<string>();
    for (const s of next.values()) for (const c of s.chains.keys()) wanted.add(c);

    const jumps = jumpRules().filter((j) => !observed.jumps.has(`${j.table} ${j.from} ${j.to}`)).reverse();
    out.push('*mangle', `:${KUBE_PROXY_CANARY} - [0:0]`, 'COMMIT');

    out.push('*filter');
    for (const c of STATIC_CHAINS.filter) out.push(`:${c} - [0:0]`);
    out.push(`:${KUBE_PROXY_CANARY} - [0:0]`);
    for (const j of jumps) if (j.table === 'filter') out.push(`-I ${j.from} 1 ${j.rule}`);
    for (const [c, rules] of base.filter) for (const r of rules) out.push(`-A ${c} ${r}`);
    for (const s of next.values()) for (const d of s.dispatch) if (d.table === 'filter') out.push(`-A ${d.chain} ${d.rule}`);
    out.push('COMMIT');

    out.push('*nat');
    for (const c of STATIC_CHAINS.nat) out.push(`:${c} - [0:0]`);
    out.push(`:${KUBE_PROXY_CANARY} - [0:0]`);
    for (const c of wanted) out.push(`:${c} - [0:0]`);
    const stale = new Set<string>();
    for (const c of observed.chains.get('nat') ?? []) if (isServiceChain(c) && !wanted.has(c)) stale.add(c);
    for (const s of applied.get(family)!.values()) for (const c of chainNames(s)) if (!wanted.has(c)) stale.add(c);
    for (const c of stale) out.push(`:${c} - [0:0]`);
    for (const j of jumps) if (j.table === 'nat') out.push(`-I ${j.from} 1 ${j.rule}`);
    for (const [c, rules] of base.nat) for (const r of rules) out.push(`-A ${c} ${r}`);
    for (const s of next.values()) for (const d of s.dispatch) if (d.table === 'nat') out.push(`-A ${d.chain} ${d.rule}`);
    for (const s of next.values()) for (const [c, rules] of s.chains) for (const r of rules) out.push(`-A ${c} ${r}`);
    for (const r of nodePortsTail(family, ctx)) out.push(`-A ${KUBE_SERVICES} ${r}`);
    for (const c of stale) out.push(`-X ${c}`);
    out.push('COMMIT');
    const written: Applied = new Map();
    for (const [key, r] of next) written.set(key, compact(r));
    return { text: out.join('\n') + '\n', next: written, chains: STATIC_CHAINS.filter.length + STATIC_CHAINS.nat.length + wanted.size + stale.size };
  }

  function planPartial(state: DesiredState, changed: Iterable<string>, family: Family): { text: string; next: Applied; chains: number } {
    const before = applied.get(family)!;
    const next: Applied = new Map(before);
    const filter: string[] = [];
    const declare: string[] = [];
    const natDelete: string[] = [];
    const natInsert: string[] = [];
    const natRules: string[] = [];
    const remove: string[] = [];
    for (const key of changed) {
      const old = before.get(key);
      const cur = render(state, key, family);
      const written = cur ? compact(cur) : undefined;
      if (written) next.set(key, written);
      else next.delete(key);
      if (!old && !cur) continue;
      const oldDispatch = new Set((old?.dispatch ?? []).map((d) => `${d.table} ${d.chain} ${d.rule}`));
      const newDispatch = new Set((cur?.dispatch ?? []).map((d) => `${d.table} ${d.chain} ${d.rule}`));
      for (const d of old?.dispatch ?? []) {
        if (newDispatch.has(`${d.table} ${d.chain} ${d.rule}`)) continue;
        (d.table === 'filter' ? filter : natDelete).push(`-D ${d.chain} ${d.rule}`);
      }
      for (const d of cur?.dispatch ?? []) {
        if (oldDispatch.has(`${d.table} ${d.chain} ${d.rule}`)) continue;
        // Position 1 keeps the NodePort hand-off the last rule of nat KUBE-SERVICES.
        (d.table === 'filter' ? filter : natInsert).push(`-I ${d.chain} 1 ${d.rule}`);
      }
      for (const [c, rules] of cur?.chains ?? []) {
        if (sameChain(old, written!, c)) continue;
        declare.push(`:${c} - [0:0]`);
        for (const r of rules) natRules.push(`-A ${c} ${r}`);
      }
      for (const c of chainNames(old)) {
        if (cur?.chains.has(c)) continue;
        declare.push(`:${c} - [0:0]`);
        remove.push(`-X ${c}`);
      }
    }
    const out: string[] = [];
    const guard = (lines: string[]) => [`-A ${KUBE_PROXY_CANARY} -j RETURN`, `-D ${KUBE_PROXY_CANARY} -j RETURN`, ...lines];
    if (filter.length) out.push('*filter', ...guard(filter), 'COMMIT');
    const nat = [...declare, ...natDelete, ...natInsert, ...natRules, ...remove];
    if (nat.length) out.push('*nat', ...declare, ...guard([...natDelete, ...natInsert, ...natRules, ...remove]), 'COMMIT');
    return { text: out.length ? out.join('\n') + '\n' : '', next, chains: declare.length };
  }

  return {
    /**
     * Plans one sync. `observed` (what iptables-save shows, per family) is needed for full syncs:
     * it tells which jumps already exist and which stale service chains to delete.
     */
    plan(request: { state: DesiredState; changed: Iterable<string>; full: boolean }, families: Family[], observed?: Map<Family, Observed>): Plan {
      const results = families.map((family) => {
        const r = request.full ? planFull(request.state, family, observed?.get(family) ?? emptyObserved()) : planPartial(request.state, request.changed, family);
        return { family, ...r };
      });
      const nextApplied = new Map(applied);
      for (const r of results) nextApplied.set(r.family, r.next);
      let rules = 0;
      for (const f of families) rules += baseRuleCount(f) + countRules(nextApplied.get(f)!);
      return {
        families: results.map((r) => ({ family: r.family, text: r.text })),
        rules,
        chainsWritten: results.reduce((n, r) => n + r.chains, 0),
        commit: () => {
          for (const r of results) applied.set(r.family, r.next);
        },
      };
    },
    /** Forgets what was applied (after a failure: the next sync is full and reads the kernel). */
    reset() {
      applied.set(4, new Map());
      applied.set(6, new Map());
    },
  };
}

export type { IptTable };
