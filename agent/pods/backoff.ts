/**
 * Crash-loop backoff, per container (key `uid/container`), the way kubelet does it: the first
 * restart after an exit is immediate; each later exit must wait 10 s, 20 s, 40 s … up to 5 min
 * counted from the container's finish time. An entry that was last bumped longer ago than
 * `resetAfterMs` (10 min: the container ran that long) starts over at the initial delay.
 */
import type { Clock } from './clock';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  resetAfterMs?: number;
}

export interface Backoff {
  /** Milliseconds the container that finished at `finishedAt` must still wait (0: may start now). */
  remaining(key: string, finishedAt: number): number;
  /** Records a restart of the container that finished at `finishedAt`; returns the new delay. */
  next(key: string, finishedAt: number): number;
  /** The delay currently recorded for key (0 when none). */
  current(key: string): number;
  forget(keyPrefix: string): void;
}

export const DEFAULT_BACKOFF = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 } as const;

export function createBackoff(clock: Clock, options: BackoffOptions = {}): Backoff {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const resetAfterMs = options.resetAfterMs ?? DEFAULT_BACKOFF.resetAfterMs;
  const entries = new Map<string, { delay: number; lastUpdate: number }>();

  function live(key: string, eventTime: number) {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (eventTime - entry.lastUpdate > resetAfterMs) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  return {
    remaining(key, finishedAt) {
      const entry = live(key, finishedAt);
      if (!entry) return 0;
      return Math.max(0, finishedAt + entry.delay - clock.now());
    },
    next(key, finishedAt) {
      const entry = live(key, finishedAt);
      const delay = entry ? Math.min(entry.delay * 2, maxMs) : initialMs;
      entries.set(key, { delay, lastUpdate: clock.now() });
      return delay;
    },
    current: (key) => entries.get(key)?.delay ?? 0,
    forget(prefix) {
      for (const key of entries.keys()) if (key.startsWith(prefix)) entries.delete(key);
    },
  };
}
