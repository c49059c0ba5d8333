/**
 * The nftables backend: remembers the port states it last applied (re-rendering a Service's old
 * fragment when it changes) and turns each sync into one `nft -f` transaction. An incremental sync
 * only adds and deletes the map elements (and the few chains) of the Services that changed, in
 * batched `add/delete element` statements; a full sync re-declares everything it owns and removes
 * the rest; an empty sync runs no `nft` at all.
 */
import { randomInt } from 'node:crypto';
import type { ProxyBackend, BackendContext, SyncRequest } from '../backend';
import type { ServicePortState } from '../desiredstate';
import { run } from '../exec';
import { FAMILIES, PROTOS, TABLE, endpointMap, renderBase, renderFragment, splitName, type NftChain, type NftFragment, type RenderContext } from './render';

/**
 * The Services that want one map or set element: several may claim the same element (a shared
 * endpoint's hairpin entry, two Services on one external IP and port); the first claim's value is
 * the one in the kernel. A claim is `owner\0value`; one claim is stored bare, several as a list.
 * Set elements (no value, e.g. the many hairpin pairs) only keep a count of their claimants.
 */
type Claims = string | string[] | number;

interface Applied {
  /** The port states each Service was rendered from (shared with the desired state, not copies). */
  ports: Map<string, ServicePortState[]>;
  /** `family map` → element key → claims. */
  elements: Map<string, Map<string, Claims>>;
  /** shared chain → rules and reference count. */
  shared: Map<string, { rules: string[]; refs: number }>;
  /** Chains and dynamic maps of single Services (affinity). */
  ownChains: Set<string>;
  ownMaps: Set<string>;
  /** Rules plus elements, kept up to date as elements come and go. */
  count: number;
}

export const STATIC_MAPS = ['service-ips', 'service-nodeports', 'no-endpoint-services', 'no-endpoint-nodeports', 'firewall-ips', ...PROTOS.flatMap((p) => [endpointMap(false, p), endpointMap(true, p)])];
export const STATIC_SETS = ['hairpin', 'nodeport-ips', 'generation'];
const BASE_CHAINS = ['nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-prerouting', 'filter-input', 'filter-forward', 'filter-output', 'services', 'endpoints-check', 'reject-chain', 'firewall-check'];
/** Elements per `add element` statement: big statements parse much faster than one per line. */
const BATCH = 2000;

export interface NftTransaction {
  /** The whole text ('' when there is nothing to do). For a full sync it is built on first use. */
  readonly text: string;
  /**
   * The text in pieces of about 64 KiB, generated as they are read: a full sync writes these to
   * `nft -f -` so that neither the 13 MB text of 10 000 Services nor the 320 000 element strings
   * it is made of are ever held at once. One pass only (unless `text` was read first).
   */
  chunks(): Iterable<string>;
  /** Number of rules and elements in the kernel after it is applied (for a full sync: once generated). */
  readonly count: number;
  /** Whether the transaction is a full one (never empty). */
  readonly full: boolean;
}

const CHUNK = 1 << 16;

/** Joins lines into chunks of about CHUNK characters, each ending with a newline. */
function* chunked(lines: Iterable<string>): Generator<string> {
  let buf: string[] = [];
  let size = 0;
  for (const line of lines) {
    buf.push(line);
    size += line.length + 1;
    if (size >= CHUNK) {
      yield buf.join('\n') + '\n';
      buf = [];
      size = 0;
    }
  }
  if (buf.length) yield buf.join('\n') + '\n';
}

function emptyApplied(): Applied {
  return { ports: new Map(), elements: new Map(), shared: new Map(), ownChains: new Set(), ownMaps: new Set(), count: 0 };
}

const claimValue = (c: string) => c.slice(c.indexOf('\0') + 1);
const effective = (claims: Claims | undefined): string | undefined =>
  claims === undefined ? undefined : typeof claims === 'number' ? '' : claimValue(typeof claims === 'string' ? claims : claims[0]!);

/** Adds a claim; returns true when the element is new. */
function claim(index: Map<string, Claims>, key: string, owner: string, value: string): boolean {
  const had = index.get(key);
  if (value === '' && (had === undefined || typeof had === 'number')) {
    index.set(key, (had ?? 0) + 1);
    return had === undefined;
  }
  const c = `${owner}\0${value}`;
  if (had === undefined) index.set(key, c);
  else if (typeof had === 'number') throw new Error(`element ${key} claimed both as a set and a map element`);
  else if (typeof had === 'string') index.set(key, [had, c]);
  else had.push(c);
  return had === undefined;
}

