/** IPVS availability, checked only when proxy.mode is ipvs (the same probe the proxy runs at start). */
import { ipvsSupported, nftablesSupported } from '../../netproxy/mode';
import { fail, ok, type DoctorCheck } from './check';

export const ipvsCheck: DoctorCheck = {
  name: 'ipvs',
  async run(ctx) {
    const name = 'ipvs';
    if (ctx.proxy.mode !== 'ipvs') return ok(name, `proxy mode is ${ctx.proxy.mode || 'auto (nftables or iptables)'}: IPVS not needed`);
    const res = await ipvsSupported(ctx.exec);
    if (res.ok) return ok(name, 'IPVS available (/proc/net/ip_vs)');
    const nft = await nftablesSupported(ctx.exec);
    return fail(
      name,
      `proxy.mode is ipvs but ${res.reason}`,
      `load it (modprobe ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh; persist in /etc/modules-load.d/keelson.conf; a kernel without CONFIG_IP_VS cannot), or set proxy.mode: ${nft.ok ? 'nftables' : 'iptables'} in /etc/keelson/config.yaml (supported on this kernel)`,
    );
  },
};

