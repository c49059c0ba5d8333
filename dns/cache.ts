/**
 * The cache stage, for answers from the stages after it (forwarded names): positive answers for the
 * smallest TTL of their records (capped), negative ones (NXDOMAIN, NODATA) for the SOA minimum capped
 * at `negativeTtl` (5 s) so new Services appear quickly. Bounded size with LRU eviction, TTLs counted
 * down on the way out, concurrent misses for one name coalesced, and popular entries prefetched
 * before they expire.
 */
import { type Message, Rcode, type ResourceRecord, Type } from './codec';
import { type DnsRequest, type Next, type Stage } from './handler';
import type { DnsMetrics } from './metrics';

export interface CacheOptions {
  size: number;
  maxTtl: number;
  negativeTtl: number;
  prefetchHits: number;
  prefetchPercent: number;
  metrics?: DnsMetrics;
  now?: () => number;
}

interface Entry {
  message: Message;
  stored: number;
  ttl: number;
  expires: number;
  hits: number;
  prefetching: boolean;
  negative: boolean;
}

export interface CacheStage extends Stage {
  entries(): number;
  clear(): void;
}

function cacheTtl(msg: Message, maxTtl: number, negativeTtl: number): { ttl: number; negative: boolean } | undefined {
  if (msg.tc) return undefined;
  if (msg.rcode === Rcode.NXDOMAIN || (msg.rcode === Rcode.NOERROR && msg.answers.length === 0)) {
    const soa = msg.authorities.find((r) => r.type === Type.SOA);
    const fromSoa = soa ? Math.min(soa.ttl, (soa.data as { minimum: number }).minimum) : negativeTtl;
    return { ttl: Math.min(fromSoa, negativeTtl), negative: true };
  }
  if (msg.rcode !== Rcode.NOERROR) return undefined;
  let ttl = maxTtl;
  for (const r of msg.answers) ttl = Math.min(ttl, r.ttl);
  for (const r of msg.authorities) ttl = Math.min(ttl, r.ttl);
  return { ttl, negative: false };
}

function aged(records: ResourceRecord[], elapsed: number): ResourceRecord[] {
  return records.map((r) => ({ ...r, ttl: Math.max(0, r.ttl - elapsed) }));
}

export function createCacheStage(opts: CacheOptions): CacheStage {
  const now = opts.now ?? Date.now;
  const map = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Message>>();

  const keyOf = (req: DnsRequest) => `${req.question.type}:${req.query.cd ? 1 : 0}:${req.qname}`;

  /** Stores `msg` when cacheable; returns the message to answer with (negative TTLs capped). */
  function store(key: string, msg: Message): Message {
    const t = cacheTtl(msg, opts.maxTtl, opts.negativeTtl);
    if (!t || t.ttl <= 0) return msg;
    const stored = now();
    // A negative answer must not tell clients to keep it longer than we do.
    const message = t.negative ? { ...msg, authorities: msg.authorities.map((r) => ({ ...r, ttl: Math.min(r.ttl, t.ttl) })) } : msg;
    if (opts.size <= 0) return message;
    map.delete(key);
    map.set(key, { message, stored, ttl: t.ttl, expires: stored + t.ttl * 1000, hits: 0, prefetching: false, negative: t.negative });
    while (map.size > opts.size) map.delete(map.keys().next().value!);
    opts.metrics?.cacheSize(map.size);
    return message;
  }

  function fetch(key: string, req: DnsRequest, next: Next): Promise<Message> {
    let p = inflight.get(key);
    if (p) return p;
    p = Promise.resolve()
      .then(() => next(req))
      .then((msg) => store(key, msg))
      .finally(() => inflight.delete(key));
    inflight.set(key, p);
    return p;
  }

  return {
    name: 'cache',
    serve(req, next) {
      const key = keyOf(req);
      const e = map.get(key);
      const t = now();
      if (e && t < e.expires) {
        e.hits++;
        map.delete(key);
        map.set(key, e);
        opts.metrics?.cacheHit(e.negative ? 'denial' : 'success');
        const left = e.expires - t;
        if (!e.prefetching && e.hits >= opts.prefetchHits && left < e.ttl * 10 * opts.prefetchPercent) {
          e.prefetching = true;
          opts.metrics?.prefetch();
          fetch(key, { ...req, protocol: 'internal' }, next).catch(() => { e.prefetching = false; });
        }
        const elapsed = Math.floor((t - e.stored) / 1000);
        const m = e.message;
        return { ...m, answers: aged(m.answers, elapsed), authorities: aged(m.authorities, elapsed), additionals: aged(m.additionals, elapsed), questions: [req.question] };
      }
      if (e) map.delete(key);
      opts.metrics?.cacheMiss();
      return fetch(key, req, next).then((m) => ({ ...m, questions: [req.question] }));
    },
    entries: () => map.size,
    clear: () => map.clear(),
  };
}
