/**
 * Certificate expiry: the kubeconfig's client certificate (keelson rotates it before it expires,
 * but cannot once it has: the apiserver no longer accepts it) and the cluster CA.
 */
import { X509Certificate } from 'node:crypto';
import { errorMessage } from '../errors';
import { fail, ok, warn, type CheckResult, type DoctorCheck } from './check';

export const EXPIRY_WARN_MS = 7 * 24 * 3600 * 1000;
const REJOIN = 'join again: on the control plane run kubeadm token create --print-join-command, then on this host keelson join --server URL --token TOKEN --discovery-token-ca-cert-hash sha256:HASH and systemctl restart keelson';

function firstCertificate(pem: Buffer): X509Certificate {
  const text = pem.toString('utf8');
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  return new X509Certificate(m ? m[0] : pem);
}

function days(ms: number): string {
  const d = ms / 86_400_000;
  return d >= 2 ? `${Math.floor(d)} days` : `${Math.max(0, Math.round(ms / 3_600_000))} hours`;
}

export function certificateResult(name: string, what: string, pem: Buffer, now: number, renewal: string): CheckResult {
  let cert: X509Certificate;
  try {
    cert = firstCertificate(pem);
  } catch (err) {
    return fail(name, `${what} does not parse: ${errorMessage(err)}`, renewal);
  }
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  const subject = cert.subject.replace(/\n/g, ', ');
  if (now >= notAfter) return fail(name, `${what} (${subject}) expired ${days(now - notAfter)} ago (${cert.validTo})`, renewal);
  if (now < notBefore) return fail(name, `${what} (${subject}) is not valid before ${cert.validFrom}: this host's clock is behind`, 'synchronise the clock: timedatectl set-ntp true (or install chrony)');
  if (notAfter - now < EXPIRY_WARN_MS) return warn(name, `${what} (${subject}) expires in ${days(notAfter - now)} (${cert.validTo})`, renewal);
  return ok(name, `${what} (${subject}) valid until ${cert.validTo}`);
}

export const certificatesCheck: DoctorCheck = {
  name: 'certificates',
  async run(ctx) {
    const kc = ctx.kubeconfig();
    if (kc === undefined) return ok('certificates', 'not joined (no kubeconfig): nothing to check');
    if (kc instanceof Error) return fail('certificates', errorMessage(kc), REJOIN);
    const results: CheckResult[] = [];
    const where = kc.source?.clientCertificatePath ?? kc.source?.path ?? 'kubeconfig';
    if (kc.credentials.clientCertificate) {
      results.push(certificateResult('client certificate', `client certificate ${where}`, kc.credentials.clientCertificate, ctx.now(), `keelson can no longer rotate it: ${REJOIN}`));
    } else {
      results.push(ok('client certificate', `${kc.source?.path ?? 'kubeconfig'} uses a token, no client certificate`));
    }
    if (kc.certificateAuthority) {
      results.push(certificateResult('cluster CA', `cluster CA in ${kc.source?.path ?? 'kubeconfig'}`, kc.certificateAuthority, ctx.now(), `the cluster CA was renewed on the control plane: ${REJOIN}`));
    }
    return results;
  },
};
