/**
 * The ipvs backend (applier): reads what the kernel holds (`ipvsadm -Ln`, `ipset save`,
 * `ip -o addr show dev kube-ipvs0`, and `iptables-save` on full syncs), asks the planner for the
 * commands that reach the desired state, and runs them in order through the injected runner.
 * Reading the kernel every sync keeps it stateless across restarts and gives graceful termination
 * fresh connection counts.
 */
import type { BackendContext, ProxyBackend } from '../backend';
import { ProxyError, ProxyErrorCodes } from '../errors';
import { run, type CommandRunner } from '../exec';
import { detectIptablesVariant, type IptablesVariant } from '../mode';
import type { IPFamily } from '../serviceport';
import { buildIpvsDesired, nodeFamilies, nodePortIPs } from './desired';
import { ownedSets, parseIpsetSave } from './ipset';
import { DUMMY_DEVICE, ownsVirtualServer, planIpvs, type IpvsPlan, type KernelState } from './planner';
import { presentJumps, renderIptablesCleanup } from './rules';
import { deleteServiceLine, parseIpvsadmList } from './virtualserver';

export const restoreBin = (v: IptablesVariant): Record<IPFamily, string> => ({ 4: `iptables-${v}-restore`, 6: `ip6tables-${v}-restore` });
export const saveBin = (v: IptablesVariant): Record<IPFamily, string> => ({ 4: `iptables-${v}-save`, 6: `ip6tables-${v}-save` });

/** Addresses on kube-ipvs0 from `ip -o addr show`; IPv6 link-local ones (present if the device is up) are not ours. */
export function parseBoundAddresses(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/\binet6? ([0-9a-fA-F:.]+)\/\d+/g)) {
    const a = m[1]!.toLowerCase();
    if (!/^fe[89ab][0-9a-f]:/.test(a)) out.add(a);
  }
  return out;
}

async function readDevice(exec: CommandRunner): Promise<{ device: boolean; bound: Set<string> }> {
  const res = await exec(['ip', '-o', 'addr', 'show', 'dev', DUMMY_DEVICE]);
  if (res.code === 0) return { device: true, bound: parseBoundAddresses(res.stdout) };
  if (/does not exist/i.test(res.stderr)) return { device: false, bound: new Set() };
  throw new ProxyError(ProxyErrorCodes.COMMAND_FAILED, `ip addr show dev ${DUMMY_DEVICE} exited ${res.code}: ${res.stderr.trim()}`, { object: DUMMY_DEVICE });
}

export interface ReadOptions {
  families: IPFamily[];
  variant: IptablesVariant;
  withIptables: boolean;
}

/** Reads the kernel state the planner diffs against. */
export async function readKernelState(exec: CommandRunner, opts: ReadOptions): Promise<KernelState> {
  const services = parseIpvsadmList(await run(exec, ['ipvsadm', '-Ln']));
  const sets = parseIpsetSave(await run(exec, ['ipset', 'save']));
  const { device, bound } = await readDevice(exec);
  const state: KernelState = { services, sets, device, bound };
  if (opts.withIptables) {
    state.jumps = {};
    for (const f of opts.families) state.jumps[f] = presentJumps(await run(exec, [saveBin(opts.variant)[f]]));
  }
  return state;
}

