/**
 * The CSR signer that kube-controller-manager runs, built in: an approved CertificateSigningRequest
 * for `kubernetes.io/kube-apiserver-client-kubelet`, `kubernetes.io/kube-apiserver-client` or
 * `kubernetes.io/kubelet-serving` is signed with the test CA and gets `status.certificate`.
 * Validity: `spec.expirationSeconds` (minimum 600) capped by the configured duration. Kubelet
 * client CSRs must ask for `CN=system:node:<name>, O=system:nodes`, or they are marked Failed.
 * Optional auto-approval of kubelet client CSRs, as the csrapproving controller does for
 * bootstrappers and nodes.
 */
import type { Logger } from 'pino';
import type { Registry } from './registry';
import { nowTimestamp } from './registry';
import { resourceForKind, resourceId } from './resources';
import type { Obj } from './store';

export const SIGNERS = [
  'kubernetes.io/kube-apiserver-client-kubelet',
  'kubernetes.io/kube-apiserver-client',
  'kubernetes.io/kubelet-serving',
];

export interface CsrSignerOptions {
  sign(csrPem: string, options: { seconds: number; usages: string[]; copySans: boolean }): Promise<string>;
  /** Default and maximum validity (kube-controller-manager: --cluster-signing-duration, 1 year). */
  durationSeconds: number;
  autoApprove: () => boolean;
  logger?: Logger;
}

export interface CsrSigner {
  stop(): void;
  /** Resolves when no signing is in flight (tests). */
  idle(): Promise<void>;
}

function condition(csr: Obj, type: string): Obj | undefined {
  return ((csr.status?.conditions ?? []) as Obj[]).find((c) => c.type === type && c.status !== 'False');
}

/** Subject of a PEM CSR without shelling out: parses the DER just enough to read CN and O. */
export function csrSubject(csrPem: string): { cn?: string; o: string[] } {
  const b64 = csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  const result: { cn?: string; o: string[] } = { o: [] };
  // Walk all OID + string pairs; 2.5.4.3 = CN, 2.5.4.10 = O.
  for (let i = 0; i + 7 < der.length; i++) {
    if (der[i] === 0x06 && der[i + 1] === 0x03 && der[i + 2] === 0x55 && der[i + 3] === 0x04) {
      const attr = der[i + 4];
      const tag = der[i + 5];
      const len = der[i + 6]!;
      if (tag !== 0x0c && tag !== 0x13 && tag !== 0x14) continue;
      const value = der.subarray(i + 7, i + 7 + len).toString('utf8');
      if (attr === 0x03) result.cn = value;
      if (attr === 0x0a) result.o.push(value);
    }
  }
  return result;
}

export function createCsrSigner(registry: Registry, options: CsrSignerOptions): CsrSigner {
  const def = resourceForKind('CertificateSigningRequest', 'certificates.k8s.io/v1')!;
  const resource = resourceId(def);
  const inFlight = new Map<string, Promise<void>>();
  let stopped = false;

  function setStatus(name: string, mutate: (csr: Obj) => void): void {
    const current = registry.store.get(resource, `/${name}`);
    if (!current) return;
    const next = structuredClone(current);
    next.status ??= {};
    mutate(next);
    registry.update(def, undefined, name, next, 'status');
  }

  async function sign(csr: Obj): Promise<void> {
    const name: string = csr.metadata.name;
    const spec = csr.spec ?? {};
    const pem = Buffer.from(spec.request ?? '', 'base64').toString('utf8');
    const fail = (message: string) =>
      setStatus(name, (c) => {
        c.status.conditions = [
          ...((c.status.conditions ?? []) as Obj[]),
          { type: 'Failed', status: 'True', reason: 'SignerValidationFailure', message, lastUpdateTime: nowTimestamp(), lastTransitionTime: nowTimestamp() },
        ];
      });
    if (spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet') {
      const subject = csrSubject(pem);
      if (!subject.cn?.startsWith('system:node:') || subject.o.length !== 1 || subject.o[0] !== 'system:nodes') {
        fail('subject must be CN=system:node:<name>, O=system:nodes');
        return;
      }
    }
    const requested = typeof spec.expirationSeconds === 'number' ? Math.max(600, spec.expirationSeconds) : options.durationSeconds;
    const seconds = Math.min(requested, options.durationSeconds);
    try {
      const certPem = await options.sign(pem, {
        seconds,
        usages: spec.usages ?? ['digital signature', 'key encipherment', 'client auth'],
        copySans: spec.signerName === 'kubernetes.io/kubelet-serving',
      });
      if (stopped) return;
      setStatus(name, (c) => {
        c.status.certificate = Buffer.from(certPem).toString('base64');
      });
      options.logger?.debug({ csr: name }, 'signed certificate signing request');
    } catch (err) {
      if (!stopped) fail(`signing failed: ${(err as Error).message}`);
    }
  }

  function consider(csr: Obj): void {
    const name: string = csr.metadata?.name;
    if (!name || !SIGNERS.includes(csr.spec?.signerName)) return;
    if (csr.status?.certificate || condition(csr, 'Denied') || condition(csr, 'Failed')) return;
    if (!condition(csr, 'Approved')) {
      if (options.autoApprove() && csr.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet') {
        const conditions = [
          ...((csr.status?.conditions ?? []) as Obj[]),
          { type: 'Approved', status: 'True', reason: 'AutoApproved', message: 'Auto approving kubelet client certificate', lastUpdateTime: nowTimestamp(), lastTransitionTime: nowTimestamp() },
        ];
        registry.update(def, undefined, name, { ...csr, status: { ...(csr.status ?? {}), conditions } }, 'approval');
      }
      return;
    }
    if (inFlight.has(name)) return;
    const job = sign(csr).finally(() => inFlight.delete(name));
    inFlight.set(name, job);
  }

  const unsubscribe = registry.store.subscribe((ev) => {
    if (ev.resource !== resource || ev.type === 'DELETED') return;
    const csr = ev.object;
    setImmediate(() => {
      if (stopped) return;
      const current = registry.store.get(resource, `/${csr.metadata.name}`);
      if (current) consider(current);
    });
  });

  return {
    stop() {
      stopped = true;
      unsubscribe();
    },
    async idle() {
      while (inFlight.size) await Promise.all([...inFlight.values()]);
    },
  };
}
