/**
 * A simulated node kernel for ipvs mode, and a packet tracer over it.
 *
 * This kernel has no IPVS and no dummy interfaces, so the ipvs backend's commands cannot run for
 * real here. The simulation is the command runner the backend is given: it executes the commands
 * the applier issues (`ipvsadm -R`, `ipset restore`, `ip -batch`, `iptables-restore --noflush`,
 * `sysctl`) into an in-memory model of the IPVS table, the ipsets, the kube-ipvs0 addresses and the
 * iptables tables, and answers the reads (`ipvsadm -Ln`, `ipset save`, `ip -o addr show`,
 * `iptables-save`). It is strict the way the tools are: adding what exists, deleting what does not,
 * referencing an unknown set or chain fails the command.
 *
 * `trace()` then follows a new connection through that model in kernel order:
 *   arriving:   nat PREROUTING → route (local = node IPs, kube-ipvs0, loopback)
 *               local:     filter INPUT → IPVS (LOCAL_IN) → filter OUTPUT → nat POSTROUTING
 *               not local: filter FORWARD → nat POSTROUTING (no endpoint)
 *   from node:  nat OUTPUT → IPVS (LOCAL_OUT) → filter OUTPUT → nat POSTROUTING
 * A virtual server without a real server of weight > 0 answers ICMP port-unreachable (the
 * kernel's ip_vs_leave), which the tracer reports as `reject`.
 */
import { isIP } from 'node:net';
import type { CommandRunner, ExecResult } from '../../../netproxy/exec';
import { cidrContains } from '../../../netproxy/ipnet';
import { hostPort, type Outcome, type Packet, type Tracer } from './packet';

type Fam = 4 | 6;
type Verdict = 'accept' | 'drop' | 'reject' | 'continue' | 'return';

interface SimRealServer { ip: string; port: number; weight: number; active: number; inactive: number }
interface SimVirtualServer { proto: string; ip: string; port: number; scheduler: string; persistence?: number; flags: string; reals: Map<string, SimRealServer> }
interface SimSet { type: string; family: string; entries: Set<string> }
type Table = Map<string, string[][]>;

const BUILTIN: Record<string, string[]> = { nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'], filter: ['INPUT', 'FORWARD', 'OUTPUT'] };

export function tokenize(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] ?? m[2]!);
  return out;
}

const quote = (t: string) => (/[\s"]/.test(t) ? `"${t}"` : t);
const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1): ExecResult => ({ code, stdout: '', stderr });
const vsKeyOf = (proto: string, ip: string, port: number) => `${proto.toUpperCase()}/${hostPort(ip, port)}`;

function parseHostPort(text: string): { ip: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m || isIP(m[1]!) === 0) throw new Error(`bad address ${text}`);
  return { ip: m[1]!.toLowerCase(), port: Number(m[2]) };
}

interface PacketState {
  src: string;
  dst: string;
  port: number;
  proto: string;
  mark: number;
  masq: boolean;
  vs?: SimVirtualServer;
}

export interface SimKernelOptions {
  nodeIPs: string[];
  /** false: `ipvsadm` fails as it does on a kernel without IPVS. */
  ipvs?: boolean;
}

export interface SimKernel extends Tracer {
  exec: CommandRunner;
  calls: { argv: string[]; input?: string }[];
  services: Map<string, SimVirtualServer>;
  sets: Map<string, SimSet>;
  bound: Set<string>;
  device(): boolean;
  tables: Record<Fam, Record<string, Table>>;
  sysctls: Map<string, string>;
  /** Gives a real server connection counts (as traffic would). */
  setConnections(vs: string, rs: string, active: number, inactive: number): void;
  /** Forgets the ClientIP persistence templates. */
  clearAffinity(): void;
}