export function createIpvsBackend(ctx: BackendContext): ProxyBackend & { lastPlan(): IpvsPlan | undefined } {
  const { exec, logger, config } = ctx;
  const families = nodeFamilies(ctx.nodeIPs);
  let first = true;
  let variant: IptablesVariant | undefined;
  let lastRules: IpvsPlan['rules'] | undefined;
  let last: IpvsPlan | undefined;
  let reportedConflicts = '';
  let reportedDraining = 0;

  return {
    mode: 'ipvs',
    async sync(request) {
      const full = request.full || first;
      variant ??= await detectIptablesVariant(exec);
      // Every sync diffs against what the kernel holds, so drift in IPVS, ipsets and kube-ipvs0 is
      // repaired in place; the periodic consistency sync (`verify`) also re-reads the iptables jumps.
      const kernel = await readKernelState(exec, { families, variant, withIptables: full || request.verify === true });
      const desired = buildIpvsDesired(request.state, ctx);
      const conflicts = desired.conflicts.map((c) => `${c.service} ${c.frontend} ${c.owner}`).join('|');
      if (conflicts !== reportedConflicts) {
        for (const c of desired.conflicts) {
          logger.warn({ service: c.service, frontend: c.frontend, owner: c.owner, code: ProxyErrorCodes.SERVICE_INVALID }, 'service frontend already used by another service; skipped');
        }
        reportedConflicts = conflicts;
      }
      const plan = planIpvs(desired, kernel, {
        config, nodePortIPs: nodePortIPs(ctx), restoreBin: restoreBin(variant), first, full,
        ...(lastRules ? { lastRules } : {}),
      });
      last = plan;
      for (const step of plan.steps) {
        try {
          await run(exec, step.argv, step.input);
        } catch (err) {
          lastRules = undefined; // rewrite every chain next time
          throw new ProxyError(ProxyErrorCodes.SYNC_FAILED, `ipvs sync failed to ${step.what}: ${(err as Error).message}`, { object: step.argv[0], cause: err });
        }
      }
      first = false;
      lastRules = plan.rules;
      if (plan.draining.length !== reportedDraining) {
        logger.info({ draining: plan.draining.length }, 'ipvs real servers draining (weight 0 until their connections end)');
        reportedDraining = plan.draining.length;
      }
      return { rules: plan.count };
    },
    cleanup: () => cleanupIpvs(exec, { nodeIPs: ctx.nodeIPs }),
    lastPlan: () => last,
  };
}

/**
 * Removes everything ipvs mode owns: its virtual servers, kube-ipvs0, its iptables jumps and
 * chains (both families), then its ipsets (last: iptables rules reference them). Parts the host
 * lacks (no IPVS, no ip6tables) are skipped; other failures are reported after trying the rest.
 */
export async function cleanupIpvs(exec: CommandRunner, options: { nodeIPs?: string[] } = {}): Promise<void> {
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  const setsRes = await exec(['ipset', 'save']).catch(() => undefined);
  const sets = setsRes && setsRes.code === 0 ? parseIpsetSave(setsRes.stdout) : new Map<string, Set<string>>();
  const dev = await readDevice(exec).catch(() => ({ device: false, bound: new Set<string>() }));
  const list = await exec(['ipvsadm', '-Ln']).catch(() => undefined);
  if (list && list.code === 0) {
    const kernel: KernelState = { services: parseIpvsadmList(list.stdout), sets, ...dev };
    const dels = [...kernel.services.values()].filter((vs) => ownsVirtualServer(vs, kernel, undefined, options.nodeIPs ?? [])).map(deleteServiceLine);
    if (dels.length) await attempt('delete virtual servers', () => run(exec, ['ipvsadm', '-R'], dels.join('\n') + '\n'));
  }
  if (dev.device) await attempt(`delete ${DUMMY_DEVICE}`, () => run(exec, ['ip', 'link', 'del', DUMMY_DEVICE]));
  const variant = await detectIptablesVariant(exec);
  for (const f of [4, 6] as const) {
    const save = await exec([saveBin(variant)[f]]).catch(() => undefined);
    if (!save || save.code !== 0) continue;
    const text = renderIptablesCleanup(save.stdout);
    if (text) await attempt(`remove ${f === 4 ? 'iptables' : 'ip6tables'} rules`, () => run(exec, [restoreBin(variant)[f], '-w', '5', '--noflush'], text));
  }
  const destroy = ownedSets().filter((s) => sets.has(s.name)).map((s) => `destroy ${s.name}`);
  if (destroy.length) await attempt('destroy ipsets', () => run(exec, ['ipset', 'restore'], destroy.join('\n') + '\n'));
  if (errors.length) throw new ProxyError(ProxyErrorCodes.COMMAND_FAILED, `ipvs cleanup incomplete: ${errors.join('; ')}`, { object: 'mode=ipvs' });
}
