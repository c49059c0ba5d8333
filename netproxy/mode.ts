/**
 * Chooses the proxy mode: the configured one, or nftables when the kernel supports what keelson's
 * nftables ruleset needs, otherwise iptables. Probes only with `nft --check`, which validates a
 * transaction in the kernel and aborts it, so nothing is left behind.
 */
import pino, { type Logger } from 'pino';
import type { Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { defaultProxyConfig, type ProxyMode } from './config';
import { createProxyState } from './desiredstate';
import { ProxyError, ProxyErrorCodes } from './errors';
import type { CommandRunner } from './exec';
import { createNftPlanner } from './nftables/backend';
import { TABLE } from './nftables/render';

export const PROBE_TABLE = 'keelson-probe';
const PROBE_NODE = 'probe-node';

/**
 * Services whose rendering uses every kind of statement the real ruleset has: the base table of
 * both families (per-protocol endpoint maps typed `tcp dport`/`udp dport`/`sctp dport`, verdict
 * maps, fib, ct status, masquerade fully-random, tcp reset), the shared pick chains with
 * `numgen random mod N [offset M] map @endpoints-<proto>`, the externalTrafficPolicy: Local
 * short-circuit, ClientIP affinity (dynamic map with timeouts, `update @map`, `dnat ... map`) and
 * a loadBalancerSourceRanges firewall chain.
 */
function probeObjects(): { services: Service[]; slices: EndpointSlice[] } {
  const lb = (...ips: string[]) => ({ status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } });
  const svc = (name: string, ips: string[], ports: object[], spec: object = {}, extra: object = {}): Service => ({
    metadata: { namespace: 'probe', name },
    spec: { type: 'ClusterIP', clusterIP: ips[0], clusterIPs: ips, ipFamilies: ips.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')), ports: ports as never, ...spec },
    ...extra,
  });
  const eps = (name: string, family: 'IPv4' | 'IPv6', ips: [string, string][], ports: { name: string; port: number; protocol: string }[]): EndpointSlice => ({
    metadata: { namespace: 'probe', name: `${name}-${family}`, labels: { 'kubernetes.io/service-name': name } },
    addressType: family,
    endpoints: ips.map(([ip, node]) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: node })),
    ports: ports as never,
  });
  const ports = [
    { name: 't', port: 80, protocol: 'TCP', nodePort: 30080 },
    { name: 'u', port: 53, protocol: 'UDP', nodePort: 30053 },
    { name: 's', port: 9, protocol: 'SCTP', nodePort: 30009 },
  ];
  const targets = ports.map((p) => ({ name: p.name, port: p.port + 8000, protocol: p.protocol }));
  const v4: [string, string][] = [['10.0.0.2', PROBE_NODE], ['10.0.1.2', 'other']];
  const v6: [string, string][] = [['fd00::2', PROBE_NODE], ['fd00:1::2', 'other']];
  return {
    services: [
      svc('local', ['10.96.0.1', 'fd00::1'], ports, { type: 'LoadBalancer', externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.1'], loadBalancerSourceRanges: ['192.0.2.0/24', 'fd01::/64'] }, lb('192.0.2.2', 'fd01::2')),
      svc('sticky', ['10.96.0.2', 'fd00::2'], ports, { type: 'NodePort', sessionAffinity: 'ClientIP' }),
      svc('empty', ['10.96.0.3', 'fd00::3'], ports, { type: 'NodePort' }),
    ],
    slices: ['local', 'sticky'].flatMap((name) => [eps(name, 'IPv4', v4, targets), eps(name, 'IPv6', v6, targets)]),
  };
}

/** The probe transaction: a first full sync of the real renderer, into a table of its own. */
export function nftablesProbe(): string {
  const state = createProxyState({ nodeName: PROBE_NODE, logger: pino({ level: 'silent' }) });
  const { services, slices } = probeObjects();
  for (const s of services) state.recordService(undefined, s);
  for (const s of slices) state.recordEndpointSlice(undefined, s);
  const built = state.build(true);
  const config = { ...structuredClone(defaultProxyConfig), clusterCIDR: ['10.0.0.0/16', 'fd00::/48'] };
  const planner = createNftPlanner({ config, nodeIPs: ['192.0.2.10', 'fd01::10'] });
  const text = planner.plan({ state: built.state, changed: built.changed, full: true }).transaction.text;
  // Its own table name: a check against keelson's live table (or an older version of it) must not
  // depend on what that table holds.
  return text.replaceAll(` ${TABLE} `, ` ${PROBE_TABLE} `).replaceAll(` ${TABLE}\n`, ` ${PROBE_TABLE}\n`);
}

let probeText: string | undefined;

export async function nftablesSupported(exec: CommandRunner): Promise<{ ok: boolean; reason?: string }> {
  try {
    probeText ??= nftablesProbe();
    const res = await exec(['nft', '--check', '-f', '-'], { input: probeText });
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
