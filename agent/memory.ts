/**
 * Gives memory back to the OS after a burst of allocation (start-up, a proxy full sync).
 *
 * V8 keeps the heap pages it grew into during a burst: at 10 000 Services a full proxy sync leaves
 * ~150 MB of committed but empty pages, and the memory reducer does not run while periodic syncs
 * keep the process busy. A last-resort collection compacts the heap and releases its page pool
 * (Go programs do the same with debug.FreeOSMemory). It pauses the event loop for one full
 * collection (~200 ms at 10 000 Services), so it runs only after rare, already expensive events.
 * It needs `--expose-gc` (scripts/node-flags); without it this does nothing. Each release is logged
 * (info: RSS before and after, pause).
 */
import type { Logger } from 'pino';
import { readFileSync } from 'node:fs';

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

function rssMB(): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : Math.round(process.memoryUsage.rss() / 1048576);
  } catch {
    return Math.round(process.memoryUsage.rss() / 1048576);
  }
}

export function canReleaseMemory(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** Compacts the heap and returns freed pages to the OS; logs the effect at debug level. */
export function releaseMemory(reason: string, logger?: Logger): void {
  const gc = (globalThis as { gc?: GcFunction }).gc;
  if (typeof gc !== 'function') return;
  const before = rssMB();
  const t0 = performance.now();
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  // At most once at start and once per proxy full sync (hourly): info, so operators see the effect.
  logger?.info({ reason, rssBeforeMB: before, rssAfterMB: rssMB(), pauseMs: Math.round(performance.now() - t0) }, 'released memory to the OS');
}

let pending: NodeJS.Timeout | undefined;

/**
 * Releases memory once the current burst is over: after `delayMs`, when the stack frames, child
 * processes and streams of the work that asked for it are gone (a release from inside a proxy sync
 * still finds its 36 MB restore input alive). Asks made while one is pending join it.
 */
export function scheduleMemoryRelease(reason: string, logger?: Logger, delayMs = 1000): void {
  if (pending || !canReleaseMemory()) return;
  pending = setTimeout(() => {
    pending = undefined;
    releaseMemory(reason, logger);
  }, delayMs);
  pending.unref();
}
