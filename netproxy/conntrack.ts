/**
 * Stale UDP flows: conntrack keeps sending a UDP "connection" to an endpoint that is gone, or keeps
 * the rejected state of a Service that had no endpoints. Delete them with the conntrack CLI.
 */
import type { Logger } from 'pino';
import type { ServicePortState } from './desiredstate';
import type { CommandRunner } from './exec';

/** conntrack(8) commands that remove the flows made stale by the change previous → current. */
export function staleFlowCommands(previous: ServicePortState[] | undefined, current: ServicePortState[] | undefined): string[][] {
  const cmds: string[][] = [];
  const now = new Map((current ?? []).map((p) => [p.id, p]));
  for (const before of previous ?? []) {
    if (before.protocol !== 'UDP') continue;
    const after = now.get(before.id);
    const fam = before.family === 6 ? ['-f', 'ipv6'] : [];
    const frontends = [before.clusterIP, ...before.externalIPs, ...before.loadBalancerIPs];
    const stillServing = new Set((after?.serving ?? []).map((e) => `${e.ip}:${e.port}`));
    for (const ep of before.serving) {
      if (stillServing.has(`${ep.ip}:${ep.port}`)) continue;
      for (const ip of frontends) cmds.push(['conntrack', '-D', ...fam, '-p', 'udp', '--orig-dst', ip, '--dst-nat', ep.ip]);
      if (before.nodePort !== undefined) cmds.push(['conntrack', '-D', ...fam, '-p', 'udp', '--orig-port-dst', String(before.nodePort), '--dst-nat', ep.ip]);
    }
  }
  // A Service port that had nothing to forward to and now has: flows cached while it rejected.
  for (const after of current ?? []) {
    if (after.protocol !== 'UDP') continue;
    const before = (previous ?? []).find((p) => p.id === after.id);
    const fam = after.family === 6 ? ['-f', 'ipv6'] : [];
    const had = (t: 'internal' | 'external') => before !== undefined && before[t].verdict === 'forward';
    if (after.internal.verdict === 'forward' && !had('internal')) {
      cmds.push(['conntrack', '-D', ...fam, '-p', 'udp', '--orig-dst', after.clusterIP, '--orig-port-dst', String(after.port)]);
    }
    if (after.external.verdict === 'forward' && !had('external')) {
      for (const ip of [...after.externalIPs, ...after.loadBalancerIPs]) cmds.push(['conntrack', '-D', ...fam, '-p', 'udp', '--orig-dst', ip, '--orig-port-dst', String(after.port)]);
      if (after.nodePort !== undefined) cmds.push(['conntrack', '-D', ...fam, '-p', 'udp', '--orig-port-dst', String(after.nodePort)]);
    }
  }
  return cmds;
}

/**
 * Command runners whose conntrack cleanup is failing (no conntrack tool, no permission): such a
 * failure repeats on every UDP endpoint change, so it is a warning once, then debug lines, and an
 * info line when a cleanup works again.
 */
const failingRunners = new WeakSet<CommandRunner>();

export async function clearStaleFlows(exec: CommandRunner, logger: Logger, service: string, cmds: string[][]): Promise<void> {
  for (const cmd of cmds) {
    const res = await exec(cmd).catch((e: Error) => ({ code: -1, stderr: e.message, stdout: '' }));
    // conntrack exits 1 when nothing matched: not an error.
    if (res.code !== 0 && !/0 flow entries have been deleted/.test(res.stderr)) {
      const first = !failingRunners.has(exec);
      failingRunners.add(exec);
      logger[first ? 'warn' : 'debug']({ service, command: cmd.join(' '), err: res.stderr.trim() }, first ? 'conntrack cleanup failed' : 'conntrack cleanup failed again');
    } else if (failingRunners.delete(exec)) {
      logger.info({ service }, 'conntrack cleanup works again');
    }
  }
}
