/**
 * The kubernetes stage: answers names in the cluster zone (and PTRs of cluster IPs and endpoints)
 * from the ZoneIndex. Negative answers follow CoreDNS's kubernetes plugin: a missing namespace,
 * service, endpoint or too long a name → NXDOMAIN; an existing name without the asked type →
 * NOERROR with no data; both with the zone's SOA in the authority section. Before the first sync
 * (and without a checkpoint) zone names get SERVFAIL, never a false NXDOMAIN.
 */
import { Class, type Message, Rcode, type ResourceRecord, Type } from './codec';
import type { PodMode } from './config';
import { type DnsRequest, type Next, reply, type Stage, subRequest } from './handler';
import { canonicalIP, ipFromReverseName, isIPv6 } from './ip';
import type { NameRecords, ZoneIndex } from './records';

export const DNS_SCHEMA_VERSION = '1.1.0';
const MAX_CNAME_CHAIN = 8;

export interface KubernetesStageOptions {
  index: ZoneIndex;
  ttl: number;
  podMode: PodMode;
  /** True once the feeds synced or a checkpoint was loaded. */
  ready: () => boolean;
  /** Addresses answered for ns.dns.<zone>. */
  nameserverIPs: string[];
}

interface Partial {
  rcode: number;
  answers: ResourceRecord[];
  additionals: ResourceRecord[];
  /** A CNAME target outside the zone still to be resolved. */
  external?: string;
}

const NXDOMAIN = (): Partial => ({ rcode: Rcode.NXDOMAIN, answers: [], additionals: [] });
const NODATA = (): Partial => ({ rcode: Rcode.NOERROR, answers: [], additionals: [] });

