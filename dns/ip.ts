/** IPv4/IPv6 text ⇄ bytes, and the reverse-lookup names (in-addr.arpa, ip6.arpa). */

export function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

export function parseIPv6(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const double = text.indexOf('::');
  if (double !== -1 && text.indexOf('::', double + 1) !== -1) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  let words: number[];
  if (double === -1) {
    const all = groups(text);
    if (!all || all.length !== 8) return undefined;
    words = all;
  } else {
    const head = groups(text.slice(0, double));
    const tail = groups(text.slice(double + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >> 8, w & 0xff);
  return bytes;
}

export function formatIPv4(b: ArrayLike<number>, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text form. */
export function formatIPv6(b: ArrayLike<number>, off = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** Canonical text of an IP (v4 or v6), or undefined when it is not one. */
/** The canonical text of an IP; the input string itself when it already is (so callers share it). */
export function canonicalIP(text: string): string | undefined {
  let out: string | undefined;
  if (text.includes(':')) {
    const b = parseIPv6(text);
    out = b ? formatIPv6(b) : undefined;
  } else {
    const b = parseIPv4(text);
    out = b ? formatIPv4(b) : undefined;
  }
  return out === text ? text : out;
}

export function isIPv6(text: string): boolean {
  return text.includes(':');
}

/** The PTR owner name (lower case, no trailing dot) of an IP. */
export function reverseName(ip: string): string | undefined {
  if (isIPv6(ip)) {
    const b = parseIPv6(ip);
    if (!b) return undefined;
    const nibbles: string[] = [];
    for (let i = 15; i >= 0; i--) nibbles.push((b[i]! & 0xf).toString(16), (b[i]! >> 4).toString(16));
    return `${nibbles.join('.')}.ip6.arpa`;
  }
  const b = parseIPv4(ip);
  return b ? `${b[3]}.${b[2]}.${b[1]}.${b[0]}.in-addr.arpa` : undefined;
}

/** The IP a full reverse name stands for, or undefined (partial names and junk included). */
export function ipFromReverseName(name: string): string | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4) return undefined;
    const ip = parseIPv4(parts.reverse().join('.'));
    return ip ? formatIPv4(ip) : undefined;
  }
  if (name.endsWith('.ip6.arpa')) {
    const parts = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || parts.some((p) => !/^[0-9a-f]$/.test(p))) return undefined;
    const bytes: number[] = [];
    for (let i = 31; i > 0; i -= 2) bytes.push((parseInt(parts[i]!, 16) << 4) | parseInt(parts[i - 1]!, 16));
    return formatIPv6(bytes);
  }
  return undefined;
}
