/** Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`, as kubeadm makes them) and CA public-key pins. */
import { createHash, X509Certificate } from 'node:crypto';
import { ErrorCodes, KeelsonError } from '../errors';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>`: the bearer token, and the HMAC key of cluster-info's signatures. */
  full: string;
}

const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

export function parseBootstrapToken(text: string): BootstrapToken {
  const trimmed = text.trim();
  const m = TOKEN.exec(trimmed);
  if (!m) {
    // Never echo the secret part back: the message may end up in logs.
    const shown = trimmed.includes('.') ? `${trimmed.slice(0, trimmed.indexOf('.'))}.<redacted>` : '<redacted>';
    throw new KeelsonError(
      ErrorCodes.JOIN_TOKEN_INVALID,
      `bootstrap token ${shown} is malformed: expected 6 and 16 lower-case letters or digits joined by a dot ` +
        `(abcdef.0123456789abcdef); make one on the control plane with: kubeadm token create --print-join-command`,
      { object: 'token' },
    );
  }
  return { id: m[1]!, secret: m[2]!, full: trimmed };
}

/** `sha256:<hex>` of the DER SubjectPublicKeyInfo of a certificate, as kubeadm pins the CA. */
export function publicKeyPin(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

export function parsePin(text: string): string {
  const value = text.trim().toLowerCase();
  if (!/^sha256:[0-9a-f]{64}$/.test(value)) {
    throw new KeelsonError(
      ErrorCodes.JOIN_CA_HASH_MISMATCH,
      `--discovery-token-ca-cert-hash ${JSON.stringify(text)} is malformed: expected sha256:<64 hex digits> as kubeadm prints it`,
      { object: 'discovery-token-ca-cert-hash' },
    );
  }
  return value;
}

/** The certificates of a PEM bundle. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}
