/**
 * The kernel mounts volumes need: tmpfs for memory-backed emptyDir, Secret and projected volumes,
 * and unmounting them when the pod is removed. Injected so unit tests can use plain folders.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Mounter {
  /** Mounts a tmpfs on dir (which must exist) unless one is there; sizeBytes 0 = the kernel default. */
  mountTmpfs(dir: string, sizeBytes: number): Promise<void>;
  /** Unmounts every mount at or below dir, deepest first. */
  unmountUnder(dir: string): Promise<void>;
}

function decode(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function mountPointsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points: string[] = [];
  for (const line of text.split('\n')) {
    const p = line.split(' ')[4];
    if (!p) continue;
    const mp = decode(p);
    if (mp === dir || mp.startsWith(dir + '/')) points.push(mp);
  }
  return points.reverse();
}

export function createSystemMounter(): Mounter {
  return {
    async mountTmpfs(dir, sizeBytes) {
      if ((await mountPointsUnder(dir)).includes(dir)) return;
      const options = ['mode=0755', ...(sizeBytes > 0 ? [`size=${sizeBytes}`] : [])].join(',');
      await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { timeout: 10_000 });
    },
    async unmountUnder(dir) {
      for (const p of await mountPointsUnder(dir)) {
        try {
          await run('umount', [p], { timeout: 10_000 });
        } catch {
          await run('umount', ['-l', p], { timeout: 10_000 });
        }
      }
    },
  };
}

/** Unit tests: tmpfs is a plain folder; records what would have been mounted. */
export function createFakeMounter(): Mounter & { mounted: Map<string, number> } {
  const mounted = new Map<string, number>();
  return {
    mounted,
    async mountTmpfs(dir, size) {
      mounted.set(dir, size);
    },
    async unmountUnder(dir) {
      for (const p of [...mounted.keys()]) if (p === dir || p.startsWith(dir + '/')) mounted.delete(p);
    },
  };
}
