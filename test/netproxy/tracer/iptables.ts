/**
 * A packet-flow tracer for iptables rulesets: an interpreter of `iptables-restore --noflush` input
 * (the subset kube-proxy's structure uses) that keeps the tables as the kernel would after each
 * transaction — refusing what the real tool refuses (rules for unknown chains or targets, deleting
 * a rule that is not there, deleting a chain still referenced) — and walks a NEW connection
 * through nat PREROUTING/OUTPUT, filter INPUT/FORWARD/OUTPUT and nat POSTROUTING. Random choices
 * (`-m statistic`) fork the walk and carry their probability, `-m recent` lists give affinity,
 * the 0x4000 mark plus MASQUERADE give masquerading.
 */
import { isIP } from 'node:net';
import { cidrContains } from '../../../netproxy/ipnet';
import { hostPort, type Outcome, type Packet, type Tracer } from './packet';

type Chains = Map<string, string[][]>;
export type IptFamilyTables = Map<string, Chains>;

const BUILTIN: Record<string, string[]> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
};
const TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'MARK', 'MASQUERADE', 'DNAT']);

export function tokenize(spec: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(spec); m; m = re.exec(spec)) out.push(m[1] ?? m[2]!);
  return out;
}

function newTable(name: string): Chains {
  return new Map((BUILTIN[name] ?? []).map((c) => [c, []]));
}

function targetOf(rule: string[]): string | undefined {
  const i = rule.indexOf('-j');
  return i >= 0 ? rule[i + 1] : undefined;
}

/** Applies restore input to per-table state, with --noflush semantics; throws like the tool would. */
export function applyRestore(tables: IptFamilyTables, text: string): void {
  let table: string | undefined;
  let work: Chains | undefined;
  const lines = text.split('\n');
  for (const [n, raw] of lines.entries()) {
    const line = raw.trim();
    const fail = (why: string): never => {
      throw new Error(`restore line ${n + 1} (${line}): ${why}`);
    };
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      table = line.slice(1);
      const cur = tables.get(table) ?? newTable(table);
      work = new Map([...cur].map(([k, v]) => [k, v.map((r) => [...r])]));
      continue;
    }
    if (!work || !table) fail('outside a table');
    const w = work!;
    if (line === 'COMMIT') {
      for (const [c, rules] of w) {
        for (const r of rules) {
          const t = targetOf(r);
          if (t && !TARGETS.has(t) && !w.has(t)) fail(`chain ${c} jumps to unknown ${t}`);
        }
      }
      tables.set(table!, w);
      work = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (!(BUILTIN[table!] ?? []).includes(name)) w.set(name, []);
      continue;
    }
    const tokens = tokenize(line);
    const [op, chain] = tokens;
    if (!chain) fail('no chain');
    const rules = w.get(chain!);
    if (op === '-X') {
      if (!rules) fail(`no chain ${chain}`);
      for (const [c, rs] of w) if (rs.some((r) => targetOf(r) === chain)) fail(`chain ${chain} still referenced by ${c}`);
      w.delete(chain!);
      continue;
    }
    if (!rules) fail(`no chain ${chain}`);
    if (op === '-F') {
      w.set(chain!, []);
      continue;
    }
    let spec = tokens.slice(2);
    if (op === '-A') rules!.push(spec);
    else if (op === '-I') {
      let pos = 1;
      if (/^\d+$/.test(spec[0] ?? '')) {
        pos = Number(spec[0]);
        spec = spec.slice(1);
      }
      rules!.splice(pos - 1, 0, spec);
    } else if (op === '-D') {
      const key = spec.join('\u0000');
      const i = rules!.findIndex((r) => r.join('\u0000') === key);
      if (i < 0) fail('no such rule to delete');
      rules!.splice(i, 1);
    } else fail(`unsupported operation ${op}`);
    const t = targetOf(spec);
    if (t && !TARGETS.has(t) && !w.has(t)) fail(`unknown target ${t}`);
  }
  if (work) throw new Error('restore input ends without COMMIT');
}

interface State {
  pkt: Packet;
  dst: string;
  port: number;
  mark: number;
  dnat: boolean;
  masq: boolean;
  weight: number;
}

type Kind = 'continue' | 'accept' | 'drop' | 'reject';
interface Result {
  kind: Kind;
  state: State;
}

export interface WeightedOutcome extends Outcome {
  /** Probability of this outcome for a new connection. */
  weight: number;
}