/** Replaces an owner's value in place (set elements: nothing to do). */
function reclaim(index: Map<string, Claims>, key: string, owner: string, value: string): void {
  const had = index.get(key);
  if (had === undefined || typeof had === 'number') return;
  const c = `${owner}\0${value}`;
  if (typeof had === 'string') index.set(key, c);
  else {
    const i = had.findIndex((x) => claimOwner(x) === owner);
    if (i >= 0) had[i] = c;
  }
}

function unclaim(index: Map<string, Claims>, key: string, owner: string): void {
  const had = index.get(key);
  if (had === undefined) return;
  if (typeof had === 'number') {
    if (had <= 1) index.delete(key);
    else index.set(key, had - 1);
    return;
  }
  const mine = (c: string) => c.startsWith(`${owner}\0`);
  if (typeof had === 'string') {
    if (mine(had)) index.delete(key);
    return;
  }
  const i = had.findIndex(mine);
  if (i >= 0) had.splice(i, 1);
  if (had.length === 1) index.set(key, had[0]!);
}

const claimOwner = (c: string) => c.slice(0, c.indexOf('\0'));
/** The Service whose value is in the kernel for a map element. */
function ownerOf(claims: Claims | undefined): string | undefined {
  if (claims === undefined || typeof claims === 'number') return undefined;
  return claimOwner(typeof claims === 'string' ? claims : claims[0]!);
}

/**
 * Endpoint map elements (`frontend . i`) are not indexed: they belong to whichever Service owns
 * their frontend element (`service-ips` / `service-nodeports`). This keeps the index to one entry
 * per frontend instead of one per endpoint and frontend.
 */
const FRONTEND_MAPS = new Map<string, string>(
  FAMILIES.flatMap((f) => PROTOS.flatMap((p) => [[`${f} ${endpointMap(false, p)}`, `${f} service-ips`], [`${f} ${endpointMap(true, p)}`, `${f} service-nodeports`]] as [string, string][])),
);
function frontendOf(map: string, key: string): { map: string; key: string } | undefined {
  const frontendMap = FRONTEND_MAPS.get(map);
  return frontendMap === undefined ? undefined : { map: frontendMap, key: key.slice(0, key.lastIndexOf(' . ')) };
}

/** The endpoint elements of one fragment, by frontend (`family map\0key`) → element key → value. */
function endpointElements(frag: NftFragment | undefined): Map<string, Map<string, { map: string; value: string }>> {
  const out = new Map<string, Map<string, { map: string; value: string }>>();
  for (const e of frag?.elements ?? []) {
    const fe = frontendOf(e.map, e.key);
    if (!fe) continue;
    const id = `${fe.map}\0${fe.key}`;
    let m = out.get(id);
    if (!m) out.set(id, (m = new Map()));
    m.set(e.key, { map: e.map, value: e.value });
  }
  return out;
}

