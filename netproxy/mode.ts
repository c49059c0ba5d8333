/**
 * Chooses the proxy mode: the configured one, or nftables when the kernel supports what keelson's
 * nftables ruleset needs, otherwise iptables. Probes only with `nft --check`, which validates a
 * transaction in the kernel and aborts it, so nothing is left behind.
 */
import type { Logger } from 'pino';
import type { ProxyMode } from './config';
import { ProxyError, ProxyErrorCodes } from './errors';
import type { CommandRunner } from './exec';

const PROBE = `table ip keelson-probe {
  map m {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }
  chain c {
    type nat hook prerouting priority dstnat; policy accept;
    meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @m
    fib daddr type local ip daddr != 127.0.0.0/8 counter
  }
}
`;

export async function nftablesSupported(exec: CommandRunner): Promise<{ ok: boolean; reason?: string }> {
  try {
    const res = await exec(['nft', '--check', '-f', '-'], { input: PROBE });
    return res.code === 0 ? { ok: true } : { ok: false, reason: res.stderr.trim().split('\n')[0] ?? `nft exited ${res.code}` };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** IPVS needs the ip_vs module: without it /proc/net/ip_vs does not exist. Loads it if it is only not loaded yet. */
export async function ipvsSupported(exec: CommandRunner): Promise<{ ok: boolean; reason?: string }> {
  const present = async () => (await exec(['cat', '/proc/net/ip_vs']).catch((e: Error) => ({ code: -1, stderr: e.message, stdout: '' }))).code === 0;
  if (await present()) return { ok: true };
  const load = await exec(['modprobe', '--', 'ip_vs']).catch((e: Error) => ({ code: -1, stderr: e.message, stdout: '' }));
  if (load.code === 0 && (await present())) return { ok: true };
  const why = load.code === 0 ? 'modprobe ip_vs succeeded but IPVS did not appear' : `modprobe ip_vs failed: ${load.stderr.trim().split('\n')[0] || `exit ${load.code}`}`;
  return { ok: false, reason: `/proc/net/ip_vs is missing (kernel module ip_vs not loaded or not built; ${why})` };
}

export type IptablesVariant = 'nft' | 'legacy';

/**
 * Which iptables the host uses: the variant that already holds rules wins (as the
 * iptables-wrapper convention does); with no rules anywhere, the nft variant.
 */
export async function detectIptablesVariant(exec: CommandRunner): Promise<IptablesVariant> {
  const count = async (bin: string) => {
    const res = await exec([bin]).catch(() => undefined);
    if (!res || res.code !== 0) return -1;
    return res.stdout.split('\n').filter((l) => l.startsWith('-A') || (l.startsWith(':') && !/^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /.test(l))).length;
  };
  const [legacy, nft] = await Promise.all([count('iptables-legacy-save'), count('iptables-nft-save')]);
  if (nft < 0 && legacy >= 0) return 'legacy';
  return legacy > nft ? 'legacy' : 'nft';
}

export async function chooseMode(configured: ProxyMode | '', exec: CommandRunner, logger: Logger): Promise<ProxyMode> {
  if (configured === 'ipvs') {
    const ipvs = await ipvsSupported(exec);
    if (!ipvs.ok) {
      const nft = await nftablesSupported(exec);
      const fallback = nft.ok ? 'nftables' : 'iptables';
      throw new ProxyError(
        ProxyErrorCodes.MODE_UNSUPPORTED,
        `proxy mode ipvs is not available: ${ipvs.reason}; set proxy.mode to ${fallback} (supported on this kernel)`,
        { object: 'mode=ipvs' },
      );
    }
    logger.info({ mode: 'ipvs' }, 'proxy mode chosen by configuration');
    return 'ipvs';
  }
  if (configured) {
    logger.info({ mode: configured }, 'proxy mode chosen by configuration');
    return configured;
  }
  const nft = await nftablesSupported(exec);
  if (nft.ok) {
    logger.info({ mode: 'nftables' }, 'proxy mode nftables chosen: the kernel supports it');
    return 'nftables';
  }
  logger.info({ mode: 'iptables', reason: nft.reason }, 'proxy mode iptables chosen: nftables unavailable');
  return 'iptables';
}
