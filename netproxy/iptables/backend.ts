/**
 * The iptables backend: kube-proxy's chain structure applied with `iptables-restore --noflush`
 * (and `ip6tables-restore`), using whichever iptables the host uses (nft or legacy variant).
 *
 * A full sync (rewrite of every chain netproxy owns) happens when the proxy core asks for one (first
 * sync, after a failure or drift, hourly: netproxy/syncrunner.ts) and whenever this backend does not
 * know what the kernel holds (its first sync, after its own failure). The core's periodic resyncs
 * (`verify`) check upstream's canary chain and report drift when someone flushed the tables; partial
 * syncs carry a canary guard in the transaction, so they fail (and the core repairs with a full
 * sync at once) when our chains vanished under them.
 */
import type { BackendContext, ProxyBackend, SyncRequest } from '../backend';
import { run } from '../exec';
import { detectIptablesVariant, type IptablesVariant } from '../mode';
import { KUBE_PROXY_CANARY, isOwnedChain } from './chains';
import { createIptablesPlanner, parseSave, type Observed } from './planner';
import { localhostNodePorts, type Family } from './render';

export interface IptablesBackendOptions {
  /** Skip detection and use this variant. */
  variant?: IptablesVariant;
}

export interface IptablesBinaries {
  restore: string;
  save: string;
  iptables: string;
}

export function binaries(variant: IptablesVariant, family: Family): IptablesBinaries {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  return { restore: `${base}-${variant}-restore`, save: `${base}-${variant}-save`, iptables: `${base}-${variant}` };
}

export type IptablesBackend = ProxyBackend & {
  lastSyncWasFull(): boolean;
  variant(): IptablesVariant | undefined;
};

export function createIptablesBackend(ctx: BackendContext, options: IptablesBackendOptions = {}): IptablesBackend {
  const { exec, logger } = ctx;
  const log = logger.child({ backend: 'iptables' });
  const planner = createIptablesPlanner({ config: ctx.config, nodeIPs: ctx.nodeIPs });
  let variant: IptablesVariant | undefined = options.variant;
  let families: Family[] = [4, 6];
  let needFull = true;
  let lastRules = 0;
  let lastWasFull = false;

  async function ensureVariant(): Promise<IptablesVariant> {
    if (variant) return variant;
    variant = await detectIptablesVariant(exec);
    log.info({ variant }, `iptables variant ${variant} chosen (${variant === 'nft' ? 'default, or the host keeps its rules there' : 'the host keeps its rules there'})`);
    return variant;
  }

  async function observe(v: IptablesVariant): Promise<Map<Family, Observed>> {
    const out = new Map<Family, Observed>();
    for (const f of families) {
      const res = await exec([binaries(v, f).save]).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
      if (res.code !== 0) {
        if (f === 6) {
          log.warn({ variant: v, reason: res.stderr.trim().slice(0, 200) }, 'ip6tables unavailable: IPv6 services are not proxied');
          families = families.filter((x) => x !== 6);
          continue;
        }
        throw new Error(`${binaries(v, f).save} exited ${res.code}: ${res.stderr.trim().slice(0, 500)}`);
      }
      out.set(f, parseSave(res.stdout));
    }
    return out;
  }

  /** Upstream's canary: an empty chain in mangle that a flush of the tables removes. */
  async function canaryPresent(v: IptablesVariant): Promise<boolean> {
    for (const f of families) {
      const res = await exec([binaries(v, f).iptables, '-w', '5', '-t', 'mangle', '-S', KUBE_PROXY_CANARY]).catch(() => ({ code: -1 }));
      if (res.code !== 0) return false;
    }
    return true;
  }

  let localnetDone = false;
  /** NodePorts on 127.0.0.1 need the kernel to route loopback-addressed packets (kube-proxy does the same). */
  async function enableRouteLocalnet(): Promise<void> {
    localnetDone = true;
    const res = await exec(['sysctl', '-w', 'net.ipv4.conf.all.route_localnet=1']).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
    if (res.code === 0) log.info('net.ipv4.conf.all.route_localnet=1 set for NodePorts on localhost (iptables.localhostNodePorts)');
    else log.warn({ reason: res.stderr.trim().slice(0, 200) }, 'cannot set net.ipv4.conf.all.route_localnet=1: NodePorts on localhost will not work');
  }

  async function apply(v: IptablesVariant, request: SyncRequest, full: boolean): Promise<number> {
    const observed = full ? await observe(v) : undefined;
    const plan = planner.plan({ state: request.state, changed: request.changed, full }, families, observed);
    lastWasFull = full;
    for (const p of plan.families) {
      if (!p.text) continue;
      await run(exec, [binaries(v, p.family).restore, '-w', '5', '--noflush'], p.text);
    }
    plan.commit();
    return plan.rules;
  }

  return {
    mode: 'iptables',
    async sync(request) {
      const v = await ensureVariant();
      if (!localnetDone && families.includes(4) && localhostNodePorts(4, ctx)) await enableRouteLocalnet();
      const full = needFull || request.full;
      if (!full && request.verify && !(await canaryPresent(v))) {
        return { rules: lastRules, drift: `iptables canary chain ${KUBE_PROXY_CANARY} is gone (tables flushed by someone else)` };
      }
      try {
        lastRules = await apply(v, request, full);
        needFull = false;
        return { rules: lastRules, rewrote: full };
      } catch (err) {
        // Partial: our chains vanished under it (the canary guard) or a rule we delete is gone.
        // Either way the next sync must rewrite everything, from what iptables-save shows.
        needFull = true;
        planner.reset();
        if (!full) log.warn({ variant: v, err: (err as Error).message.slice(0, 300) }, `partial iptables sync failed (its canary guard fails when someone flushed our chains): the next sync is full`);
        throw err;
      }
    },
    async cleanup() {
      await cleanupIptables(exec, log, { variants: [await ensureVariant()] });
    },
    lastSyncWasFull: () => lastWasFull,
    variant: () => variant,
  };
}

