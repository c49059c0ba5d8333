/**
 * Atomic updates of a volume's files, the way kubelet's AtomicWriter does them, so a reader in the
 * container never sees half of an update:
 *   <dir>/..2024_05_01_10_00_00.123456789/<files>   one folder per version
 *   <dir>/..data -> ..2024_05_01_10_00_00.123456789 swapped with one rename(2)
 *   <dir>/<name> -> ..data/<name>                    one link per top-level name
 * A write with unchanged content changes nothing; otherwise the new version is written beside the
 * old one, `..data` is swapped, links are added or removed, and the old version is deleted.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { changeOwnership, ownedMode, rootNeedsChange, type VolumeOwnership } from './volume-ownership';

export interface FileProjection {
  data: Buffer;
  /** Permission bits (0o644 by default in every API volume). */
  mode: number;
}

/** Relative file path → content and mode. */
export type Payload = Map<string, FileProjection>;

const DATA_LINK = '..data';
const DATA_TMP = '..data_tmp';

/** Rejects absolute paths, `..` elements and names starting with `..` (reserved for the writer). */
export function checkPayloadPath(p: string): string | undefined {
  if (!p) return 'must not be empty';
  if (path.isAbsolute(p)) return 'must be a relative path';
  if (p.split('/').includes('..')) return "must not contain '..'";
  if (p.startsWith('..')) return "must not start with '..'";
  return undefined;
}

async function listFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(root, r)));
    else out.push(r);
  }
  return out;
}

async function sameContent(versionDir: string, payload: Payload, own: VolumeOwnership | undefined): Promise<boolean> {
  let files: string[];
  try {
    files = await listFiles(versionDir);
  } catch {
    return false;
  }
  if (files.length !== payload.size) return false;
  for (const f of files) {
    const want = payload.get(f);
    if (!want) return false;
    const full = path.join(versionDir, f);
    const [data, st] = await Promise.all([readFile(full), stat(full)]);
    const mode = own ? ownedMode(want.mode, false, own.readOnly) : want.mode;
    if ((st.mode & 0o7777) !== mode || (own && st.gid !== own.fsGroup) || !data.equals(want.data)) return false;
  }
  return true;
}

function versionName(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${ts}.${randomBytes(5).toString('hex')}`;
}

async function linkTarget(p: string): Promise<string | undefined> {
  try {
    return await readlink(p);
  } catch {
    return undefined;
  }
}

/** Creates or replaces the symlink at p (via a temp name and rename, so it never disappears). */
async function putLink(p: string, target: string): Promise<void> {
  if ((await linkTarget(p)) === target) return;
  const tmp = `${p}.tmp-${randomBytes(4).toString('hex')}`;
  await symlink(target, tmp);
  await rename(tmp, p);
}

/**
 * Makes `dir` hold exactly `payload`. Returns true when something changed. Throws on an invalid
 * path in the payload before touching anything. With `fsGroup`, the volume is group-owned by it and
 * every file gains group read (a new version before it becomes visible through `..data`).
 */
export async function writeAtomic(dir: string, payload: Payload, now = new Date(), fsGroup?: number): Promise<boolean> {
  const own: VolumeOwnership | undefined = fsGroup === undefined ? undefined : { fsGroup, readOnly: true };
  for (const p of payload.keys()) {
    const problem = checkPayloadPath(p);
    if (problem) throw new Error(`invalid file path ${JSON.stringify(p)}: ${problem}`);
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const dataLink = path.join(dir, DATA_LINK);
  const oldVersion = await linkTarget(dataLink);
  const wanted = new Set([...payload.keys()].map((p) => p.split('/')[0]));
  let changed = false;
  if (!oldVersion || !(await sameContent(path.join(dir, oldVersion), payload, own))) {
    const version = versionName(now);
    const versionDir = path.join(dir, version);
    await mkdir(versionDir, { mode: 0o755 });
    for (const [rel, file] of payload) {
      const full = path.join(versionDir, rel);
      await mkdir(path.dirname(full), { recursive: true, mode: 0o755 });
      await writeFile(full, file.data, { mode: file.mode });
      await chmod(full, file.mode); // the umask may have cleared bits
    }
    if (own) await changeOwnership(versionDir, own);
    const tmp = path.join(dir, DATA_TMP);
    await rm(tmp, { force: true });
    await symlink(version, tmp);
    await rename(tmp, dataLink);
    changed = true;
    if (oldVersion) await rm(path.join(dir, oldVersion), { recursive: true, force: true });
  }
  for (const name of wanted) await putLink(path.join(dir, name), `${DATA_LINK}/${name}`);
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..') || wanted.has(entry)) continue;
    const st = await lstat(path.join(dir, entry));
    if (st.isSymbolicLink()) {
      await rm(path.join(dir, entry), { force: true });
      changed = true;
    }
  }
  // the root and the top-level links too (the first write, or a tmpfs mounted afresh)
  if (own && (changed || (await rootNeedsChange(dir, own)))) await changeOwnership(dir, own);
  return changed;
}
