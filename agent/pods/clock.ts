/**
 * The time source of agent/pods: wall-clock milliseconds and timers, injected so that backoff and
 * worker retries are tested with a fake clock (fake-clock.ts) and no sleeps.
 */
export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** Unix time in milliseconds. */
  now(): number;
  /** Calls fn once after ms milliseconds; the timer never keeps the process alive. */
  setTimer(ms: number, fn: () => void): ClockTimer;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
