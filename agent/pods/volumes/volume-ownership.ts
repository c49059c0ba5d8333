/**
 * Volume ownership for `securityContext.fsGroup` (kubelet's SetVolumeOwnership): every entry of the
 * volume gets group fsGroup; files gain group read (read-only API volumes) or read-write (emptyDir),
 * folders also gain group search and setgid so what containers create later inherits the group.
 * Symlinks only change group: chmod would follow them and widen the target's mode.
 * hostPath volumes are never changed.
 */
import { chmod, lchown, lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const GROUP_RW = 0o660;
const GROUP_RO = 0o440;
const GROUP_SEARCH = 0o110;
const SETGID = 0o2000;

export interface VolumeOwnership {
  fsGroup: number;
  /** API volumes (configMap, secret, downwardAPI, projected): the group gets read only. */
  readOnly: boolean;
}

/** The permission bits an entry has after the ownership change. */
export function ownedMode(mode: number, isDir: boolean, readOnly: boolean): number {
  let bits = readOnly ? GROUP_RO : GROUP_RW;
  if (isDir) bits |= GROUP_SEARCH | SETGID;
  return (mode & 0o7777) | bits;
}

async function changeEntry(p: string, own: VolumeOwnership): Promise<void> {
  const st = await lstat(p);
  if (st.gid !== own.fsGroup) await lchown(p, st.uid, own.fsGroup);
  if (st.isSymbolicLink()) return;
  const want = ownedMode(st.mode, st.isDirectory(), own.readOnly);
  if ((st.mode & 0o7777) !== want) await chmod(p, want);
}

/** Changes `dir` and everything below it (symlinks are not followed). */
export async function changeOwnership(dir: string, own: VolumeOwnership): Promise<void> {
  await changeEntry(dir, own);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await changeOwnership(p, own);
    else await changeEntry(p, own);
  }
}

/** True unless the volume root already has group fsGroup, the group bits and setgid. */
export async function rootNeedsChange(dir: string, own: VolumeOwnership): Promise<boolean> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    return true;
  }
  if (st.gid !== own.fsGroup || !st.isDirectory()) return true;
  const bits = (own.readOnly ? GROUP_RO : GROUP_RW) | GROUP_SEARCH;
  return (st.mode & bits) !== bits || (st.mode & SETGID) === 0;
}

/**
 * Applies the ownership change to a whole volume; with `OnRootMismatch` the walk is skipped when the
 * root is already right. Returns true when the volume was walked.
 */
export async function setVolumeOwnership(dir: string, own: VolumeOwnership, policy?: string): Promise<boolean> {
  if (policy === 'OnRootMismatch' && !(await rootNeedsChange(dir, own))) return false;
  await changeOwnership(dir, own);
  return true;
}
