import type { Clock } from './clock';

export interface BackoffOptions {
  /** First delay (before jitter). Default 800 ms. */
  initialMs?: number;
  /** Cap of the doubling delay (before jitter). Default 30 s. */
  maxMs?: number;
  /** Back to the first delay once the loop has been healthy this long. Default 2 min. */
  resetAfterMs?: number;
  /** Spread: each delay is the nominal delay times a factor in [1 - jitter/2, 1 + jitter/2). Default 0.5. */
  jitter?: number;
}

export interface Backoff {
  /** The delay to wait before the next attempt after a failure. */
  next(): number;
  /** Marks the start of a healthy period (e.g. a watch that connected). */
  succeeded(): void;
  /** How many consecutive failures led to the current delay. */
  readonly attempts: number;
}

/** Exponential backoff with jitter that resets after a healthy period, like client-go's. */
export function createBackoff(clock: Clock, options: BackoffOptions = {}): Backoff {
  const initialMs = options.initialMs ?? 800;
  const maxMs = options.maxMs ?? 30_000;
  const resetAfterMs = options.resetAfterMs ?? 120_000;
  const jitter = options.jitter ?? 0.5;
  let attempts = 0;
  let healthySince: number | undefined;
  return {
    next() {
      if (healthySince !== undefined && clock.now() - healthySince >= resetAfterMs) attempts = 0;
      healthySince = undefined;
      const nominal = Math.min(maxMs, initialMs * 2 ** Math.min(attempts, 30));
      attempts++;
      return Math.round(nominal * (1 - jitter / 2 + jitter * clock.random()));
    },
    succeeded() {
      healthySince ??= clock.now();
    },
    get attempts() {
      return attempts;
    },
  };
}
