/**
 * The ipvs planner: desired state + what the kernel holds → an ordered list of commands. Pure: no
 * I/O, so the commands can be checked line by line and traced. The applier (backend.ts) reads the
 * kernel state and runs the steps.
 *
 * Graceful termination, as kube-proxy does it: a TCP real server that is no longer wanted but
 * still has connections gets weight 0 (no new connections) and is deleted by a later sync once
 * its connection counts reach zero; UDP and SCTP real servers are deleted at once.
 */
import type { ProxyConfig } from '../config';
import type { IPFamily } from '../serviceport';
import { familyOfIP, type IpvsDesired } from './desired';
import { ipsetRestoreInput, setName } from './ipset';
import { JUMPS, jumpId, renderIptables } from './rules';
import {
  addRealLine, addServiceLine, attributesDiffer, deleteRealLine, deleteServiceLine, editRealLine, editServiceLine,
  vsKey, type VirtualServer,
} from './virtualserver';

export const DUMMY_DEVICE = 'kube-ipvs0';

export interface KernelState {
  /** Every virtual server in the kernel (`ipvsadm -Ln`). */
  services: Map<string, VirtualServer>;
  /** Our ipsets that exist, with their entries (`ipset save`). */
  sets: Map<string, Set<string>>;
  device: boolean;
  /** Addresses on kube-ipvs0. */
  bound: Set<string>;
  /** Jumps present per family (`iptables-save`); undefined when not read this sync. */
  jumps?: Partial<Record<IPFamily, Set<string>>>;
}

export interface PlanStep {
  argv: string[];
  input?: string;
  /** What the step does, for logs and errors. */
  what: string;
}

export interface PlanOptions {
  config: ProxyConfig;
  /** NodePort addresses of this node (virtual servers on them are ours). */
  nodePortIPs: string[];
  /** iptables-restore binaries per family. */
  restoreBin: Record<IPFamily, string>;
  /** The iptables text applied last, per family: unchanged text is not re-applied unless `full`. */
  lastRules?: Partial<Record<IPFamily, string>>;
  /** First sync of this process: set sysctls and IPVS timeouts. */
  first: boolean;
  full: boolean;
}

export interface IpvsPlan {
  steps: PlanStep[];
  /** The iptables text per family this plan leaves in place. */
  rules: Partial<Record<IPFamily, string>>;
  /** Real servers at weight 0 still holding connections. */
  draining: string[];
  /** Virtual servers + real servers + set entries + iptables rules after the plan. */
  count: number;
  summary: { vsAdded: number; vsEdited: number; vsDeleted: number; rsAdded: number; rsEdited: number; rsDeleted: number; setAdds: number; setDels: number };
}

/** A virtual server in the kernel is ours if its address is on kube-ipvs0, a NodePort address, or one we want. */
export function ownsVirtualServer(vs: VirtualServer, kernel: KernelState, desired: IpvsDesired | undefined, nodePortIPs: string[]): boolean {
  if (kernel.bound.has(vs.ip) || desired?.bind.has(vs.ip) || nodePortIPs.map((a) => a.toLowerCase()).includes(vs.ip)) return true;
  // A NodePort virtual server on an address that is no longer a NodePort address: our NodePort sets say so.
  const f = familyOfIP(vs.ip);
  const set = (base: Parameters<typeof setName>[0]) => kernel.sets.get(setName(base, f));
  if (vs.protocol === 'TCP') return set('NODE-PORT-TCP')?.has(String(vs.port)) ?? false;
  if (vs.protocol === 'UDP') return set('NODE-PORT-UDP')?.has(String(vs.port)) ?? false;
  return set('NODE-PORT-SCTP-HASH')?.has(`${vs.ip},sctp:${vs.port}`) ?? false;
}

const gracefulProtocol = (vs: VirtualServer) => vs.protocol === 'TCP';

