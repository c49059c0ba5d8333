/**
 * Client certificate rotation: at a jittered point between 70 % and 90 % of the current
 * certificate's life, request a new one through the certificates API with the current
 * credentials, write it (cert + key, one file, atomically) and hand the new credentials to
 * `onRotated`, which swaps them into the shared kube client: new requests use them, open watches
 * keep running until their next reconnect, informers are not recreated. Failures retry with
 * backoff (1 min up to 10 min by default) until the certificate expires and after.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { ComponentHealth } from '../component';
import { errorMessage } from '../errors';
import { requestClientCertificate } from '../join/certificate-request';
import { CLIENT_CERT_FILE, writeClientCertificate } from '../join/credentials';
import { createBackoff } from '../kube/backoff';
import type { Clock, TimerHandle } from '../kube/clock';
import type { KubeClient } from '../kube/client';
import type { KubeCredentials } from '../kube/kubeconfig';

export interface CertificateRotationOptions {
  client: Pick<KubeClient, 'create' | 'get'>;
  nodeName: string;
  /** The PEM file holding the current certificate (and key): `<certDir>/kubelet-client-current.pem`. */
  certPath: string;
  clock: Clock;
  logger: Logger;
  onRotated(credentials: KubeCredentials): void;
  /** How long one CSR may wait for approval (default 15 min). */
  approvalTimeoutMs?: number;
  pollIntervalMs?: number;
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface CertificateRotation {
  start(): void;
  stop(): Promise<void>;
  /** When the next rotation is planned (ms), if one is. */
  nextRotation(): number | undefined;
  health(): ComponentHealth;
}

/** Longest single timer; later deadlines are reached in steps (setTimeout overflows past 2^31 ms). */
const MAX_TIMER_MS = 24 * 3600 * 1000;

export function readCertificate(path: string): X509Certificate {
  const text = readFileSync(path, 'utf8');
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  if (!block) throw new Error(`${path} holds no PEM certificate`);
  return new X509Certificate(block[0]);
}

/** notBefore + life × (0.7 … 0.9), jittered by `random` in [0, 1). */
export function rotationDeadline(cert: X509Certificate, random: number): number {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  return notBefore + (notAfter - notBefore) * (0.7 + 0.2 * random);
}

export function createCertificateRotation(options: CertificateRotationOptions): CertificateRotation {
  const { clock, logger, nodeName } = options;
  const log = logger.child({ cert: options.certPath });
  const backoff = createBackoff(clock, { initialMs: options.backoff?.initialMs ?? 60_000, maxMs: options.backoff?.maxMs ?? 600_000, jitter: 0.5, resetAfterMs: 0 });
  let running = false;
  let timer: TimerHandle | undefined;
  let deadline: number | undefined;
  let notAfter: number | undefined;
  let inFlight: Promise<void> | undefined;
  let lastError: string | undefined;
  const abort = new AbortController();

  function wakeAt(at: number): void {
    if (!running) return;
    const delay = Math.max(0, at - clock.now());
    timer = clock.setTimeout(() => {
      timer = undefined;
      if (clock.now() < at) return wakeAt(at);
      inFlight = rotate().finally(() => (inFlight = undefined));
    }, Math.min(delay, MAX_TIMER_MS));
  }

  function plan(): void {
    try {
      const cert = readCertificate(options.certPath);
      notAfter = Date.parse(cert.validTo);
      deadline = rotationDeadline(cert, clock.random());
      log.info({ notAfter: new Date(notAfter).toISOString(), rotateAt: new Date(deadline).toISOString() }, 'client certificate rotation planned');
      wakeAt(deadline);
    } catch (err) {
      lastError = errorMessage(err);
      log.error({ err }, 'cannot read the client certificate; rotation is off');
    }
  }

  async function rotate(): Promise<void> {
    if (!running) return;
    try {
      const issued = await requestClientCertificate({
        client: options.client,
        nodeName,
        logger: log,
        timeoutMs: options.approvalTimeoutMs ?? 900_000,
        pollIntervalMs: options.pollIntervalMs,
        signal: abort.signal,
      });
      if (!running) return;
      const dir = dirname(options.certPath);
      const written = writeClientCertificate(dir, issued.certPem, issued.keyPem);
      if (written !== options.certPath) log.warn({ written }, `certificate written to ${CLIENT_CERT_FILE} beside the configured path`);
      options.onRotated({ clientCertificate: Buffer.from(issued.certPem), clientKey: Buffer.from(issued.keyPem) });
      lastError = undefined;
      backoff.succeeded();
      log.info({ csr: issued.csrName, notAfter: issued.notAfter.toISOString() }, 'client certificate rotated');
      plan();
    } catch (err) {
      if (!running) return;
      lastError = errorMessage(err);
      const retryMs = backoff.next();
      const expired = notAfter !== undefined && clock.now() >= notAfter;
      log[expired ? 'error' : 'warn']({ err, retryInSeconds: Math.round(retryMs / 1000) }, expired ? 'client certificate expired and rotation failed' : 'client certificate rotation failed, will retry');
      wakeAt(clock.now() + retryMs);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      plan();
    },
    async stop() {
      running = false;
      abort.abort();
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
    nextRotation: () => deadline,
    health() {
      const expired = notAfter !== undefined && clock.now() >= notAfter;
      return {
        name: 'client-certificate',
        healthy: !expired && (lastError === undefined || notAfter !== undefined),
        message: expired
          ? `client certificate expired ${new Date(notAfter!).toISOString()}${lastError ? `: ${lastError}` : ''}`
          : lastError
            ? `rotation failing: ${lastError}`
            : deadline !== undefined
              ? `valid until ${new Date(notAfter!).toISOString()}, rotation at ${new Date(deadline).toISOString()}`
              : 'not planned',
      };
    },
  };
}
