/**
 * Detached JWS (compact form with an empty payload, `header..signature`) as the bootstrap signer
 * puts in `kube-public/cluster-info`: HS256 over `header.base64url(kubeconfig)`, keyed with the
 * full bootstrap token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type JwsCheck = { ok: true } | { ok: false; reason: string };

export function verifyDetachedJws(jws: string, content: string, tokenId: string, key: string): JwsCheck {
  const parts = jws.trim().split('.');
  if (parts.length !== 3 || parts[1] !== '') return { ok: false, reason: 'not a detached JWS (header..signature)' };
  const [header, , signature] = parts as [string, string, string];
  let decoded: { alg?: unknown; kid?: unknown };
  try {
    decoded = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof decoded;
  } catch {
    return { ok: false, reason: 'JWS header is not base64url JSON' };
  }
  if (decoded.alg !== 'HS256') return { ok: false, reason: `JWS algorithm ${JSON.stringify(decoded.alg)} is not HS256` };
  if (decoded.kid !== undefined && decoded.kid !== tokenId) return { ok: false, reason: `JWS key id ${JSON.stringify(decoded.kid)} is not the token id ${tokenId}` };
  const expected = createHmac('sha256', key).update(`${header}.${Buffer.from(content, 'utf8').toString('base64url')}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}
