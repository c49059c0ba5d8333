/** A manual clock for unit tests: time moves only when the test calls advance(). */
import type { Clock, ClockTimer } from './clock';

export interface FakeClock extends Clock {
  /** Moves time forward by ms, firing due timers in order. */
  advance(ms: number): void;
  /** Timers not yet fired. */
  pending(): number;
}

export function createFakeClock(start = Date.UTC(2025, 0, 1)): FakeClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimer(ms, fn): ClockTimer {
      const id = ++seq;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return { cancel: () => void timers.delete(id) };
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let nextId = -1;
        let nextAt = Infinity;
        for (const [id, t] of timers) if (t.at <= end && t.at < nextAt) [nextId, nextAt] = [id, t.at];
        if (nextId < 0) break;
        const timer = timers.get(nextId)!;
        timers.delete(nextId);
        now = timer.at;
        timer.fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}