export function createIpvsKernel(options: SimKernelOptions): SimKernel {
  const services = new Map<string, SimVirtualServer>();
  const sets = new Map<string, SimSet>();
  const bound = new Set<string>();
  let device = false;
  const sysctls = new Map<string, string>();
  const calls: { argv: string[]; input?: string }[] = [];
  const affinity = new Map<string, string>();
  const newTables = (): Record<string, Table> => Object.fromEntries(Object.entries(BUILTIN).map(([t, cs]) => [t, new Map(cs.map((c) => [c, [] as string[][]]))]));
  const tables: Record<Fam, Record<string, Table>> = { 4: newTables(), 6: newTables() };

  // ---- ipvsadm ----
  function listIpvs(): string {
    const lines = ['IP Virtual Server version 1.2.1 (size=4096)', 'Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'];
    for (const vs of services.values()) {
      let head = `${vs.proto.padEnd(4)} ${hostPort(vs.ip, vs.port)} ${vs.scheduler}`;
      if (vs.flags) head += ` (${vs.flags})`;
      if (vs.persistence !== undefined) head += ` persistent ${vs.persistence}`;
      lines.push(head);
      for (const rs of vs.reals.values()) lines.push(`  -> ${hostPort(rs.ip, rs.port).padEnd(28)} Masq    ${String(rs.weight).padEnd(6)} ${String(rs.active).padEnd(10)} ${rs.inactive}`);
    }
    return lines.join('\n') + '\n';
  }

  function ipvsLine(line: string): void {
    const t = tokenize(line);
    const cmd = t[0]!;
    let proto = '';
    let addr = '';
    let scheduler = 'wlc';
    let persistence: number | undefined;
    let flags = '';
    let real = '';
    let weight = 1;
    for (let i = 1; i < t.length; i++) {
      const o = t[i]!;
      if (o === '-t' || o === '-u' || o === '--sctp-service') {
        proto = o === '-t' ? 'TCP' : o === '-u' ? 'UDP' : 'SCTP';
        addr = t[++i]!;
      } else if (o === '-s') scheduler = t[++i]!;
      else if (o === '-p') persistence = Number(t[++i]);
      else if (o === '-b') flags = t[++i]!;
      else if (o === '-r') real = t[++i]!;
      else if (o === '-w') weight = Number(t[++i]);
      else if (o === '-m') continue;
      else throw new Error(`ipvsadm: unsupported option ${o} in: ${line}`);
    }
    const a = parseHostPort(addr);
    const key = vsKeyOf(proto, a.ip, a.port);
    const vs = services.get(key);
    if (cmd === '-A') {
      if (vs) throw new Error(`Service already exists: ${line}`);
      services.set(key, { proto, ...a, scheduler, ...(persistence !== undefined ? { persistence } : {}), flags, reals: new Map() });
      return;
    }
    if (!vs) throw new Error(`No such service: ${line}`);
    if (cmd === '-E') {
      vs.scheduler = scheduler;
      vs.flags = flags;
      if (persistence === undefined) delete vs.persistence;
      else vs.persistence = persistence;
    } else if (cmd === '-D') services.delete(key);
    else {
      const r = parseHostPort(real);
      const rk = hostPort(r.ip, r.port);
      const rs = vs.reals.get(rk);
      if (cmd === '-a') {
        if (rs) throw new Error(`Destination already exists: ${line}`);
        vs.reals.set(rk, { ...r, weight, active: 0, inactive: 0 });
      } else if (!rs) throw new Error(`No such destination: ${line}`);
      else if (cmd === '-e') rs.weight = weight;
      else if (cmd === '-d') vs.reals.delete(rk);
      else throw new Error(`ipvsadm: unsupported command ${cmd}`);
    }
  }

  // ---- ipset ----
  function saveIpsets(): string {
    const lines: string[] = [];
    for (const [name, s] of sets) {
      lines.push(s.type === 'bitmap:port' ? `create ${name} bitmap:port range 0-65535` : `create ${name} ${s.type} family ${s.family} hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1`);
      for (const e of s.entries) lines.push(`add ${name} ${e}`);
    }
    return lines.join('\n') + (lines.length ? '\n' : '');
  }

  function setInUse(name: string): boolean {
    for (const f of [4, 6] as Fam[]) for (const t of Object.values(tables[f])) for (const rules of t.values()) for (const r of rules) if (r.includes(name)) return true;
    return false;
  }

  function ipsetLine(line: string, exist: boolean): void {
    const t = line.trim().split(/\s+/);
    const [cmd, name] = t;
    if (cmd === 'create') {
      const family = t.includes('family') ? t[t.indexOf('family') + 1]! : 'inet';
      const prev = sets.get(name!);
      if (prev) {
        if (!exist || prev.type !== t[2]) throw new Error(`ipset: set ${name} already exists`);
        return;
      }
      sets.set(name!, { type: t[2]!, family, entries: new Set() });
      return;
    }
    const s = sets.get(name!);
    if (!s) throw new Error(`ipset: the set ${name} does not exist`);
    if (cmd === 'destroy') {
      if (setInUse(name!)) throw new Error(`ipset: set ${name} is in use by a kernel component`);
      sets.delete(name!);
    } else if (cmd === 'add') {
      const e = t[2]!;
      if (s.entries.has(e) && !exist) throw new Error(`ipset: element already added: ${line}`);
      validateEntry(s, e);
      s.entries.add(e);
    } else if (cmd === 'del') {
      if (!s.entries.has(t[2]!) && !exist) throw new Error(`ipset: element not added: ${line}`);
      s.entries.delete(t[2]!);
    } else throw new Error(`ipset: unsupported command ${cmd}`);
  }

  function validateEntry(s: SimSet, e: string): void {
    const parts = e.split(',');
    const want = { 'hash:ip': 1, 'hash:ip,port': 2, 'hash:ip,port,ip': 3, 'hash:ip,port,net': 3, 'bitmap:port': 1 }[s.type];
    if (parts.length !== want) throw new Error(`ipset: bad entry ${e} for ${s.type}`);
    if (s.type === 'bitmap:port') {
      if (!/^\d+$/.test(e)) throw new Error(`ipset: bad port ${e}`);
      return;
    }
    const fam = s.family === 'inet6' ? 6 : 4;
    if (isIP(parts[0]!) !== fam) throw new Error(`ipset: ${parts[0]} is not of family ${s.family}`);
    if (parts[1] && !/^(tcp|udp|sctp):\d+$/.test(parts[1])) throw new Error(`ipset: bad proto:port ${parts[1]}`);
  }

  // ---- ip ----
  function ipBatchLine(line: string): void {
    const t = line.trim().split(/\s+/);
    if (t[0] !== 'addr' || (t[1] !== 'add' && t[1] !== 'del') || t[3] !== 'dev') throw new Error(`ip: unsupported batch line ${line}`);
    if (t[4] !== 'kube-ipvs0' || !device) throw new Error(`Cannot find device "${t[4]}"`);
    const [a, len] = t[2]!.split('/');
    if (len !== (isIP(a!) === 4 ? '32' : '128')) throw new Error(`ip: unexpected prefix ${t[2]}`);
    if (t[1] === 'add') {
      if (bound.has(a!)) throw new Error('RTNETLINK answers: File exists');
      bound.add(a!);
    } else {
      if (!bound.has(a!)) throw new Error('RTNETLINK answers: Cannot assign requested address');
      bound.delete(a!);
    }
  }

  // ---- iptables ----
  function saveIptables(f: Fam): string {
    const out: string[] = [];
    for (const [name, chains] of Object.entries(tables[f])) {
      out.push(`*${name}`);
      for (const c of chains.keys()) out.push(`:${c} ${BUILTIN[name]!.includes(c) ? 'ACCEPT' : '-'} [0:0]`);
      for (const [c, rules] of chains) for (const r of rules) out.push(`-A ${c} ${r.map(quote).join(' ')}`);
      out.push('COMMIT');
    }
    return out.join('\n') + '\n';
  }

  function restoreIptables(f: Fam, text: string): void {
    // Work on a copy: a failing transaction changes nothing.
    const copy: Record<string, Table> = Object.fromEntries(Object.entries(tables[f]).map(([n, t]) => [n, new Map([...t].map(([c, r]) => [c, r.map((x) => [...x])]))]));
    let table: Table | undefined;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        table = copy[line.slice(1)];
        if (!table) throw new Error(`iptables-restore: unknown table ${line}`);
        continue;
      }
      if (!table) throw new Error(`iptables-restore: rule outside a table: ${line}`);
      if (line === 'COMMIT') {
        table = undefined;
        continue;
      }
      let m: RegExpExecArray | null;
      if ((m = /^:(\S+) (\S+)/.exec(line))) {
        if (m[2] === '-') table.set(m[1]!, []);
        continue;
      }
      if ((m = /^-X (\S+)$/.exec(line))) {
        const name = m[1]!;
        if (!table.has(name)) throw new Error(`iptables-restore: no chain ${name}`);
        for (const rules of table.values()) for (const r of rules) if (r[r.indexOf('-j') + 1] === name) throw new Error(`iptables-restore: chain ${name} is referenced`);
        table.delete(name);
        continue;
      }
      if ((m = /^-([AID]) (\S+) (.*)$/.exec(line))) {
        const rules = table.get(m[2]!);
        if (!rules) throw new Error(`iptables-restore: no chain ${m[2]}`);
        const rule = tokenize(m[3]!);
        const target = rule[rule.indexOf('-j') + 1]!;
        if (/^KUBE-/.test(target) && !table.has(target)) throw new Error(`iptables-restore: no chain/target ${target}`);
        for (let i = 0; i < rule.length; i++) if (rule[i] === '--match-set' && !sets.has(rule[i + 1]!)) throw new Error(`iptables-restore: Set ${rule[i + 1]} doesn't exist`);
        if (m[1] === 'A') rules.push(rule);
        else if (m[1] === 'I') rules.unshift(rule);
        else {
          const i = rules.findIndex((r) => r.join(' ') === rule.join(' '));
          if (i < 0) throw new Error(`iptables-restore: rule to delete not found: ${line}`);
          rules.splice(i, 1);
        }
        continue;
      }
      throw new Error(`iptables-restore: cannot parse ${line}`);
    }
    tables[f] = copy;
  }

  const exec: CommandRunner = async (argv, opts = {}) => {
    calls.push({ argv, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    const input = opts.input ?? '';
    const lines = input.split('\n').filter((l) => l.trim() !== '');
    const cmd = argv.join(' ');
    try {
      if (cmd === 'cat /proc/net/ip_vs') return options.ipvs === false ? fail('cat: /proc/net/ip_vs: No such file or directory') : ok('IP Virtual Server version 1.2.1 (size=4096)\n');
      if (argv[0] === 'ipvsadm' || argv[0] === 'ipvsadm-restore') {
        if (options.ipvs === false) return fail("Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?");
        if (argv[0] === 'ipvsadm-restore') throw new Error('ipvsadm-restore clears every virtual server first (ipvsadm -C); keelson must not use it');
        if (cmd === 'ipvsadm -Ln') return ok(listIpvs());
        if (cmd === 'ipvsadm -R') {
          for (const l of lines) ipvsLine(l);
          return ok();
        }
        if (argv[1] === '--set') return ok();
      }
      if (argv[0] === 'ipset') {
        if (cmd === 'ipset save') return ok(saveIpsets());
        if (argv.at(-1) === 'restore') {
          const exist = argv.includes('-exist');
          const before = new Map([...sets].map(([n, s]) => [n, { ...s, entries: new Set(s.entries) }]));
          try {
            for (const l of lines) ipsetLine(l, exist);
          } catch (err) {
            sets.clear();
            for (const [n, s] of before) sets.set(n, s);
            throw err;
          }
          return ok();
        }
      }
      if (argv[0] === 'ip') {
        if (cmd === 'ip -o addr show dev kube-ipvs0') {
          if (!device) return fail('Device "kube-ipvs0" does not exist.');
          return ok([...bound].map((a, i) => `9: kube-ipvs0    ${isIP(a) === 4 ? 'inet' : 'inet6'} ${a}/${isIP(a) === 4 ? 32 : 128} scope global kube-ipvs0\\       valid_lft forever preferred_lft forever (${i})`).join('\n') + '\n');
        }
        if (cmd === 'ip link add kube-ipvs0 type dummy') {
          if (device) throw new Error('RTNETLINK answers: File exists');
          device = true;
          return ok();
        }
        if (cmd === 'ip link del kube-ipvs0') {
          if (!device) throw new Error('Cannot find device "kube-ipvs0"');
          device = false;
          bound.clear();
          return ok();
        }
        if (cmd === 'ip -batch -') {
          for (const l of lines) ipBatchLine(l);
          return ok();
        }
      }
      if (argv[0] === 'sysctl') {
        for (const a of argv.slice(1).filter((x) => x.includes('='))) {
          const [k, v] = a.split('=');
          sysctls.set(k!, v!);
        }
        return ok();
      }
      const ipt = /^(ip6?)tables-nft-(save|restore)$/.exec(argv[0]!);
      if (ipt) {
        const f: Fam = ipt[1] === 'ip6' ? 6 : 4;
        if (ipt[2] === 'save') return ok(saveIptables(f));
        if (!argv.includes('--noflush')) throw new Error('iptables-restore without --noflush would flush every table');
        restoreIptables(f, input);
        return ok();
      }
      return fail(`${argv[0]}: command not found`, 127);
    } catch (err) {
      return fail((err as Error).message);
    }
  };

  // ---- packet tracing ----
  const isLocal = (a: string) =>
    options.nodeIPs.includes(a) || bound.has(a) || a === '::1' || (isIP(a) === 4 && cidrContains('127.0.0.0/8', a));

  function inSet(name: string, dirs: string[], st: PacketState): boolean {
    const s = sets.get(name);
    if (!s) throw new Error(`trace: no set ${name}`);
    const ipOf = (d: string) => (d === 'src' ? st.src : st.dst);
    const portOf = (d: string) => {
      if (d !== 'dst') throw new Error('trace: source ports are not modelled');
      return `${st.proto}:${st.port}`;
    };
    switch (s.type) {
      case 'hash:ip':
        return s.entries.has(ipOf(dirs[0]!));
      case 'bitmap:port':
        if (dirs[0] !== 'dst') throw new Error('trace: source ports are not modelled');
        return s.entries.has(String(st.port));
      case 'hash:ip,port':
        return s.entries.has(`${ipOf(dirs[0]!)},${portOf(dirs[1]!)}`);
      case 'hash:ip,port,ip':
        return s.entries.has(`${ipOf(dirs[0]!)},${portOf(dirs[1]!)},${ipOf(dirs[2]!)}`);
      case 'hash:ip,port,net': {
        const head = `${ipOf(dirs[0]!)},${portOf(dirs[1]!)},`;
        const a = ipOf(dirs[2]!);
        return [...s.entries].some((e) => e.startsWith(head) && cidrContains(e.slice(head.length).includes('/') ? e.slice(head.length) : `${e.slice(head.length)}/${isIP(a) === 4 ? 32 : 128}`, a));
      }
      default:
        throw new Error(`trace: set type ${s.type}`);
    }
  }

  /** Evaluates the matches of one rule; returns the target and its arguments when it matches. */
  function matches(rule: string[], st: PacketState): { target: string; args: string[] } | undefined {
    let negate = false;
    for (let i = 0; i < rule.length; i++) {
      const o = rule[i]!;
      let hit: boolean;
      if (o === '!') {
        negate = true;
        continue;
      }
      if (o === '-j') return { target: rule[i + 1]!, args: rule.slice(i + 2) };
      if (o === '-m') {
        i++;
        continue;
      }
      if (o === '--comment') {
        i++;
        continue;
      }
      if (o === '-s' || o === '-d') {
        const v = rule[++i]!;
        const a = o === '-s' ? st.src : st.dst;
        hit = v.includes('/') ? isIP(v.split('/')[0]!) === isIP(a) && cidrContains(v, a) : v === a;
      } else if (o === '-p') hit = rule[++i] === st.proto;
      else if (o === '--match-set') {
        hit = inSet(rule[i + 1]!, rule[i + 2]!.split(','), st);
        i += 2;
      } else if (o === '--dst-type' || o === '--src-type') {
        if (rule[++i] !== 'LOCAL') throw new Error(`trace: addrtype ${rule[i]}`);
        hit = isLocal(o === '--dst-type' ? st.dst : st.src);
      } else if (o === '--physdev-is-in') hit = false; // traced packets never come from a bridge port
      else if (o === '--mark') {
        const [v, m] = rule[++i]!.split('/').map(Number);
        hit = ((st.mark & m!) >>> 0) === v;
      } else if (o === '--ctstate') hit = rule[++i]!.split(',').includes('NEW');
      else if (o === '--vaddr') {
        hit = st.vs !== undefined && st.vs.ip === rule[i + 1] && st.vs.proto.toLowerCase() === rule[i + 3] && String(st.vs.port) === rule[i + 5];
        i += 5;
      } else throw new Error(`trace: unsupported iptables option ${o} in ${rule.join(' ')}`);
      if (hit === negate) return undefined;
      negate = false;
    }
    return undefined;
  }

  function runChain(t: Table, chain: string, st: PacketState, depth = 0): Verdict {
    if (depth > 10) throw new Error('trace: chain loop');
    const rules = t.get(chain);
    if (!rules) throw new Error(`trace: no chain ${chain}`);
    for (const rule of rules) {
      const m = matches(rule, st);
      if (!m) continue;
      switch (m.target) {
        case 'ACCEPT':
        case 'DROP':
        case 'REJECT':
          return m.target.toLowerCase() as Verdict;
        case 'RETURN':
          return 'return';
        case 'MASQUERADE':
          st.masq = true;
          return 'accept';
        case 'MARK': {
          const v = Number(m.args[1]);
          if (m.args[0] === '--or-mark') st.mark = (st.mark | v) >>> 0;
          else if (m.args[0] === '--xor-mark') st.mark = (st.mark ^ v) >>> 0;
          else throw new Error(`trace: MARK ${m.args.join(' ')}`);
          continue;
        }
        default: {
          const v = runChain(t, m.target, st, depth + 1);
          if (v === 'accept' || v === 'drop' || v === 'reject') return v;
        }
      }
    }
    return 'continue';
  }

  /** Runs a built-in chain; 'accept' when the packet goes on. */
  const hook = (f: Fam, table: string, chain: string, st: PacketState): 'accept' | 'drop' | 'reject' => {
    const v = runChain(tables[f][table]!, chain, st);
    return v === 'drop' || v === 'reject' ? v : 'accept';
  };

  function schedule(f: Fam, vs: SimVirtualServer, st: PacketState): Outcome[] {
    let reals = [...vs.reals.values()].filter((r) => r.weight > 0);
    if (!reals.length) return [{ verdict: 'reject', masquerade: false }];
    const akey = `${vsKeyOf(vs.proto, vs.ip, vs.port)}|${st.src}`;
    if (vs.persistence !== undefined && affinity.has(akey)) {
      const sticky = reals.filter((r) => hostPort(r.ip, r.port) === affinity.get(akey));
      if (sticky.length) reals = sticky;
    }
    const out: Outcome[] = [];
    for (const rs of reals) {
      const s: PacketState = { ...st, dst: rs.ip, port: rs.port, vs };
      if (vs.persistence !== undefined) affinity.set(akey, hostPort(rs.ip, rs.port));
      const v1 = hook(f, 'filter', 'OUTPUT', s);
      const v2 = v1 === 'accept' ? hook(f, 'nat', 'POSTROUTING', s) : v1;
      out.push(v2 === 'accept' ? { verdict: 'accept', endpoint: hostPort(rs.ip, rs.port), masquerade: s.masq } : { verdict: v2, masquerade: false });
    }
    return out;
  }

  function trace(pkt: Packet): Outcome[] {
    const f: Fam = isIP(pkt.dst) === 6 ? 6 : 4;
    const st: PacketState = { src: pkt.src, dst: pkt.dst, port: pkt.port, proto: pkt.proto, mark: 0, masq: false };
    const vsFor = (s: PacketState) => services.get(vsKeyOf(s.proto, s.dst, s.port));
    const end = (v: 'drop' | 'reject'): Outcome[] => [{ verdict: v, masquerade: false }];
    const first = hook(f, 'nat', pkt.fromNode ? 'OUTPUT' : 'PREROUTING', st);
    if (first !== 'accept') return end(first);
    if (pkt.fromNode) {
      const vs = vsFor(st);
      if (vs) return schedule(f, vs, st);
      const out = hook(f, 'filter', 'OUTPUT', st);
      if (out !== 'accept') return end(out);
      const next = isLocal(st.dst) ? hook(f, 'filter', 'INPUT', st) : hook(f, 'nat', 'POSTROUTING', st);
      return next === 'accept' ? [{ verdict: 'accept', masquerade: false }] : end(next);
    }
    if (!isLocal(st.dst)) {
      const fwd = hook(f, 'filter', 'FORWARD', st);
      if (fwd !== 'accept') return end(fwd);
      return [{ verdict: 'accept', masquerade: false }];
    }
    const input = hook(f, 'filter', 'INPUT', st);
    if (input !== 'accept') return end(input);
    const vs = vsFor(st);
    return vs ? schedule(f, vs, st) : [{ verdict: 'accept', masquerade: false }];
  }

  return {
    exec,
    calls,
    services,
    sets,
    bound,
    device: () => device,
    get tables() {
      return tables;
    },
    sysctls,
    setConnections(vs, rs, active, inactive) {
      const r = services.get(vs)?.reals.get(rs);
      if (!r) throw new Error(`no real server ${vs} ${rs}`);
      r.active = active;
      r.inactive = inactive;
    },
    clearAffinity: () => affinity.clear(),
    trace,
  };
}
