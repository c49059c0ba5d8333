/**
 * Forwarding loops: keelson's DNS forwards names outside the cluster to the host's nameservers. If
 * those lead back to keelson itself (resolv.conf naming the node-local address, or systemd-resolved
 * configured with it behind its 127.0.0.53 stub) every external query circles until it times out.
 * Also: pods with dnsPolicy Default get kubelet's resolvConf, where the 127.0.0.53 stub is unreachable.
 */
import { canonicalIP } from '../../dns/ip';
import { parseResolvConf, SYSTEMD_RESOLV_CONF, SYSTEMD_STUB } from '../../dns/resolvconf';
import { fail, ok, warn, type CheckResult, type DoctorCheck, type DoctorContext } from './check';

function read(ctx: DoctorContext, path: string): string[] | undefined {
  try {
    return parseResolvConf(ctx.readFile(path === SYSTEMD_RESOLV_CONF ? ctx.paths.systemdResolvConf : path));
  } catch {
    return undefined;
  }
}

function isStub(ip: string): boolean {
  return ip === SYSTEMD_STUB || ip === '127.0.0.54';
}

function forwarding(ctx: DoctorContext): CheckResult {
  const name = 'dns forwarding';
  const { dns } = ctx;
  if (!ctx.config.components.includes('dns')) return ok(name, 'dns component not enabled');
  if (!dns.forward) return ok(name, 'forwarding disabled (dns.forward: false)');
  const own = new Set([...dns.listen, ...ctx.config.kubelet.clusterDNS].map((ip) => canonicalIP(ip) ?? ip));
  const ownPort = dns.port === 53;
  const loopFix = (file: string) => `set dns.upstreams in /etc/keelson/config.yaml to the real resolvers (e.g. your router or ISP), or remove keelson's addresses (${[...own].join(', ')}) from ${file}`;
  if (dns.upstreams.length) {
    const loops = dns.upstreams.filter((u) => {
      const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(u);
      const ip = m ? canonicalIP(m[1]!) ?? m[1]! : u;
      const port = m?.[2] ? Number(m[2]) : 53;
      return own.has(ip) && port === dns.port;
    });
    if (loops.length) return fail(name, `dns.upstreams ${loops.join(', ')} is keelson's own DNS: a forwarding loop`, 'set dns.upstreams to resolvers outside this node');
    return ok(name, `forwarding to dns.upstreams ${dns.upstreams.join(', ')}`);
  }
  const file = dns.resolvConf;
  const servers = read(ctx, file);
  if (!servers) return warn(name, `cannot read ${file}: external names will not resolve`, `create ${file} or set dns.upstreams in /etc/keelson/config.yaml`);
  if (servers.length === 0) return warn(name, `${file} lists no nameserver: external names will not resolve`, `add a nameserver to ${file} or set dns.upstreams`);
  const direct = servers.filter((s) => own.has(s) && ownPort);
  if (direct.length) return fail(name, `${file} names ${direct.join(', ')}, keelson's own DNS address: forwarded queries come back to keelson (a loop)`, loopFix(file));
  if (servers.every(isStub)) {
    const behind = read(ctx, SYSTEMD_RESOLV_CONF);
    if (!behind) {
      return warn(name, `${file} names only the systemd-resolved stub ${servers.join(', ')} and ${ctx.paths.systemdResolvConf} is missing: if resolved forwards to keelson this loops`, `set dns.resolvConf: ${SYSTEMD_RESOLV_CONF} (or dns.upstreams) in /etc/keelson/config.yaml`);
    }
    const back = behind.filter((s) => own.has(s) && ownPort);
    if (back.length) {
      return fail(
        name,
        `${file} names the systemd-resolved stub ${servers.join(', ')}, and resolved forwards to ${back.join(', ')}, keelson's own DNS address: a loop through systemd-resolved`,
        `remove ${back.join(', ')} from DNS= in /etc/systemd/resolved.conf (or the interface's network config) and systemctl restart systemd-resolved; or set dns.upstreams in /etc/keelson/config.yaml`,
      );
    }
    if (behind.length === 0) return warn(name, `systemd-resolved (${ctx.paths.systemdResolvConf}) has no upstream nameserver`, 'configure DNS= in /etc/systemd/resolved.conf, or set dns.upstreams');
    return ok(name, `forwarding to ${behind.join(', ')} (behind systemd-resolved's stub)`);
  }
  return ok(name, `forwarding to ${servers.filter((s) => !isStub(s)).join(', ')} (from ${file})`);
}

function podResolvConf(ctx: DoctorContext): CheckResult {
  const name = 'pod resolv.conf';
  const file = ctx.config.kubelet.resolvConf;
  if (!file) return ok(name, 'resolvConf is "" (pods with dnsPolicy Default get no nameserver)');
  const servers = read(ctx, file);
  if (!servers) return warn(name, `cannot read resolvConf ${file}`, `create it or set resolvConf in /etc/keelson/config.yaml`);
  const stub = servers.filter((s) => s.startsWith('127.'));
  if (stub.length) {
    return warn(
      name,
      `resolvConf ${file} names ${stub.join(', ')}, a loopback address pods cannot reach (pods with dnsPolicy Default and host lookups from ClusterFirst pods fail)`,
      ctx.exists(ctx.paths.systemdResolvConf) ? `set resolvConf: ${SYSTEMD_RESOLV_CONF} in /etc/keelson/config.yaml` : 'point resolvConf in /etc/keelson/config.yaml at a file with reachable nameservers',
    );
  }
  return ok(name, `${file}: ${servers.join(', ') || 'no nameserver'}`);
}

export const resolvConfCheck: DoctorCheck = {
  name: 'resolv-conf',
  async run(ctx) {
    return [forwarding(ctx), podResolvConf(ctx)];
  },
};
