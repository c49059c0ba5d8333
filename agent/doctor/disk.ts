/**
 * Free disk and inodes on keelson's rootDir (nodefs) and the runtime's image filesystem (imagefs),
 * against kubelet's hard eviction thresholds (evictionHard): below them pods get evicted and image
 * pulls fail; below twice the threshold a warning.
 */
import { dirname } from 'node:path';
import { errorMessage } from '../errors';
import { bytes } from '../pods/quantity';
import { fail, ok, warn, type CheckResult, type DoctorCheck, type DoctorContext, type FsStats } from './check';

/** `10%` of `total`, or an absolute quantity (`1Gi`); undefined when the threshold is not set or malformed. */
export function threshold(value: string | undefined, total: number): number | undefined {
  if (!value) return undefined;
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(value.trim());
  if (pct) return (Number(pct[1]) / 100) * total;
  return bytes(value);
}

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** statfs of the path, or of its nearest existing parent (rootDir may not exist before the first run). */
function statfsNearest(ctx: DoctorContext, path: string): { stats: FsStats; at: string } {
  let p = path;
  for (;;) {
    try {
      return { stats: ctx.statfs(p), at: p };
    } catch (err) {
      const parent = dirname(p);
      if (parent === p) throw err;
      p = parent;
    }
  }
}

export function diskResult(ctx: DoctorContext, role: 'nodefs' | 'imagefs', path: string): CheckResult[] {
  const name = `disk ${path}`;
  let s: { stats: FsStats; at: string };
  try {
    s = statfsNearest(ctx, path);
  } catch (err) {
    return [warn(name, `cannot statfs ${path}: ${errorMessage(err)}`, 'check that the filesystem is mounted')];
  }
  const { stats } = s;
  const eviction = ctx.config.kubelet.evictionHard;
  const total = stats.blocks * stats.bsize;
  const avail = stats.bavail * stats.bsize;
  const spaceMin = threshold(eviction[`${role}.available`], total) ?? 0.1 * total;
  const results: CheckResult[] = [];
  const where = s.at === path ? path : `${path} (on ${s.at})`;
  const cleanup = role === 'imagefs'
    ? 'free space: crictl rmi --prune removes unused images; grow the filesystem or move the runtime root'
    : 'free space: remove old container logs under /var/log/pods and journal files (journalctl --vacuum-size=100M), or grow the filesystem';
  const spaceText = `${where}: ${human(avail)} free of ${human(total)} (${total ? ((100 * avail) / total).toFixed(1) : '0'}%), ${role}.available threshold ${eviction[`${role}.available`] ?? '10%'}`;
  if (avail < spaceMin) results.push(fail(name, `${spaceText}: pods are evicted and images cannot be pulled`, cleanup));
  else if (avail < 2 * spaceMin) results.push(warn(name, `${spaceText}: close to eviction`, cleanup));
  else results.push(ok(name, spaceText));
  if (stats.files > 0) {
    const inodeMin = threshold(eviction[`${role}.inodesFree`], stats.files) ?? 0.05 * stats.files;
    const inodeName = `inodes ${path}`;
    const inodeText = `${where}: ${stats.ffree} of ${stats.files} inodes free (${((100 * stats.ffree) / stats.files).toFixed(1)}%)`;
    const inodeFix = 'many small files (container layers, logs): crictl rmi --prune, clean /var/log/pods; or recreate the filesystem with more inodes (mkfs.ext4 -i)';
    if (stats.ffree < inodeMin) results.push(fail(inodeName, `${inodeText}: below the ${role}.inodesFree threshold`, inodeFix));
    else if (stats.ffree < 2 * inodeMin) results.push(warn(inodeName, `${inodeText}: close to the ${role}.inodesFree threshold`, inodeFix));
    else results.push(ok(inodeName, inodeText));
  }
  return results;
}

export const diskCheck: DoctorCheck = {
  name: 'disk',
  async run(ctx) {
    const runtime = await ctx.runtime();
    const runtimeRoot = runtime.imageFsMountpoint
      ?? (typeof runtime.runtimeConfig?.containerdRootDir === 'string' ? runtime.runtimeConfig.containerdRootDir : undefined)
      ?? (runtime.socket.includes('crio') ? '/var/lib/containers/storage' : '/var/lib/containerd');
    return [...diskResult(ctx, 'nodefs', ctx.config.rootDir), ...diskResult(ctx, 'imagefs', runtimeRoot)];
  },
};
