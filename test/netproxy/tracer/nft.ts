/**
 * A packet-flow tracer that interprets the nftables transaction keelson renders (the subset of
 * nft syntax it uses) and answers, for a new connection, which endpoints it can reach, whether it
 * is masqueraded, or whether it is dropped or rejected.
 */
import { isIP } from 'node:net';
import { cidrContains } from '../../../netproxy/ipnet';
import { hostPort, type Outcome, type Packet, type Tracer } from './packet';

interface Table {
  chains: Map<string, string[]>;
  hooks: Map<string, { type: string; hook: string; priority: number }>;
  elements: Map<string, Map<string, string>>;
}

const PRIORITIES: Record<string, number> = { dstnat: -100, srcnat: 100, filter: 0 };

export function parseNft(text: string): Map<string, Table> {
  const tables = new Map<string, Table>();
  const get = (fam: string) => {
    let t = tables.get(fam);
    if (!t) tables.set(fam, (t = { chains: new Map(), hooks: new Map(), elements: new Map() }));
    return t;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    let m: RegExpExecArray | null;
    if ((m = /^table (ip6?) \S+ \{$/.exec(line))) {
      const t = get(m[1]!);
      let chain: string | undefined;
      for (i++; i < lines.length && lines[i] !== '}'; i++) {
        const l = lines[i]!.trim();
        let c: RegExpExecArray | null;
        if ((c = /^chain (\S+) \{$/.exec(l))) {
          chain = c[1]!;
          if (!t.chains.has(chain)) t.chains.set(chain, []);
        } else if ((c = /^type (\w+) hook (\w+) priority ([\w+-]+(?: [+-] \d+)?);/.exec(l)) && chain) {
          const p = c[3]!;
          t.hooks.set(chain, { type: c[1]!, hook: c[2]!, priority: p in PRIORITIES ? PRIORITIES[p]! : Number(p) });
        } else if ((c = /^(map|set) (\S+) \{$/.exec(l))) {
          if (!t.elements.has(c[2]!)) t.elements.set(c[2]!, new Map());
          chain = undefined;
        }
      }
      continue;
    }
    if ((m = /^add table (ip6?) /.exec(line))) get(m[1]!);
    else if ((m = /^delete table (ip6?) /.exec(line))) tables.delete(m[1]!);
    else if ((m = /^add chain (ip6?) \S+ (\S+)$/.exec(line))) {
      const t = get(m[1]!);
      if (!t.chains.has(m[2]!)) t.chains.set(m[2]!, []);
    } else if ((m = /^flush chain (ip6?) \S+ (\S+)$/.exec(line))) get(m[1]!).chains.set(m[2]!, []);
    else if ((m = /^delete chain (ip6?) \S+ (\S+)$/.exec(line))) get(m[1]!).chains.delete(m[2]!);
    else if ((m = /^add rule (ip6?) \S+ (\S+) (.*)$/.exec(line))) {
      const t = get(m[1]!);
      if (!t.chains.has(m[2]!)) throw new Error(`rule for unknown chain ${m[2]}`);
      t.chains.get(m[2]!)!.push(m[3]!);
    } else if ((m = /^add map (ip6?) \S+ (\S+) /.exec(line))) {
      const t = get(m[1]!);
      if (!t.elements.has(m[2]!)) t.elements.set(m[2]!, new Map());
    } else if ((m = /^flush (?:map|set) (ip6?) \S+ (\S+)$/.exec(line))) get(m[1]!).elements.set(m[2]!, new Map());
    else if ((m = /^delete map (ip6?) \S+ (\S+)$/.exec(line))) get(m[1]!).elements.delete(m[2]!);
    else if ((m = /^(add|delete) element (ip6?) \S+ (\S+) \{ (.*) \}$/.exec(line))) {
      const t = get(m[2]!);
      const map = t.elements.get(m[3]!);
      if (!map) throw new Error(`element for unknown map ${m[3]}`);
      for (const el of m[4]!.split(', ')) {
        const [k, v] = el.split(' : ');
        if (m[1] === 'add') {
          if (map.has(k!)) throw new Error(`element exists: ${m[3]} ${k}`);
          map.set(k!, v ?? '');
        } else {
          if (!map.has(k!)) throw new Error(`no such element: ${m[3]} ${k}`);
          map.delete(k!);
        }
      }
    } else if (line !== '') throw new Error(`tracer cannot parse: ${line}`);
  }
  return tables;
}

interface State {
  pkt: Packet;
  dst: string;
  port: number;
  mark: number;
  dnat: boolean;
  masq: boolean;
  pick?: number;
}

type Result = { kind: 'continue' | 'accept' | 'drop' | 'reject' | 'return'; state: State };

export function createNftTracer(text: string, options: { nodeIPs: string[] }): Tracer & { tables: Map<string, Table> } {
  const tables = parseNft(text);
  const affinity = new Map<string, string>();
  const isLocal = (ip: string) => options.nodeIPs.includes(ip) || ip === '::1' || (isIP(ip) === 4 && cidrContains('127.0.0.0/8', ip));

  function lookupKey(fam: string, expr: string, s: State): string {
    return expr
      .split(' . ')
      .map((part) => {
        if (part === `${fam} daddr`) return s.dst;
        if (part === `${fam} saddr`) return s.pkt.src;
        if (part === 'meta l4proto') return s.pkt.proto;
        if (part === 'th dport') return String(s.port);
        throw new Error(`unsupported key part ${part}`);
      })
      .join(' . ');
  }

  /** Runs one chain; forks on random choices. */
  function runChain(t: Table, fam: string, chain: string, s: State, depth = 0): Result[] {
    if (depth > 20) throw new Error('chain loop');
    const rules = t.chains.get(chain);
    if (!rules) throw new Error(`no chain ${chain}`);
    let states: State[] = [s];
    const done: Result[] = [];
    for (const rule of rules) {
      const nextStates: State[] = [];
      for (const st of states) {
        for (const r of runRule(t, fam, rule, st, depth)) {
          if (r.kind === 'continue') nextStates.push(r.state);
          else if (r.kind === 'return') done.push({ kind: 'continue', state: r.state });
          else done.push(r);
        }
      }
      states = nextStates;
    }
    return [...done, ...states.map((state) => ({ kind: 'continue' as const, state }))];
  }

  function verdictOf(t: Table, fam: string, verdict: string, s: State, depth: number): Result[] {
    const [v, target] = verdict.split(' ');
    if (v === 'goto') return runChain(t, fam, target!, s, depth + 1).map((r) => (r.kind === 'continue' ? { kind: 'return' as const, state: r.state } : r));
    if (v === 'jump') return runChain(t, fam, target!, s, depth + 1);
    if (v === 'drop' || v === 'accept' || v === 'reject' || v === 'return') return [{ kind: v, state: s }];
    throw new Error(`unsupported verdict ${verdict}`);
  }

  function runRule(t: Table, fam: string, rule: string, s0: State, depth: number): Result[] {
    let s = { ...s0 };
    let rest = rule;
    let m: RegExpExecArray | null;
    const eat = (re: RegExp) => {
      m = re.exec(rest);
      if (!m) return false;
      rest = rest.slice(m[0].length).trimStart();
      return true;
    };
    const miss: Result[] = [{ kind: 'continue', state: s0 }];
    while (rest.length) {
      if (eat(/^ct state new/)) continue;
      if (eat(/^ct status dnat/)) {
        if (!s.dnat) return miss;
        continue;
      }
      if (eat(/^fib (daddr|saddr) type local/)) {
        if (!isLocal(m![1] === 'daddr' ? s.dst : s.pkt.src)) return miss;
        continue;
      }
      if (eat(/^(ip6?) (daddr|saddr) != \{ ([^}]+) \}/)) {
        const addr = m![2] === 'daddr' ? s.dst : s.pkt.src;
        if (m![3]!.split(', ').some((c) => (c.includes('/') ? cidrContains(c, addr) : c === addr))) return miss;
        continue;
      }
      if (eat(/^(ip6?) (daddr|saddr) \{ ([^}]+) \}/)) {
        const addr = m![2] === 'daddr' ? s.dst : s.pkt.src;
        if (!m![3]!.split(', ').some((c) => (c.includes('/') ? cidrContains(c, addr) : c === addr))) return miss;
        continue;
      }
      if (eat(/^(ip6?) (daddr|saddr) != (\S+)/)) {
        const addr = m![2] === 'daddr' ? s.dst : s.pkt.src;
        const v = m![3]!;
        if (v.includes('/') ? cidrContains(v, addr) : v === addr) return miss;
        continue;
      }
      if (eat(/^(ip6?) daddr @(\S+)/)) {
        if (!t.elements.get(m![2]!)?.has(s.dst)) return miss;
        continue;
      }
      if (eat(/^(ip6?) saddr \. (ip6?) daddr @(\S+)/)) {
        if (!t.elements.get(m![3]!)?.has(`${s.pkt.src} . ${s.dst}`)) return miss;
        continue;
      }
      if (eat(/^meta l4proto (tcp|udp|sctp)\b/)) {
        if (m![1] !== s.pkt.proto) return miss;
        continue;
      }
      if (eat(/^meta l4proto \{ ([^}]+) \}/)) {
        if (!m![1]!.split(', ').includes(s.pkt.proto)) return miss;
        continue;
      }
      if (eat(/^meta mark & (0x[0-9a-f]+) == (0x[0-9a-f]+)/)) {
        if ((s.mark & Number(m![1])) >>> 0 !== Number(m![2])) return miss;
        continue;
      }
      if (eat(/^meta mark set meta mark \| (0x[0-9a-f]+)/)) {
        s.mark = (s.mark | Number(m![1])) >>> 0;
        continue;
      }
      if (eat(/^meta mark set meta mark & (0x[0-9a-f]+)/)) {
        s.mark = (s.mark & Number(m![1])) >>> 0;
        continue;
      }
      if (eat(/^masquerade( fully-random)?$/)) {
        s.masq = true;
        return [{ kind: 'accept', state: s }];
      }
      // Affinity: an `address . port` value in one map (IPv4), or the address and the port in two
      // maps looked up by the same client (IPv6).
      if (eat(/^update @(\S+) \{ (ip6?) saddr timeout \d+s : (\S+(?: \. \d+)?) \}/)) {
        affinity.set(`${m![1]}|${s.pkt.src}`, m![3]!);
        continue;
      }
      if (eat(/^dnat (ip6?) to (ip6?) saddr map @(\S+) : (ip6?) saddr map @(\S+)/)) {
        const ip = affinity.get(`${m![3]}|${s.pkt.src}`);
        const port = affinity.get(`${m![5]}|${s.pkt.src}`);
        if (!ip || !port) return miss;
        return [{ kind: 'accept', state: { ...s, dst: ip, port: Number(port), dnat: true } }];
      }
      if (eat(/^dnat (ip6?) to (ip6?) saddr map @(\S+)/)) {
        const hit = affinity.get(`${m![3]}|${s.pkt.src}`);
        if (!hit) return miss;
        const [ip, port] = hit.split(' . ');
        return [{ kind: 'accept', state: { ...s, dst: ip!, port: Number(port), dnat: true } }];
      }
      if (eat(/^dnat (ip6?) to (.+) \. numgen random mod (\d+)(?: offset (\d+))? map @(\S+)/)) {
        const key = lookupKey(fam, m![2]!, s);
        const map = t.elements.get(m![5]!)!;
        const offset = Number(m![4] ?? 0);
        const out: Result[] = [];
        for (let i = 0; i < Number(m![3]); i++) {
          const v = map.get(`${key} . ${offset + i}`);
          if (!v) continue; // no element: the rule does not match for this draw (packet falls through)
          const [ip, port] = v.split(' . ');
          out.push({ kind: 'accept', state: { ...s, dst: ip!, port: Number(port), dnat: true } });
        }
        return out;
      }
      if (eat(/^dnat (ip6?) to \[?([0-9a-f:.]+?)\]?:(\d+)$/)) {
        return [{ kind: 'accept', state: { ...s, dst: m![2]!, port: Number(m![3]), dnat: true } }];
      }
      if (eat(/^numgen random mod (\d+) vmap \{ ([^}]+) \}/)) {
        const entries = new Map(m![2]!.split(', ').map((e) => e.split(' : ') as [string, string]));
        const out: Result[] = [];
        for (let i = 0; i < Number(m![1]); i++) out.push(...verdictOf(t, fam, entries.get(String(i))!, s, depth));
        return out;
      }
      if (eat(/^(.+) vmap @(\S+)$/)) {
        const key = lookupKey(fam, m![1]!, s);
        const v = t.elements.get(m![2]!)?.get(key);
        if (v === undefined) return miss;
        return verdictOf(t, fam, v, s, depth);
      }
      if (eat(/^reject with tcp reset$/)) return verdictOf(t, fam, 'reject', s, depth);
      if (eat(/^(jump|goto) (\S+)$/) || eat(/^(return|drop|accept|reject)$/)) {
        return verdictOf(t, fam, m![0]!, s, depth);
      }
      throw new Error(`tracer: unsupported statement in rule: ${rest}`);
    }
    return [{ kind: 'continue', state: s }];
  }

  function runHook(t: Table, fam: string, type: string, hook: string, states: State[]): { live: State[]; ended: Outcome[] } {
    const chains = [...t.hooks].filter(([, h]) => h.type === type && h.hook === hook).sort((a, b) => a[1].priority - b[1].priority);
    let live = states;
    const ended: Outcome[] = [];
    for (const [name] of chains) {
      const next: State[] = [];
      for (const st of live) {
        for (const r of runChain(t, fam, name, st)) {
          if (r.kind === 'drop' || r.kind === 'reject') ended.push({ verdict: r.kind, masquerade: false });
          else next.push(r.state);
        }
      }
      live = next;
    }
    return { live, ended };
  }

  return {
    tables,
    trace(pkt) {
      const fam = isIP(pkt.dst) === 6 ? 'ip6' : 'ip';
      const t = tables.get(fam);
      const init: State = { pkt, dst: pkt.dst, port: pkt.port, mark: 0, dnat: false, masq: false };
      if (!t) return [{ verdict: 'accept', masquerade: false }];
      const outcomes: Outcome[] = [];
      // Hooks in kernel order; filter chains at -110 run before nat at -100 on OUTPUT.
      const order: [string, string][] = pkt.fromNode ? [['filter', 'output'], ['nat', 'output']] : [['filter', 'prerouting'], ['nat', 'prerouting']];
      let live = [init];
      for (const [type, hook] of order) {
        const r = runHook(t, fam, type, hook, live);
        outcomes.push(...r.ended);
        live = r.live;
      }
      for (const st of live) {
        const local = !pkt.fromNode && isLocal(st.dst);
        const r = runHook(t, fam, 'filter', local ? 'input' : pkt.fromNode ? 'none' : 'forward', [st]);
        outcomes.push(...r.ended);
        for (const s2 of r.live) {
          const post = local ? { live: [s2], ended: [] } : runHook(t, fam, 'nat', 'postrouting', [s2]);
          for (const s3 of post.live) {
            outcomes.push({ verdict: 'accept', ...(s3.dnat ? { endpoint: hostPort(s3.dst, s3.port) } : {}), masquerade: s3.masq });
          }
        }
      }
      return outcomes;
    },
  };
}
