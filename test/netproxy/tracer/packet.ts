/** The packet and outcome shapes every tracer (nftables, iptables, ipvs) shares. */
export interface Packet {
  src: string;
  dst: string;
  port: number;
  proto: 'tcp' | 'udp' | 'sctp';
  /** Sent by a process on the node itself (OUTPUT path) rather than arriving (PREROUTING). */
  fromNode?: boolean;
}

export interface Outcome {
  verdict: 'accept' | 'drop' | 'reject';
  /** The endpoint the packet was DNATed to, `ip:port`, if any. */
  endpoint?: string;
  masquerade: boolean;
}

export interface Tracer {
  /** Every outcome a NEW connection can have (one per random choice). */
  trace(pkt: Packet): Outcome[];
}

/** Summary of all outcomes: reachable endpoints, whether they are masqueraded, or the drop/reject. */
export interface FlowResult {
  endpoints: string[];
  masquerade?: boolean;
  verdict: 'accept' | 'drop' | 'reject' | 'mixed';
}

export function summarize(outcomes: Outcome[]): FlowResult {
  const verdicts = new Set(outcomes.map((o) => o.verdict));
  const endpoints = [...new Set(outcomes.filter((o) => o.endpoint).map((o) => o.endpoint!))].sort();
  const masq = new Set(outcomes.filter((o) => o.endpoint).map((o) => o.masquerade));
  return {
    endpoints,
    ...(masq.size === 1 ? { masquerade: [...masq][0]! } : {}),
    verdict: verdicts.size === 1 ? [...verdicts][0]! : 'mixed',
  };
}

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