export interface IptablesTracer extends Tracer {
  /** Like trace, with the probability of each outcome. */
  traceWeighted(pkt: Packet): WeightedOutcome[];
  tables(family: 4 | 6): IptFamilyTables;
}

/** Builds the tracer from restore inputs applied in order, per family. */
export function createIptablesTracer(inputs: { family: 4 | 6; text: string }[], options: { nodeIPs: string[] }): IptablesTracer {
  const byFamily = new Map<4 | 6, IptFamilyTables>([[4, new Map()], [6, new Map()]]);
  for (const i of inputs) applyRestore(byFamily.get(i.family)!, i.text);
  const recent = new Map<string, Set<string>>();
  const isLocal = (ip: string) => options.nodeIPs.includes(ip) || ip === '::1' || (isIP(ip) === 4 && cidrContains('127.0.0.0/8', ip));
  const inNet = (spec: string, ip: string) => (spec.includes('/') ? cidrContains(spec, ip) : spec === ip);

  /** Evaluates one rule's matches; returns the states for which it matches and those for which it does not. */
  function match(rule: string[], s: State): { hit: State[]; miss: State[] } {
    let hits: State[] = [s];
    const misses: State[] = [];
    let negate = false;
    let recentName = '';
    const test = (ok: boolean) => {
      const pass = negate ? !ok : ok;
      negate = false;
      if (!pass) {
        misses.push(...hits);
        hits = [];
      }
    };
    for (let i = 0; i < rule.length && hits.length; i++) {
      const tok = rule[i]!;
      const arg = () => rule[++i]!;
      switch (tok) {
        case '!':
          negate = true;
          break;
        case '-m':
          i++;
          break;
        case '--comment':
          i++;
          break;
        case '-p':
          test(arg() === s.pkt.proto);
          break;
        case '-d':
          test(inNet(arg(), s.dst));
          break;
        case '-s':
          test(inNet(arg(), s.pkt.src));
          break;
        case '--dport':
          test(Number(arg()) === s.port);
          break;
        case '--mode':
          if (arg() !== 'random') throw new Error('tracer: statistic mode must be random');
          break;
        case '--probability': {
          const p = Number(arg());
          const next: State[] = [];
          for (const h of hits) {
            if (p > 0) next.push({ ...h, weight: h.weight * p });
            if (p < 1) misses.push({ ...h, weight: h.weight * (1 - p) });
          }
          hits = next;
          break;
        }
        case '--name':
          recentName = arg();
          break;
        case '--set':
          for (const h of hits) {
            let set = recent.get(recentName);
            if (!set) recent.set(recentName, (set = new Set()));
            set.add(h.pkt.src);
          }
          break;
        case '--rcheck':
          test(recent.get(recentName)?.has(s.pkt.src) === true);
          break;
        case '--seconds':
          i++;
          break;
        case '--reap':
          break;
        case '--mark': {
          const [v, m] = arg().split('/');
          const mask = m === undefined ? 0xffffffff : Number(m);
          test(((s.mark & mask) >>> 0) === (Number(v) >>> 0));
          break;
        }
        case '--dst-type':
          if (arg() !== 'LOCAL') throw new Error('tracer: only addrtype LOCAL');
          test(isLocal(s.dst));
          break;
        case '--src-type':
          if (arg() !== 'LOCAL') throw new Error('tracer: only addrtype LOCAL');
          test(isLocal(s.pkt.src));
          break;
        case '--ctstate':
          test(arg().split(',').includes('NEW'));
          break;
        case '-j':
          i = rule.length; // targets are handled by the caller
          break;
        default:
          throw new Error(`tracer: unsupported match ${tok} in: ${rule.join(' ')}`);
      }
    }
    return { hit: hits, miss: misses };
  }

  function runChain(chains: Chains, name: string, s: State, depth: number): Result[] {
    if (depth > 30) throw new Error('chain loop');
    const rules = chains.get(name);
    if (!rules) throw new Error(`no chain ${name}`);
    const out: Result[] = [];
    let pending: State[] = [s];
    for (let i = 0; i < rules.length && pending.length; i++) {
      const next: State[] = [];
      for (const st of pending) {
        const { hit, miss } = match(rules[i]!, st);
        next.push(...miss);
        for (const h of hit) {
          for (const step of applyTarget(chains, rules[i]!, h, depth)) {
            if (step.kind === 'next') next.push(step.state);
            else if (step.kind === 'return') out.push({ kind: 'continue', state: step.state });
            else out.push({ kind: step.kind, state: step.state });
          }
        }
      }
      pending = next;
    }
    for (const st of pending) out.push({ kind: 'continue', state: st });
    return out;
  }

  type Step = { kind: 'next' | 'return' | 'accept' | 'drop' | 'reject'; state: State };

  function applyTarget(chains: Chains, rule: string[], s: State, depth: number): Step[] {
    const j = rule.indexOf('-j');
    if (j < 0) return [{ kind: 'next', state: s }];
    const target = rule[j + 1]!;
    const opt = (name: string) => {
      const k = rule.indexOf(name, j);
      return k >= 0 ? rule[k + 1] : undefined;
    };
    switch (target) {
      case 'ACCEPT':
        return [{ kind: 'accept', state: s }];
      case 'DROP':
        return [{ kind: 'drop', state: s }];
      case 'REJECT':
        return [{ kind: 'reject', state: s }];
      case 'RETURN':
        return [{ kind: 'return', state: s }];
      case 'MARK': {
        const or = opt('--or-mark');
        const xor = opt('--xor-mark');
        if (or === undefined && xor === undefined) throw new Error(`tracer: unsupported MARK in ${rule.join(' ')}`);
        const mark = or !== undefined ? (s.mark | Number(or)) >>> 0 : (s.mark ^ Number(xor)) >>> 0;
        return [{ kind: 'next', state: { ...s, mark } }];
      }
      case 'MASQUERADE':
        return [{ kind: 'accept', state: { ...s, masq: true } }];
      case 'DNAT': {
        const to = opt('--to-destination')!;
        const m = /^\[?([0-9a-f:.]+?)\]?:(\d+)$/.exec(to);
        if (!m) throw new Error(`tracer: bad DNAT destination ${to}`);
        return [{ kind: 'accept', state: { ...s, dst: m[1]!, port: Number(m[2]), dnat: true } }];
      }
      default:
        // A jump: the end of the called chain (or its RETURN) continues after this rule.
        return runChain(chains, target, s, depth + 1).map((r) => ({ kind: r.kind === 'continue' ? 'next' : r.kind, state: r.state }));
    }
  }

  function hook(tables: IptFamilyTables, table: string, chain: string, states: State[]): { live: State[]; ended: WeightedOutcome[] } {
    const chains = tables.get(table);
    if (!chains || !chains.has(chain)) return { live: states, ended: [] };
    const live: State[] = [];
    const ended: WeightedOutcome[] = [];
    for (const s of states) {
      for (const r of runChain(chains, chain, s, 0)) {
        if (r.kind === 'drop' || r.kind === 'reject') ended.push({ verdict: r.kind, masquerade: false, weight: r.state.weight });
        else live.push(r.state);
      }
    }
    return { live, ended };
  }

  function traceWeighted(pkt: Packet): WeightedOutcome[] {
    const fam = isIP(pkt.dst) === 6 ? 6 : 4;
    const tables = byFamily.get(fam)!;
    const init: State = { pkt, dst: pkt.dst, port: pkt.port, mark: 0, dnat: false, masq: false, weight: 1 };
    const outcomes: WeightedOutcome[] = [];
    const finish = (states: State[]) => {
      for (const s of states) {
        outcomes.push({ verdict: 'accept', ...(s.dnat ? { endpoint: hostPort(s.dst, s.port) } : {}), masquerade: s.masq, weight: s.weight });
      }
    };
    if (pkt.fromNode) {
      const nat = hook(tables, 'nat', 'OUTPUT', [init]);
      const filter = hook(tables, 'filter', 'OUTPUT', nat.live);
      const post = hook(tables, 'nat', 'POSTROUTING', filter.live);
      outcomes.push(...nat.ended, ...filter.ended, ...post.ended);
      finish(post.live);
      return outcomes;
    }
    const pre = hook(tables, 'nat', 'PREROUTING', [init]);
    outcomes.push(...pre.ended);
    for (const s of pre.live) {
      if (isLocal(s.dst)) {
        const input = hook(tables, 'filter', 'INPUT', [s]);
        outcomes.push(...input.ended);
        finish(input.live);
      } else {
        const fwd = hook(tables, 'filter', 'FORWARD', [s]);
        const post = hook(tables, 'nat', 'POSTROUTING', fwd.live);
        outcomes.push(...fwd.ended, ...post.ended);
        finish(post.live);
      }
    }
    return outcomes;
  }

  return {
    trace: (pkt) => traceWeighted(pkt).map(({ weight: _w, ...o }) => o),
    traceWeighted,
    tables: (family) => byFamily.get(family)!,
  };
}
