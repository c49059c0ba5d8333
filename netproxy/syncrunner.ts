/**
 * A coalescing, bounded-frequency runner: requests in a burst become one run, runs are at least
 * `minIntervalMs` apart, and a full run happens at least every `maxIntervalMs` to repair drift.
 * After a failure the next run is full and is retried with a growing, jittered delay.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SyncRunner {
  /** Asks for a sync soon (coalesced, rate-limited). */
  request(): void;
  /** Asks for a full sync soon. */
  requestFull(): void;
  start(): void;
  stop(): Promise<void>;
  /** Resolves when no run is in progress and none is due immediately. */
  idle(): Promise<void>;
}

export function createSyncRunner(options: {
  minIntervalMs: number;
  maxIntervalMs: number;
  clock?: Clock;
  random?: () => number;
  run: (full: boolean) => Promise<boolean>;
}): SyncRunner {
  const clock = options.clock ?? realClock;
  const random = options.random ?? Math.random;
  let lastRun = -Infinity;
  let timer: unknown;
  let timerAt = Infinity;
  let running: Promise<void> | undefined;
  let wantFull = true;
  let pending = true;
  let stopped = true;
  let failures = 0;

  function schedule(at: number) {
    if (stopped) return;
    if (timer !== undefined && timerAt <= at) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timerAt = at;
    timer = clock.setTimeout(fire, Math.max(0, at - clock.now()));
  }

  function fire() {
    timer = undefined;
    timerAt = Infinity;
    if (running) return; // the running sync reschedules when it ends
    const now = clock.now();
    if (now - lastRun >= options.maxIntervalMs) wantFull = true;
    const full = wantFull;
    wantFull = false;
    pending = false;
    lastRun = now;
    running = options
      .run(full)
      .then(
        (ok) => ok,
        () => false,
      )
      .then((ok) => {
        running = undefined;
        if (ok) failures = 0;
        else {
          failures++;
          wantFull = true;
          pending = true;
        }
        const backoff = ok ? options.minIntervalMs : Math.min(options.maxIntervalMs, options.minIntervalMs * 2 ** Math.min(failures, 10)) * (0.8 + 0.4 * random());
        if (pending || wantFull) schedule(lastRun + Math.max(options.minIntervalMs, backoff));
        schedule(lastRun + options.maxIntervalMs);
      });
  }

  return {
    request() {
      pending = true;
      if (running) return;
      schedule(Math.max(clock.now(), lastRun + options.minIntervalMs));
    },
    requestFull() {
      wantFull = true;
      this.request();
    },
    start() {
      stopped = false;
      if (pending || wantFull) schedule(clock.now());
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await running;
    },
    async idle() {
      while (running) await running;
    },
  };
}