/**
 * Removes every chain and jump rule netproxy owns, in both families and (unless told otherwise)
 * both variants whose tools exist. Only KUBE-* chains kube-proxy's iptables mode defines are
 * touched (never kubelet's KUBE-FIREWALL or KUBE-MARK-DROP).
 */
export async function cleanupIptables(
  exec: BackendContext['exec'],
  logger: BackendContext['logger'],
  options: { variants?: IptablesVariant[] } = {},
): Promise<void> {
  for (const v of options.variants ?? (['nft', 'legacy'] as IptablesVariant[])) {
    for (const f of [4, 6] as Family[]) {
      const bin = binaries(v, f);
      const saved = await exec([bin.save]).catch(() => undefined);
      if (!saved || saved.code !== 0) continue; // this variant or family is not available
      const text = cleanupRestore(parseSave(saved.stdout));
      if (!text) continue;
      await run(exec, [bin.restore, '-w', '5', '--noflush'], text);
      logger.info({ variant: v, family: f }, 'iptables proxy rules removed');
    }
  }
}

/** Restore input that unlinks and deletes everything netproxy owns ('' when nothing is there). */
export function cleanupRestore(observed: Observed): string {
  const out: string[] = [];
  for (const table of ['mangle', 'filter', 'nat']) {
    const chains = [...(observed.chains.get(table) ?? [])].filter((c) => isOwnedChain(table, c));
    const unlink = observed.builtinRules.filter((r) => r.table === table && isOwnedChain(table, r.target));
    if (!chains.length && !unlink.length) continue;
    out.push(`*${table}`);
    for (const c of chains) out.push(`:${c} - [0:0]`);
    for (const r of unlink) out.push(`-D ${r.chain} ${r.rule}`);
    for (const c of chains) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  return out.length ? out.join('\n') + '\n' : '';
}