export function createKubernetesStage(opts: KubernetesStageOptions): Stage {
  const { index, ttl } = opts;
  const zone = index.zone;
  const zoneSuffix = '.' + zone;
  const rr = (name: string, type: number, data: ResourceRecord['data']): ResourceRecord => ({ name, type, class: Class.IN, ttl, data });
  const soa = (): ResourceRecord =>
    rr(zone, Type.SOA, { mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial: index.serial(), refresh: 7200, retry: 1800, expire: 86400, minimum: ttl });

  function addresses(owner: string, r: NameRecords, qtype: number, out: ResourceRecord[]): void {
    if (qtype === Type.A || qtype === Type.ANY) for (const ip of r.a ?? []) out.push(rr(owner, Type.A, ip));
    if (qtype === Type.AAAA || qtype === Type.ANY) for (const ip of r.aaaa ?? []) out.push(rr(owner, Type.AAAA, ip));
  }

  function fromRecords(owner: string, r: NameRecords, qtype: number, depth: number): Partial {
    const out: Partial = { rcode: Rcode.NOERROR, answers: [], additionals: [] };
    if (r.cname) {
      out.answers.push(rr(owner, Type.CNAME, r.cname));
      if (qtype === Type.CNAME || qtype === Type.ANY) return out;
      if (depth >= MAX_CNAME_CHAIN) return out;
      if (r.cname === zone || r.cname.endsWith(zoneSuffix)) {
        const chased = resolve(r.cname, r.cname, qtype, depth + 1);
        out.answers.push(...chased.answers);
        out.additionals.push(...chased.additionals);
        out.external = chased.external;
      } else out.external = r.cname;
      return out;
    }
    addresses(owner, r, qtype, out.answers);
    if ((qtype === Type.SRV || qtype === Type.ANY) && r.srv) {
      const weight = Math.floor(100 / r.srv.length);
      const seen = new Set<string>();
      for (const s of r.srv) {
        out.answers.push(rr(owner, Type.SRV, { priority: 0, weight, port: s.port, target: s.target }));
        if (seen.has(s.target)) continue;
        seen.add(s.target);
        const t = index.lookup(s.target);
        if (t) addresses(s.target, t, Type.ANY, out.additionals);
      }
    }
    return out;
  }

  function podAnswer(owner: string, label: string, ns: string, qtype: number): Partial {
    if (opts.podMode === 'disabled' || !index.namespaceExists(ns)) return NXDOMAIN();
    const v4 = label.split('-').length === 4 && !label.includes('--');
    const ip = canonicalIP(v4 ? label.replace(/-/g, '.') : label.replace(/-/g, ':'));
    if (!ip) return NXDOMAIN();
    // Only the canonical spelling names the pod (01-2-3-4 does not), like CoreDNS's string match.
    if ((v4 ? ip.replace(/\./g, '-') : ip.replace(/:/g, '-')) !== label) return NXDOMAIN();
    if (opts.podMode === 'verified' && !index.podHasIP(ns, ip)) return NXDOMAIN();
    const out = NODATA();
    const want = isIPv6(ip) ? Type.AAAA : Type.A;
    if (qtype === want || qtype === Type.ANY) out.answers.push(rr(owner, want, ip));
    return out;
  }

  /** Resolves a lower-case name inside the zone; `owner` is the spelling to answer with. */
  function resolve(name: string, owner: string, qtype: number, depth = 0): Partial {
    if (name === zone) {
      const out = NODATA();
      if (qtype === Type.SOA || qtype === Type.ANY) out.answers.push({ ...soa(), name: owner });
      if (qtype === Type.NS || qtype === Type.ANY) {
        out.answers.push(rr(owner, Type.NS, `ns.dns.${zone}`));
        for (const ip of opts.nameserverIPs) out.additionals.push(rr(`ns.dns.${zone}`, isIPv6(ip) ? Type.AAAA : Type.A, ip));
      }
      return out;
    }
    const rel = name.slice(0, -zoneSuffix.length);
    const labels = rel.split('.');
    const n = labels.length;
    const kind = labels[n - 1];
    if (rel === 'dns-version') {
      const out = NODATA();
      if (qtype === Type.TXT || qtype === Type.ANY) out.answers.push(rr(owner, Type.TXT, [DNS_SCHEMA_VERSION]));
      return out;
    }
    if (rel === 'dns') return NODATA();
    if (rel === 'ns.dns') {
      const out = NODATA();
      for (const ip of opts.nameserverIPs) {
        const t = isIPv6(ip) ? Type.AAAA : Type.A;
        if (qtype === t || qtype === Type.ANY) out.answers.push(rr(owner, t, ip));
      }
      return out;
    }
    if (kind !== 'svc' && kind !== 'pod') return NXDOMAIN();
    if (n === 1) return NODATA();
    const ns = labels[n - 2]!;
    if (n === 2) return index.namespaceExists(ns) ? NODATA() : NXDOMAIN();
    if (kind === 'pod') return n === 3 ? podAnswer(owner, labels[0]!, ns, qtype) : NXDOMAIN();
    if (n > 5 || !index.namespaceExists(ns)) return NXDOMAIN();
    const r = index.lookup(name);
    return r ? fromRecords(owner, r, qtype, depth) : NXDOMAIN();
  }

  function finish(req: DnsRequest, p: Partial): Message {
    const res = reply(req, p.rcode);
    res.aa = true;
    res.answers = p.answers;
    res.additionals = p.additionals;
    if (p.answers.length === 0 && (p.rcode === Rcode.NOERROR || p.rcode === Rcode.NXDOMAIN)) res.authorities = [soa()];
    return res;
  }

  async function chaseExternal(req: DnsRequest, p: Partial, next: Next): Promise<Message> {
    try {
      const sub = await next(subRequest(req, { name: p.external!, type: req.question.type, class: Class.IN }));
      if (sub.rcode === Rcode.NOERROR) p.answers.push(...sub.answers);
    } catch {
      // the CNAME alone is still a correct answer
    }
    const res = finish(req, p);
    return res;
  }

  function servePTR(req: DnsRequest, next: Next) {
    const ip = req.question.type === Type.PTR ? ipFromReverseName(req.qname) : undefined;
    const targets = ip ? index.ptr(ip) : undefined;
    if (!targets || !opts.ready()) return next(req);
    const res = reply(req);
    res.aa = true;
    res.answers = targets.map((t) => rr(req.question.name, Type.PTR, t));
    return res;
  }

  return {
    name: 'kubernetes',
    serve(req, next) {
      const qname = req.qname;
      if (qname !== zone && !qname.endsWith(zoneSuffix)) {
        if (qname.endsWith('.arpa')) return servePTR(req, next);
        return next(req);
      }
      if (!opts.ready()) return reply(req, Rcode.SERVFAIL);
      const p = resolve(qname, req.question.name.replace(/\.$/, ''), req.question.type);
      if (p.external) return chaseExternal(req, p, next);
      return finish(req, p);
    },
  };
}
