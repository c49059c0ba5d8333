/**
 * Getting a kubelet client certificate through the certificates API: a fresh key, a CSR object
 * for signer `kubernetes.io/kube-apiserver-client-kubelet`, then wait until it is approved and
 * signed (or denied, or the time is up). Used by `keelson join` (with the bootstrap token) and by
 * certificate rotation (with the node's current certificate).
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { CertificateSigningRequest } from 'kubernetes-types/certificates/v1';
import { ErrorCodes, KeelsonError, errorMessage } from '../errors';
import type { KubeClient } from '../kube/client';
import { Resources } from '../kube/resources';
import { createCertificateRequest, generateClientKey, nodeClientSubject } from './csr';

export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
/** All three, always: some apiserver versions leave a CSR with fewer usages pending forever. */
export const KUBELET_CLIENT_USAGES = ['digital signature', 'key encipherment', 'client auth'] as const;

export interface CertificateRequestOptions {
  client: Pick<KubeClient, 'create' | 'get'>;
  nodeName: string;
  logger: Logger;
  /** How long to wait for approval and signing (default 5 min). */
  timeoutMs?: number;
  /** Pause between checks of the CSR (default 1 s). */
  pollIntervalMs?: number;
  /** Validity to ask for (spec.expirationSeconds); the signer's default when absent. */
  expirationSeconds?: number;
  signal?: AbortSignal;
}

export interface IssuedClientCertificate {
  csrName: string;
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

function conditionOf(csr: CertificateSigningRequest, type: string) {
  return csr.status?.conditions?.find((c) => c.type === type && c.status !== 'False');
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

export async function requestClientCertificate(options: CertificateRequestOptions): Promise<IssuedClientCertificate> {
  const { client, nodeName, logger } = options;
  const timeoutMs = options.timeoutMs ?? 300_000;
  const pollMs = options.pollIntervalMs ?? 1000;
  const key = generateClientKey();
  const requestPem = createCertificateRequest(nodeClientSubject(nodeName), key.privateKey);
  const created = await client.create(Resources.certificatesigningrequests, {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'node-csr-' },
    spec: {
      request: Buffer.from(requestPem).toString('base64'),
      signerName: KUBELET_CLIENT_SIGNER,
      usages: [...KUBELET_CLIENT_USAGES],
      ...(options.expirationSeconds ? { expirationSeconds: options.expirationSeconds } : {}),
    },
  });
  const name = created.metadata?.name ?? '';
  const object = `CertificateSigningRequest ${name}`;
  logger.info({ csr: name, node: nodeName }, 'certificate signing request created, waiting for approval');

  const deadline = Date.now() + timeoutMs;
  let csr: CertificateSigningRequest = created;
  let lastError: unknown;
  for (;;) {
    const denied = conditionOf(csr, 'Denied') ?? conditionOf(csr, 'Failed');
    if (denied) {
      const verb = denied.type === 'Denied' ? 'was denied' : 'failed';
      throw new KeelsonError(
        ErrorCodes.CSR_DENIED,
        `certificate signing request ${name} ${verb}${denied.reason ? ` (${denied.reason}${denied.message ? `: ${denied.message}` : ''})` : ''}: ` +
          `the node gets no credentials; ask a cluster admin why, then run keelson join again (a new request is made)`,
        { object },
      );
    }
    const cert = csr.status?.certificate;
    if (cert) {
      const certPem = Buffer.from(cert, 'base64').toString('utf8');
      const x509 = new X509Certificate(certPem);
      if (!x509.checkPrivateKey(key.privateKey)) {
        throw new KeelsonError(ErrorCodes.CSR_DENIED, `certificate issued for ${name} does not match the request's key`, { object });
      }
      logger.info({ csr: name, notAfter: x509.validTo }, 'certificate signing request approved and signed');
      return { csrName: name, certPem, keyPem: key.privateKeyPem, notAfter: new Date(x509.validTo) };
    }
    if (options.signal?.aborted) throw new KeelsonError(ErrorCodes.CSR_TIMEOUT, `gave up waiting for ${name}: cancelled`, { object });
    if (Date.now() >= deadline) {
      const approved = Boolean(conditionOf(csr, 'Approved'));
      throw new KeelsonError(
        ErrorCodes.CSR_TIMEOUT,
        approved
          ? `certificate signing request ${name} was approved but not signed within ${Math.round(timeoutMs / 1000)}s: is kube-controller-manager's csrsigning controller running?`
          : `certificate signing request ${name} was not approved within ${Math.round(timeoutMs / 1000)}s: approve it with ` +
              `kubectl certificate approve ${name}, then run keelson join again (or let the cluster auto-approve node client certificates, as kubeadm sets up)` +
              (lastError ? `; last error: ${errorMessage(lastError)}` : ''),
        { object },
      );
    }
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), options.signal);
    try {
      csr = await client.get(Resources.certificatesigningrequests, name);
      lastError = undefined;
    } catch (err) {
      // A blip while waiting is not fatal: the deadline decides.
      if (!lastError) logger.warn({ err, csr: name }, 'cannot read certificate signing request, retrying');
      lastError = err;
    }
  }
}
