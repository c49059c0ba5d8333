/**
 * Pod network out of the box (what kubenet did): when the node has a pod CIDR and the runtime's CNI
 * config folder holds no network config, write one bridge network for it —
 *   bridge (cni0, gateway, IP masquerade, hairpin) + host-local IPAM over the pod CIDR + portmap
 * — as `10-keelson-bridge.conflist`. An existing config (any .conf, .conflist or .json file) is
 * never overwritten or shadowed: keelson then stays out of the way. Loopback is not chained here:
 * the CRI runtime sets up `lo` itself with the loopback plugin, and a loopback plugin after bridge
 * would replace the pod's eth0 result with 127.0.0.1; keelson only warns if that plugin is missing.
 */
import { access, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PodRuntime, RuntimeStatus } from './runtime';
import { errorMessage } from '../errors';

export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_BIN_DIRS = ['/opt/cni/bin', '/usr/lib/cni'];
export const KEELSON_CNI_FILE = '10-keelson-bridge.conflist';
const CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'];

export interface BridgeConfigInput {
  podCIDR: string;
  /** Bridge device (default cni0). */
  bridge?: string;
  /** host-local's lease folder (default the plugin's /var/lib/cni/networks). */
  ipamDataDir?: string;
  mtu?: number;
}

const IPV4_CIDR = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/(3[0-2]|[12]?\d)$/;
const IPV6_CIDR = /^[0-9a-fA-F:]+:[0-9a-fA-F:]*\/(12[0-8]|1[01]\d|[1-9]?\d)$/;

export function isValidCidr(cidr: string): boolean {
  return IPV4_CIDR.test(cidr) || IPV6_CIDR.test(cidr);
}

/** The conflist text for the node's pod CIDR(s) (a comma-separated dual-stack pair is accepted). */
export function renderBridgeConflist(input: BridgeConfigInput): string {
  const cidrs = input.podCIDR.split(',').map((c) => c.trim()).filter(Boolean);
  for (const c of cidrs) if (!isValidCidr(c)) throw new Error(`invalid pod CIDR ${JSON.stringify(c)}`);
  if (!cidrs.length) throw new Error('pod CIDR is empty');
  const ipam: Record<string, unknown> = {
    type: 'host-local',
    ranges: cidrs.map((subnet) => [{ subnet }]),
    routes: cidrs.map((c) => ({ dst: c.includes(':') ? '::/0' : '0.0.0.0/0' })),
  };
  if (input.ipamDataDir) ipam.dataDir = input.ipamDataDir;
  const bridge: Record<string, unknown> = {
    type: 'bridge',
    bridge: input.bridge ?? 'cni0',
    isGateway: true,
    isDefaultGateway: false,
    ipMasq: true,
    hairpinMode: true,
    ipam,
  };
  if (input.mtu) bridge.mtu = input.mtu;
  return `${JSON.stringify({ cniVersion: '0.4.0', name: 'keelson', plugins: [bridge, { type: 'portmap', capabilities: { portMappings: true }, snat: true }] }, null, 2)}\n`;
}

export interface EnsureCniConfigOptions extends Omit<BridgeConfigInput, 'podCIDR'> {
  /** The Node's spec.podCIDR (or podCIDRs joined with a comma); nothing is written without it. */
  podCIDR: string | undefined;
  runtime: Pick<PodRuntime, 'status'>;
  logger: Logger;
  /** Default: the folder the runtime reports (containerd's verbose status), else /etc/cni/net.d. */
  confDir?: string;
  /** Where to look for the loopback plugin (default: the runtime's bin dir, /opt/cni/bin and /usr/lib/cni). */
  binDirs?: string[];
}

export type CniConfigOutcome = 'written' | 'exists' | 'no-pod-cidr' | 'invalid-pod-cidr';

/** Config files in confDir, as libcni counts them. */
export async function existingCniConfigs(confDir: string): Promise<string[]> {
  try {
    return (await readdir(confDir)).filter((f) => !f.startsWith('.') && CONFIG_EXTENSIONS.includes(path.extname(f))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function ensureCniConfig(options: EnsureCniConfigOptions): Promise<CniConfigOutcome> {
  const { logger } = options;
  let networkMessage = '';
  let status: RuntimeStatus | undefined;
  try {
    status = await options.runtime.status?.();
    const net = status?.conditions.find((c) => c.type === 'NetworkReady');
    if (net && !net.status) networkMessage = `${net.reason}: ${net.message}`;
  } catch (err) {
    networkMessage = `runtime status unavailable: ${errorMessage(err)}`;
  }
  const confDir = options.confDir ?? status?.cniConfDir ?? DEFAULT_CNI_CONF_DIR;
  const existing = await existingCniConfigs(confDir);
  if (existing.length) {
    logger.debug({ confDir, files: existing }, 'CNI config present; not writing one');
    return 'exists';
  }
  if (!options.podCIDR) {
    logger.warn({ confDir, runtimeNetwork: networkMessage || undefined }, 'no CNI config and the node has no podCIDR: pods cannot get a network until one is configured');
    return 'no-pod-cidr';
  }
  let text: string;
  try {
    text = renderBridgeConflist({ ...options, podCIDR: options.podCIDR });
  } catch (err) {
    logger.error({ err, podCIDR: options.podCIDR, confDir }, 'cannot write a CNI config for the node pod CIDR');
    return 'invalid-pod-cidr';
  }
  await mkdir(confDir, { recursive: true, mode: 0o755 });
  const file = path.join(confDir, KEELSON_CNI_FILE);
  const tmp = path.join(confDir, `.${KEELSON_CNI_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, file);
  logger.info({ file, podCIDR: options.podCIDR, bridge: options.bridge ?? 'cni0', runtimeNetwork: networkMessage || undefined }, 'wrote bridge CNI config for the node pod CIDR');
  const binDirs = options.binDirs ?? [...(status?.cniBinDir ? [status.cniBinDir] : []), ...DEFAULT_CNI_BIN_DIRS];
  const found = await Promise.all(binDirs.map((d) => access(path.join(d, 'loopback')).then(() => true, () => false)));
  if (!found.some(Boolean)) logger.warn({ binDirs }, 'CNI loopback plugin not found; the runtime needs it to set up pods');
  return 'written';
}
