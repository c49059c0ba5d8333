/**
 * iptables variant mismatch: the legacy (x_tables) and nft backends of iptables keep separate rule
 * sets that both apply to packets, and each `iptables` binary shows only its own. When both hold
 * rules, some tool on the host (Docker, a firewall script, an older kube-proxy) uses the other
 * variant than the rest, and rules seem to vanish. keelson picks the variant that holds rules
 * (netproxy/mode.ts, as the iptables-wrapper convention does).
 */
import { detectIptablesVariant, nftablesSupported } from '../../netproxy/mode';
import { fail, ok, warn, type DoctorCheck } from './check';
import type { CommandRunner } from '../../netproxy/exec';

/** Rules and user chains in an iptables-save dump (the built-in chains' policy lines do not count). */
export function countSavedRules(dump: string): number {
  return dump.split('\n').filter((l) => l.startsWith('-A') || (l.startsWith(':') && !/^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /.test(l))).length;
}

async function count(exec: CommandRunner, bin: string): Promise<number | undefined> {
  const res = await exec([bin]).catch(() => undefined);
  return res && res.code === 0 ? countSavedRules(res.stdout) : undefined;
}

export const iptablesCheck: DoctorCheck = {
  name: 'iptables',
  async run(ctx) {
    const name = 'iptables variant';
    const [legacy, nft] = await Promise.all([count(ctx.exec, 'iptables-legacy-save'), count(ctx.exec, 'iptables-nft-save')]);
    if (legacy === undefined && nft === undefined) {
      return warn(name, 'neither iptables-legacy-save nor iptables-nft-save runs', 'apt-get install iptables (the iptables proxy mode and the masquerade rules need it)');
    }
    const chosen = await detectIptablesVariant(ctx.exec);
    const version = await ctx.exec(['iptables', '--version']).catch(() => undefined);
    const hostDefault = version?.code === 0 ? (/nf_tables/.test(version.stdout) ? 'nft' : /legacy/.test(version.stdout) ? 'legacy' : undefined) : undefined;
    const counts = `legacy: ${legacy ?? 'n/a'} rules, nft: ${nft ?? 'n/a'} rules`;
    if ((legacy ?? 0) > 0 && (nft ?? 0) > 0) {
      let mode = ctx.proxy.mode;
      if (mode === '') mode = (await nftablesSupported(ctx.exec)).ok ? 'nftables' : 'iptables';
      const unused = chosen === 'nft' ? 'legacy' : 'nft';
      const detail = `rules in both iptables variants (${counts}); keelson would use iptables-${chosen}, tools using iptables-${unused} will not see its rules`;
      const fix = `find which tool writes iptables-${unused} rules (iptables-${unused}-save), move it to iptables-${chosen} (update-alternatives --set iptables /usr/sbin/iptables-${chosen}; restart that tool), then flush the stale ones (iptables-${unused} -F; iptables-${unused} -t nat -F; iptables-${unused} -t mangle -F)`;
      return mode === 'iptables' || mode === 'ipvs' ? fail(name, detail, fix) : warn(name, `${detail} (proxy mode ${mode} is not affected)`, fix);
    }
    if (hostDefault && hostDefault !== chosen && ((chosen === 'nft' ? nft : legacy) ?? 0) > 0) {
      return warn(
        name,
        `the host's iptables command is the ${hostDefault} variant but the rules are in iptables-${chosen} (${counts}): 'iptables -L' shows none of them`,
        `update-alternatives --set iptables /usr/sbin/iptables-${chosen} (and ip6tables likewise)`,
      );
    }
    return ok(name, `iptables-${chosen} (${counts}${hostDefault ? `; iptables command: ${hostDefault}` : ''})`);
  },
};
