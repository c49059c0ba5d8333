/**
 * Request-level fault injection and the request log: the next n matching requests fail with a
 * Status error, every response is delayed by a latency, and every request is recorded.
 */
import { errorForCode } from './status';
import type { ApiError } from './status';

export interface FailRule {
  remaining: number;
  code: number;
  path?: string | RegExp;
  method?: string;
  /** Only watch requests (true), only non-watch (false), or both (undefined). */
  watch?: boolean;
}

export interface FailOptions {
  /** A path prefix (`/api/v1/pods`) or a RegExp tested against the path. */
  path?: string | RegExp;
  method?: string;
  watch?: boolean;
}

export interface RequestRecord {
  time: number;
  method: string;
  path: string;
  query: Record<string, string>;
  user: string;
  watch: boolean;
  code?: number;
}

export interface Faults {
  failNext(n: number, code?: number, options?: FailOptions): void;
  /** The error to answer this request with, if a rule matches (consumes one). */
  take(method: string, path: string, watch: boolean): ApiError | undefined;
  setLatency(ms: number): void;
  latency(): number;
  log: RequestRecord[];
  clear(): void;
}

export function createFaults(): Faults {
  const rules: FailRule[] = [];
  let latencyMs = 0;
  const log: RequestRecord[] = [];
  return {
    failNext(n, code = 500, options = {}) {
      rules.push({ remaining: n, code, ...options });
    },
    take(method, path, watch) {
      for (const rule of rules) {
        if (rule.remaining <= 0) continue;
        if (rule.method && rule.method.toUpperCase() !== method) continue;
        if (rule.watch !== undefined && rule.watch !== watch) continue;
        if (rule.path !== undefined) {
          const ok = typeof rule.path === 'string' ? path.startsWith(rule.path) : rule.path.test(path);
          if (!ok) continue;
        }
        rule.remaining--;
        if (rule.remaining <= 0) rules.splice(rules.indexOf(rule), 1);
        return errorForCode(rule.code);
      }
      return undefined;
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    latency: () => latencyMs,
    log,
    clear() {
      rules.length = 0;
      latencyMs = 0;
    },
  };
}