function mapIndex(a: Applied, map: string): Map<string, Claims> {
  let m = a.elements.get(map);
  if (!m) a.elements.set(map, (m = new Map()));
  return m;
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
  // Random start: a table written by another process (or an earlier run) never matches.
  let generation = randomInt(1, 0x7fffffff);
  let appliedGeneration = 0;

  const t = (qualified: string) => {
    const [fam, name] = splitName(qualified);
    return `${fam} ${TABLE} ${name}`;
  };
  const chainText = (name: string, rules: string[], out: string[]) => {
    out.push(`add chain ${t(name)}`, `flush chain ${t(name)}`);
    for (const r of rules) out.push(`add rule ${t(name)} ${r}`);
  };
  const item = (key: string, value: string) => (value === '' ? key : `${key} : ${value}`);

  /**
   * The lines of a full transaction, generated lazily into `next`. Everything it needs from the
   * planner (first or not, the previous state's chain and map names) is captured by the caller, so
   * a transaction generated after commit() (tests read text after committing) is the same one.
   * Each Service's maps and chains are written just before its elements are queued, so a verdict
   * element is never written before the chain it names.
   */
  function* fullLines(request: SyncRequest, next: Applied, ctxFirst: boolean, previous: { chains: string[]; maps: string[] }, gen: number): Generator<string> {
    for (const f of FAMILIES) {
      const base = renderBase(f, ctx);
      const split = base.indexOf('\nadd ');
      if (ctxFirst) yield* [`add table ${f} ${TABLE}`, `delete table ${f} ${TABLE}`];
      yield base.slice(0, split + 1).trimEnd();
      for (const c of BASE_CHAINS) yield `flush chain ${f} ${TABLE} ${c}`;
      for (const m of STATIC_MAPS) yield `flush map ${f} ${TABLE} ${m}`;
      for (const m of STATIC_SETS) yield `flush set ${f} ${TABLE} ${m}`;
      yield base.slice(split + 1).trimEnd();
      yield `add element ${f} ${TABLE} generation { ${gen} }`;
    }
    const adds = new Map<string, string[]>();
    const queue = function* (map: string, value: string): Generator<string> {
      let l = adds.get(map);
      if (!l) adds.set(map, (l = []));
      l.push(value);
      if (l.length >= BATCH) {
        const [fam, name] = splitName(map);
        yield `add element ${fam} ${TABLE} ${name} { ${l.join(', ')} }`;
        adds.set(map, []);
      }
    };
    const lines: string[] = [];
    for (const [key, ports] of request.state.services) {
      const frag = renderFragment(ports, ctx);
      next.ports.set(key, ports);
      for (const m of frag.dynamicMaps) {
        if (next.ownMaps.has(m.name)) continue;
        next.ownMaps.add(m.name);
        yield `add map ${t(m.name)} { ${m.decl} }`;
        yield `flush map ${t(m.name)}`;
      }
      for (const c of frag.sharedChains) {
        const sh = next.shared.get(c.name);
        if (sh) sh.refs++;
        else {
          next.shared.set(c.name, { rules: c.rules, refs: 1 });
          chainText(c.name, c.rules, lines);
          next.count += c.rules.length;
        }
      }
      for (const c of frag.chains) {
        chainText(c.name, c.rules, lines);
        next.ownChains.add(c.name);
        next.count += c.rules.length;
      }
      if (lines.length) {
        yield* lines;
        lines.length = 0;
      }
      for (const e of frag.elements) {
        const fe = frontendOf(e.map, e.key);
        if (fe) {
          // Render order puts a frontend before its endpoints: it is claimed already.
          if (ownerOf(next.elements.get(fe.map)?.get(fe.key)) !== key) continue;
        } else if (!claim(mapIndex(next, e.map), e.key, key, e.value)) continue;
        next.count++;
        yield* queue(e.map, item(e.key, e.value));
      }
    }
    const rest: string[] = [];
    elementStatements('add', adds, rest);
    yield* rest;
    if (!ctxFirst) {
      // What the previous state had and this one does not (its elements went with the flushes).
      const stale = previous.chains.filter((n) => !next.shared.has(n) && !next.ownChains.has(n));
      for (const name of stale) yield `flush chain ${t(name)}`;
      for (const name of stale) yield `delete chain ${t(name)}`;
      for (const name of previous.maps) if (!next.ownMaps.has(name)) yield `delete map ${t(name)}`;
    }
  }

  function fullTransaction(request: SyncRequest, gen: number): { transaction: NftTransaction; next: Applied } {
    const next = emptyApplied();
    const ctxFirst = first;
    const previous = { chains: [...applied.shared.keys(), ...applied.ownChains], maps: [...applied.ownMaps] };
    // A full plan never reads the previous element index again (commit replaces it, a failure makes
    // the next plan rebuild from scratch): drop it now rather than hold both states at once.
    applied.elements = new Map();
    applied.ports = new Map();
    let cached: string | undefined;
    let started = false;
    let done = false;
    const transaction: NftTransaction = {
      full: true,
      chunks() {
        if (cached !== undefined) return [cached];
        if (started) throw new Error('nftables full transaction already generated');
        started = true;
        return (function* () {
          yield* chunked(fullLines(request, next, ctxFirst, previous, gen));
          done = true;
        })();
      },
      get text() {
        if (cached === undefined) cached = [...transaction.chunks()].join('');
        return cached;
      },
      get count() {
        if (!done) void transaction.text;
        return next.count;
      },
    };
    return { transaction, next };
  }

  function planIncremental(request: SyncRequest): string {
    const a = applied;
    const newChains = new Map<string, string[]>();
    const removedChains = new Set<string>();
    const newMaps: { name: string; decl: string }[] = [];
    const flushMaps: string[] = [];
    const removedMaps: string[] = [];
    // Effective value of every touched element before this plan, captured on first touch.
    const before = new Map<string, Map<string, string | undefined>>();
    // Owner of every touched frontend before this plan (its endpoint elements follow the owner).
    const ownerBefore = new Map<string, { map: string; key: string; owner: string | undefined }>();
    const oldFrags = new Map<string, NftFragment | undefined>();
    const newFrags = new Map<string, NftFragment | undefined>();
    const touch = (map: string, key: string) => {
      let m = before.get(map);
      if (!m) before.set(map, (m = new Map()));
      if (!m.has(key)) {
        const claims = a.elements.get(map)?.get(key);
        m.set(key, effective(claims));
        const id = `${map}\0${key}`;
        if (!ownerBefore.has(id)) ownerBefore.set(id, { map, key, owner: ownerOf(claims) });
      }
    };
    for (const key of request.changed) {
      const oldPorts = a.ports.get(key);
      const ports: ServicePortState[] | undefined = request.state.services.get(key);
      const oldFrag = oldPorts ? renderFragment(oldPorts, ctx) : undefined;
      const newFrag = ports ? renderFragment(ports, ctx) : undefined;
      oldFrags.set(key, oldFrag);
      newFrags.set(key, newFrag);
      // A claim kept across the change keeps its place (the owner of a shared element stays so).
      const oldIds = new Set<string>();
      for (const e of oldFrag?.elements ?? []) if (!frontendOf(e.map, e.key)) oldIds.add(`${e.map}\0${e.key}`);
      const newIds = new Set<string>();
      for (const e of newFrag?.elements ?? []) {
        if (frontendOf(e.map, e.key)) continue;
        const id = `${e.map}\0${e.key}`;
        newIds.add(id);
        touch(e.map, e.key);
        if (oldIds.has(id)) reclaim(mapIndex(a, e.map), e.key, key, e.value);
        else claim(mapIndex(a, e.map), e.key, key, e.value);
      }
      for (const e of oldFrag?.elements ?? []) {
        if (frontendOf(e.map, e.key) || newIds.has(`${e.map}\0${e.key}`)) continue;
        touch(e.map, e.key);
        unclaim(mapIndex(a, e.map), e.key, key);
      }
      for (const c of oldFrag?.sharedChains ?? []) a.shared.get(c.name)!.refs--;
      for (const c of newFrag?.sharedChains ?? []) {
        const s = a.shared.get(c.name);
        if (s) s.refs++;
        else {
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
        a.ownChains.add(c.name);
        oldChains.delete(c.name);
      }
      for (const [name, rules] of oldChains) {
        removedChains.add(name);
        a.ownChains.delete(name);
        a.count -= rules.length;
      }
      const oldMaps = new Set((oldFrag?.dynamicMaps ?? []).map((m) => m.name));
      for (const m of newFrag?.dynamicMaps ?? []) {
        if (!oldMaps.has(m.name)) newMaps.push(m);
        else if (endpointRemoved(oldFrag!, newFrag!)) flushMaps.push(m.name);
        a.ownMaps.add(m.name);
        oldMaps.delete(m.name);
      }
      for (const m of oldMaps) {
        removedMaps.push(m);
        a.ownMaps.delete(m);
      }
      if (ports) a.ports.set(key, ports);
      else a.ports.delete(key);
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
    for (const [map, keys] of before) {
      const index = a.elements.get(map);
      for (const [key, was] of keys) {
        const now = effective(index?.get(key));
        if (was === now) continue;
        if (was !== undefined) push(dels, map, key);
        if (now !== undefined) push(adds, map, item(key, now));
        a.count += (now !== undefined ? 1 : 0) - (was !== undefined ? 1 : 0);
      }
    }
    // Endpoint elements of every touched frontend: those of its owner before, those of its owner now.
    const unchangedFrags = new Map<string, NftFragment | undefined>();
    const fragOf = (owner: string | undefined, when: 'old' | 'new') => {
      if (owner === undefined) return undefined;
      if (request.changed.has(owner)) return (when === 'old' ? oldFrags : newFrags).get(owner);
      if (!unchangedFrags.has(owner)) unchangedFrags.set(owner, a.ports.has(owner) ? renderFragment(a.ports.get(owner)!, ctx) : undefined);
      return unchangedFrags.get(owner);
    };
    const epCache = new Map<NftFragment, ReturnType<typeof endpointElements>>();
    const epsOf = (frag: NftFragment | undefined, id: string) => {
      if (!frag) return undefined;
      let m = epCache.get(frag);
      if (!m) epCache.set(frag, (m = endpointElements(frag)));
      return m.get(id);
    };
    for (const [id, fe] of ownerBefore) {
      const was = epsOf(fragOf(fe.owner, 'old'), id);
      const now = epsOf(fragOf(ownerOf(a.elements.get(fe.map)?.get(fe.key)), 'new'), id);
      for (const [key, e] of was ?? []) {
        const n = now?.get(key);
        if (n && n.value === e.value && n.map === e.map) continue;
        push(dels, e.map, key);
        a.count--;
      }
      for (const [key, e] of now ?? []) {
        const w = was?.get(key);
        if (w && w.value === e.value && w.map === e.map) continue;
        push(adds, e.map, item(key, e.value));
        a.count++;
      }
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
    let transaction: NftTransaction;
    let next = applied;
    if (full) {
      generation = generation >= 0x7fffffff ? 1 : generation + 1;
      ({ transaction, next } = fullTransaction(request, generation));
    } else {
      const text = planIncremental(request);
      const count = applied.count;
      transaction = { full: false, text, count, chunks: () => (text ? [text] : []) };
    }
    const gen = full ? generation : appliedGeneration;
    uncommitted = true;
    return {
      transaction,
      commit: () => {
        applied = next;
        appliedGeneration = gen;
        first = false;
        uncommitted = false;
      },
      reset: () => {
        first = true;
        uncommitted = false;
      },
    };
  }

  return {
    plan,
    isFirst: () => first,
    /** The generation number the last committed full sync wrote (0 before the first). */
    generation: () => appliedGeneration,
    /** Rules plus elements in the kernel after the last committed plan. */
    count: () => applied.count,
    /** The kernel no longer holds what was applied: the next plan rebuilds the tables from scratch. */
    invalidate: () => {
      first = true;
    },
  };
}

function endpointRemoved(oldFrag: NftFragment, newFrag: NftFragment): boolean {
  const eps = (f: NftFragment) => new Set(f.chains.filter((c) => c.name.includes('-ep-')).map((c) => c.rules[c.rules.length - 1]));
  const after = eps(newFrag);
  for (const r of eps(oldFrag)) if (!after.has(r)) return true;
  return false;
}

export function createNftablesBackend(ctx: BackendContext): ProxyBackend & { lastTransaction(): string } {
  const planner = createNftPlanner({ config: ctx.config, nodeIPs: ctx.nodeIPs });
  let last = '';

  /**
   * The consistency check of a periodic resync: both tables there, with this process's last
   * generation. One `nft list set` per family (a few ms at any size); not one `nft -f` with both,
   * as nft 1.0.6 then looks the first one up in the second one's family only.
   */
  async function drift(): Promise<string | undefined> {
    const want = planner.generation();
    for (const f of FAMILIES) {
      const res = await ctx.exec(['nft', 'list', 'set', f, TABLE, 'generation']);
      if (res.code !== 0) return `${f} table ${TABLE} or its generation set is missing: ${res.stderr.trim().split('\n')[0] || `nft exited ${res.code}`}`;
      const found = /elements = \{ ([^}]*) \}/.exec(res.stdout)?.[1]?.trim();
      if (found === undefined || Number(found) !== want) {
        return `${f} table ${TABLE}: generation ${want} expected, found ${found ?? 'none'}: the table was flushed or rewritten by someone else`;
      }
    }
    return undefined;
  }

  return {
    mode: 'nftables',
    async sync(request) {
      if (request.verify && !request.full && !planner.isFirst()) {
        const why = await drift();
        if (why) {
          planner.invalidate();
          return { rules: planner.count(), drift: why };
        }
      }
      const { transaction, commit, reset } = planner.plan(request);
      if (!transaction.full) {
        last = transaction.text;
        if (transaction.text === '') {
          commit();
          return { rules: transaction.count };
        }
      }
      try {
        if (transaction.full) {
          // Streamed; the first MiB is kept for debugging, not megabytes of a full sync at scale.
          last = '';
          const chunks = transaction.chunks();
          await run(ctx.exec, ['nft', '-f', '-'], {
            chunks: (function* () {
              for (const c of chunks) {
                if (last.length < 1 << 20) last += c.slice(0, (1 << 20) - last.length);
                yield c;
              }
            })(),
          });
          if (last.length >= 1 << 20) last += '\n# … truncated\n';
        } else await run(ctx.exec, ['nft', '-f', '-'], transaction.text);
      } catch (err) {
        reset();
        throw err;
      }
      commit();
      return { rules: transaction.count, rewrote: transaction.full };
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
