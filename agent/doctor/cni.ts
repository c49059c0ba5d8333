/**
 * CNI config: the runtime sets up pod networks from the first config file (sorted by name) in its
 * conf dir, with plugin binaries from its bin dir. Without one, pods that are not hostNetwork cannot
 * start and the node stays NotReady.
 */
import { join } from 'node:path';
import { errorMessage } from '../errors';
import { fail, ok, warn, type DoctorCheck, type CheckResult } from './check';

const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

interface CniSettings {
  confDir: string;
  binDirs: string[];
}

function cniSettings(runtimeConfig: Record<string, unknown> | undefined, defaultConfDir: string): CniSettings {
  const cni = (runtimeConfig?.cni ?? {}) as { confDir?: unknown; binDir?: unknown; binDirs?: unknown };
  const confDir = typeof cni.confDir === 'string' && cni.confDir ? cni.confDir : defaultConfDir;
  const binDirs = Array.isArray(cni.binDirs) ? cni.binDirs.filter((d): d is string => typeof d === 'string') : typeof cni.binDir === 'string' && cni.binDir ? [cni.binDir] : ['/opt/cni/bin', '/usr/lib/cni'];
  return { confDir, binDirs };
}

/** The plugin types a config file names (`type` of a .conf, each `plugins[].type` of a .conflist). */
export function pluginTypes(doc: unknown): string[] {
  const d = doc as { type?: unknown; plugins?: unknown };
  if (Array.isArray(d?.plugins)) return d.plugins.map((p) => (p as { type?: unknown })?.type).filter((t): t is string => typeof t === 'string');
  return typeof d?.type === 'string' ? [d.type] : [];
}

export const cniCheck: DoctorCheck = {
  name: 'cni',
  async run(ctx): Promise<CheckResult> {
    const name = 'cni';
    const probe = await ctx.runtime();
    const { confDir, binDirs } = cniSettings(probe.runtimeConfig, ctx.paths.defaultCniConfDir);
    const joined = ctx.kubeconfig() !== undefined;
    const missing = joined ? fail : warn;
    const consequence = joined ? 'pods that are not hostNetwork cannot start and the node stays NotReady' : 'only hostNetwork static pods can run';
    let files: string[] = [];
    try {
      files = ctx.readdir(confDir).filter((f) => CONF_EXTENSIONS.some((e) => f.endsWith(e))).sort();
    } catch {
      // a missing folder is the same as an empty one
    }
    const fix = `install a CNI config in ${confDir} (the cluster's CNI add-on, e.g. flannel or calico, writes one; for a single node, a bridge + host-local .conflist) with its plugins in ${binDirs.join(' or ')}`;
    if (files.length === 0) return missing(name, `no CNI config in ${confDir}: ${consequence}`, fix);
    const first = join(confDir, files[0]!);
    let doc: unknown;
    try {
      doc = JSON.parse(ctx.readFile(first));
    } catch (err) {
      return missing(name, `${first} (the config the runtime uses) is not valid JSON: ${errorMessage(err)}`, `fix or remove ${first}`);
    }
    const types = pluginTypes(doc);
    if (types.length === 0) return missing(name, `${first} names no plugin (no "type" or "plugins")`, `fix or remove ${first}`);
    const absent = types.filter((t) => !binDirs.some((d) => ctx.exists(join(d, t))));
    if (absent.length) {
      return missing(
        name,
        `${first} uses plugins ${absent.join(', ')} that are not in ${binDirs.join(', ')}`,
        `install them (Debian/Ubuntu: apt-get install containernetworking-plugins, which puts them in /usr/lib/cni) or point the runtime's CNI bin_dir at the folder that has them`,
      );
    }
    const network = (probe.conditions ?? []).find((c) => c.type === 'NetworkReady' && !c.status);
    if (network) {
      return warn(name, `${first} (${types.join(', ')}) present, but the runtime reports NetworkReady=false: ${network.reason} ${network.message}`.trim(), 'restart the runtime to reload CNI config (systemctl restart containerd) and check its log');
    }
    return ok(name, `${first} (${types.join(', ')})`);
  },
};
