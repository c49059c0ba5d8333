/** hostPath volume: the node's path itself, after the type check (and creation for *OrCreate). */
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { HostPathVolumeSource } from 'kubernetes-types/core/v1';
import { VolumeError } from './errors';

export const HOST_PATH_TYPES = ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'];

async function statOrUndefined(p: string) {
  try {
    return await stat(p);
  } catch {
    return undefined;
  }
}

export async function setUpHostPath(source: HostPathVolumeSource): Promise<string> {
  const p = source.path;
  const type = source.type ?? '';
  const fail = (what: string) => new VolumeError(`hostPath type check failed: ${p} is not a ${what}`);
  let st = await statOrUndefined(p);
  if (!st && type === 'DirectoryOrCreate') {
    await mkdir(p, { recursive: true, mode: 0o755 });
    st = await statOrUndefined(p);
  } else if (!st && type === 'FileOrCreate') {
    await mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
    await (await open(p, 'a', 0o644)).close();
    st = await statOrUndefined(p);
  }
  switch (type) {
    case '':
      return p;
    case 'Directory':
    case 'DirectoryOrCreate':
      if (!st?.isDirectory()) throw fail('directory');
      return p;
    case 'File':
    case 'FileOrCreate':
      if (!st?.isFile()) throw fail('file');
      return p;
    case 'Socket':
      if (!st?.isSocket()) throw fail('socket');
      return p;
    case 'CharDevice':
      if (!st?.isCharacterDevice()) throw fail('character device');
      return p;
    case 'BlockDevice':
      if (!st?.isBlockDevice()) throw fail('block device');
      return p;
    default:
      throw new VolumeError(`hostPath type ${JSON.stringify(type)} is not supported`);
  }
}
