/**
 * httpGet probes and hooks: a GET with the spec's headers (plus kubelet's User-Agent and Accept
 * defaults), success for 200–399. Redirects to the same host are followed (up to 10); a redirect
 * elsewhere counts as success, as kubelet does. HTTPS does not verify the certificate.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string;
  headers: { name: string; value: string }[];
}

export interface ProbeOutcome {
  ok: boolean;
  output: string;
}

const MAX_BODY = 10 * 1024;
const MAX_REDIRECTS = 10;

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function getOnce(url: URL, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.request(url, { method: 'GET', headers, timeout: timeoutMs, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_BODY) chunks.push(c);
        size += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export async function httpGet(target: HttpTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.30', accept: '*/*' };
  for (const h of target.headers) headers[h.name.toLowerCase()] = h.value;
  let url = new URL(`${target.scheme}://${formatHost(target.host)}:${target.port}${target.path}`);
  const deadline = Date.now() + timeoutMs;
  for (let redirects = 0; ; redirects++) {
    let res;
    try {
      res = await getOnce(url, headers, Math.max(1, deadline - Date.now()));
    } catch (err) {
      return { ok: false, output: `Get "${url.href}": ${(err as Error).message}` };
    }
    if (res.status >= 300 && res.status < 400 && res.location && redirects < MAX_REDIRECTS) {
      const next = new URL(res.location, url);
      if (next.hostname !== url.hostname) return { ok: true, output: `Probe terminated redirects, Response body: ${res.body}` };
      url = next;
      continue;
    }
    if (res.status >= 200 && res.status < 400) return { ok: true, output: res.body };
    return { ok: false, output: `HTTP probe failed with statuscode: ${res.status}` };
  }
}