export function planIpvs(desired: IpvsDesired, kernel: KernelState, opts: PlanOptions): IpvsPlan {
  const steps: PlanStep[] = [];
  const summary = { vsAdded: 0, vsEdited: 0, vsDeleted: 0, rsAdded: 0, rsEdited: 0, rsDeleted: 0, setAdds: 0, setDels: 0 };
  const draining: string[] = [];
  const { config } = opts;

  if (opts.first) {
    steps.push({
      argv: ['sysctl', '-qw', 'net.ipv4.vs.conntrack=1', 'net.ipv4.vs.expire_nodest_conn=1', 'net.ipv4.vs.expire_quiescent_template=1', 'net.ipv4.ip_forward=1'],
      what: 'set the sysctls ipvs mode needs',
    });
    const { tcpTimeoutSeconds: tcp, udpTimeoutSeconds: udp } = config.ipvs;
    // 0 keeps the kernel's current value, as `ipvsadm --set` defines it.
    if (tcp > 0 || udp > 0) steps.push({ argv: ['ipvsadm', '--set', String(tcp), '0', String(udp)], what: 'set IPVS connection timeouts' });
  }
  if (!kernel.device) steps.push({ argv: ['ip', 'link', 'add', DUMMY_DEVICE, 'type', 'dummy'], what: `create ${DUMMY_DEVICE}` });

  const sets = ipsetRestoreInput(desired.sets, kernel.sets);
  summary.setAdds = sets.adds;
  summary.setDels = sets.dels;
  if (sets.text) steps.push({ argv: ['ipset', '-exist', 'restore'], input: sets.text, what: 'update ipsets' });

  const bindAdds = [...desired.bind].filter((a) => !kernel.bound.has(a)).sort();
  const bindDels = [...kernel.bound].filter((a) => !desired.bind.has(a)).sort();
  const prefix = (a: string) => (familyOfIP(a) === 4 ? `${a}/32` : `${a}/128`);
  if (bindAdds.length) {
    const input = bindAdds.map((a) => `addr add ${prefix(a)} dev ${DUMMY_DEVICE}${familyOfIP(a) === 6 ? ' nodad' : ''}`).join('\n') + '\n';
    steps.push({ argv: ['ip', '-batch', '-'], input, what: `bind service addresses to ${DUMMY_DEVICE}` });
  }

  // Virtual servers and real servers: additions and edits first, removals last.
  const head: string[] = [];
  const reals: string[] = [];
  const tail: string[] = [];
  for (const [key, want] of desired.services) {
    const have = kernel.services.get(key);
    if (!have) {
      head.push(addServiceLine(want));
      summary.vsAdded++;
      for (const rs of want.realServers.values()) {
        reals.push(addRealLine(want, rs));
        summary.rsAdded++;
      }
      continue;
    }
    if (attributesDiffer(want, have)) {
      head.push(editServiceLine(want));
      summary.vsEdited++;
    }
    for (const [rk, rs] of want.realServers) {
      const cur = have.realServers.get(rk);
      if (!cur) {
        reals.push(addRealLine(want, rs));
        summary.rsAdded++;
      } else if (cur.weight !== rs.weight) {
        reals.push(editRealLine(want, rs));
        summary.rsEdited++;
      }
    }
    for (const [rk, cur] of have.realServers) {
      if (want.realServers.has(rk)) continue;
      const conns = cur.activeConns + cur.inactiveConns;
      if (gracefulProtocol(have) && conns > 0) {
        draining.push(`${key}->${rk}`);
        if (cur.weight !== 0) {
          reals.push(editRealLine(have, { ...cur, weight: 0 }));
          summary.rsEdited++;
        }
      } else {
        tail.push(deleteRealLine(have, cur));
        summary.rsDeleted++;
      }
    }
  }
  for (const [key, have] of kernel.services) {
    if (desired.services.has(key) || !ownsVirtualServer(have, kernel, desired, opts.nodePortIPs)) continue;
    tail.push(deleteServiceLine(have));
    summary.vsDeleted++;
  }
  const ipvsLines = [...head, ...reals, ...tail];
  if (ipvsLines.length) steps.push({ argv: ['ipvsadm', '-R'], input: ipvsLines.join('\n') + '\n', what: 'update IPVS virtual and real servers' });

  const rules: Partial<Record<IPFamily, string>> = {};
  let ruleCount = 0;
  for (const f of desired.families) {
    const missing = kernel.jumps?.[f] ? JUMPS.filter((j) => !kernel.jumps![f]!.has(jumpId(j))) : [];
    const steady = renderIptables(desired, f, config);
    rules[f] = steady;
    ruleCount += steady.split('\n').filter((l) => l.startsWith('-A ')).length;
    if (!opts.full && !missing.length && opts.lastRules?.[f] === steady) continue;
    const text = missing.length ? renderIptables(desired, f, config, missing) : steady;
    steps.push({ argv: [opts.restoreBin[f], '-w', '5', '--noflush'], input: text, what: `write ${f === 4 ? 'iptables' : 'ip6tables'} rules` });
  }

  if (bindDels.length) {
    const input = bindDels.map((a) => `addr del ${prefix(a)} dev ${DUMMY_DEVICE}`).join('\n') + '\n';
    steps.push({ argv: ['ip', '-batch', '-'], input, what: `unbind addresses from ${DUMMY_DEVICE}` });
  }

  let count = ruleCount;
  for (const vs of desired.services.values()) count += 1 + vs.realServers.size;
  for (const s of desired.sets.values()) count += s.size;
  count += draining.length;
  return { steps, rules, draining, count, summary };
}
