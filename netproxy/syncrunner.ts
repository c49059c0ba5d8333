/**
 * A coalescing, bounded-frequency runner with kube-proxy's resync policy:
 * - requests in a burst become one run, and runs are at least `minIntervalMs` apart;
 * - at least every `maxIntervalMs` (syncPeriod) a consistency run (`verify`) lets the backend check
 *   cheaply that its objects are still in the kernel;
 * - a full run (rewrite everything) happens first, after a failure, after the backend reported
 *   drift, and at least every `fullIntervalMs` (1 h): at 10 000 Services a full rewrite costs
 *   seconds of CPU and a large memory peak, too much to repeat every syncPeriod.
 * A failed partial run is retried at once as a full one (the usual cause is that something removed
 * our objects under it); a failed full run is retried with a growing, jittered delay.
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

/** What a run is asked to do: see netproxy/backend.ts SyncRequest. */
export type SyncKind = 'full' | 'verify' | 'partial';

/**
 * How a run ended: `deferred` = nothing could be done yet (inputs not synced), so nothing is
 * considered applied; `drift` = a verify run found the kernel altered: a full run follows at once.
 */
export type SyncOutcome = 'ok' | 'failed' | 'drift' | 'deferred';

export interface SyncRunner {
  /** Asks for a sync soon (coalesced, rate-limited). */
  request(): void;
  /** Asks for a full sync soon. */
  requestFull(): void;
  start(): void;
  stop(): Promise<void>;
  /** Resolves when no run is in progress. */
  idle(): Promise<void>;
  /**
   * Runs what is due (a requested or scheduled run) now, without waiting for minIntervalMs, and
   * resolves with its outcome ('ok' when nothing was due). A run already in progress is awaited first.
   */
  runNow(): Promise<SyncOutcome>;
}

export const DEFAULT_FULL_INTERVAL_MS = 3_600_000;

export function createSyncRunner(options: {
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Longest time between two full runs (default 1 h, kube-proxy's FullSyncPeriod). */
  fullIntervalMs?: number;
  clock?: Clock;
  random?: () => number;
  run: (kind: SyncKind) => Promise<SyncOutcome>;
}): SyncRunner {
  const clock = options.clock ?? realClock;
  const random = options.random ?? Math.random;
  const fullIntervalMs = options.fullIntervalMs ?? DEFAULT_FULL_INTERVAL_MS;
  let lastRun = -Infinity;
  /** Start of the last successful full or verify run. */
  let lastCheck = -Infinity;
  let lastFull = -Infinity;
  let timer: unknown;
  let timerAt = Infinity;
  let running: Promise<SyncOutcome> | undefined;
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

  function kindDue(now: number): SyncKind {
    if (wantFull || now - lastFull >= fullIntervalMs) return 'full';
    return now - lastCheck >= options.maxIntervalMs ? 'verify' : 'partial';
  }

  function fire(): Promise<SyncOutcome> {
    timer = undefined;
    timerAt = Infinity;
    if (running) return running; // the running sync reschedules when it ends
    const now = clock.now();
    const kind = kindDue(now);
    wantFull = false;
    pending = false;
    lastRun = now;
    const run = options
      .run(kind)
      .catch((): SyncOutcome => 'failed')
      .then((outcome) => {
        running = undefined;
        finished(kind, now, outcome);
        return outcome;
      });
    running = run;
    return run;
  }

  function finished(kind: SyncKind, started: number, outcome: SyncOutcome) {
    let retryAt: number | undefined;
    let waitForRequest = false;
    if (outcome === 'ok') {
      failures = 0;
      if (kind !== 'partial') lastCheck = started;
      if (kind === 'full') lastFull = started;
    } else if (outcome === 'deferred') {
      // Nothing was applied: a full run stays due; the inputs' own request starts it.
      if (kind === 'full') wantFull = true;
      lastCheck = started;
      waitForRequest = true;
    } else if (outcome === 'drift') {
      wantFull = true;
      retryAt = clock.now();
    } else {
      failures++;
      wantFull = true;
      pending = true;
      if (kind !== 'full' && failures === 1) retryAt = clock.now();
      else {
        const base = Math.max(options.minIntervalMs, 500);
        const backoff = Math.min(options.maxIntervalMs, base * 2 ** Math.min(failures - 1, 10)) * (0.8 + 0.4 * random());
        retryAt = started + backoff;
      }
    }
    if (retryAt !== undefined) schedule(retryAt);
    else if (pending || (wantFull && !waitForRequest)) schedule(Math.max(clock.now(), lastRun + options.minIntervalMs));
    schedule(Math.max(lastRun + options.minIntervalMs, lastCheck + options.maxIntervalMs));
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
      timerAt = Infinity;
      await running;
    },
    async idle() {
      while (running) await running;
    },
    async runNow() {
      while (running) await running;
      if (stopped || !(pending || wantFull)) return 'ok';
      if (timer !== undefined) clock.clearTimeout(timer);
      return fire();
    },
  };
}
