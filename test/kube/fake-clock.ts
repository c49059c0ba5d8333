/** A manual clock for agent/kube's injected time: timers fire only when the test advances time. */
import type { Clock } from '../../agent/kube/clock';

export interface FakeClock extends Clock {
  /** Moves time forward, firing due timers in order and letting promises settle between them. */
  advance(ms: number): Promise<void>;
  /** Delays of the timers set so far (for assertions on backoff). */
  readonly scheduled: number[];
  pendingTimers(): number;
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function createFakeClock(options: { start?: number; random?: () => number } = {}): FakeClock {
  let now = options.start ?? 1_700_000_000_000;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const scheduled: number[] = [];
  return {
    now: () => now,
    random: options.random ?? (() => 0.5),
    setTimeout(fn, ms) {
      const id = ++seq;
      scheduled.push(ms);
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    scheduled,
    pendingTimers: () => timers.size,
    async advance(ms) {
      const target = now + ms;
      await flush();
      for (;;) {
        let nextId: number | undefined;
        let nextAt = Infinity;
        for (const [id, t] of timers) if (t.at <= target && t.at < nextAt) [nextId, nextAt] = [id, t.at];
        if (nextId === undefined) break;
        const timer = timers.get(nextId)!;
        timers.delete(nextId);
        now = timer.at;
        timer.fn();
        await flush();
      }
      now = target;
      await flush();
    },
  };
}
