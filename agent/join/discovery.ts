/**
 * Discovery, as `kubeadm join` does it with a bootstrap token: read `kube-public/cluster-info`
 * anonymously (the CA is not known yet, so without verifying the server), check its detached JWS
 * for our token id (proves the document comes from someone who knows the token), pin the CA by the
 * sha256 of its public key, then read cluster-info again over TLS verified with that CA and
 * require the same document (so a man in the middle of the first read gains nothing).
 */
import { load } from 'js-yaml';
import type { Logger } from 'pino';
import type { ConfigMap } from 'kubernetes-types/core/v1';
import { ErrorCodes, KeelsonError, errorMessage, isKeelsonError } from '../errors';
import { createKubeClient } from '../kube/client';
import { kubeconfigFromValues } from '../kube/kubeconfig';
import { Resources } from '../kube/resources';
import { isApiStatusError } from '../kube/api-error';
import { verifyDetachedJws } from './jws';
import { parseCertificates, publicKeyPin, type BootstrapToken } from './token';

export interface DiscoveryOptions {
  server: string;
  token: BootstrapToken;
  /** `sha256:<hex>` pins; at least one unless skipCaVerification. */
  caCertHashes: string[];
  skipCaVerification: boolean;
  /** Give up after this long (default 5 min, as kubeadm's --discovery-timeout). */
  timeoutMs?: number;
  /** Pause between attempts while the apiserver is unreachable or the token not yet signed (default 5 s). */
  retryIntervalMs?: number;
  requestTimeoutMs?: number;
  logger: Logger;
}

export interface DiscoveredCluster {
  /** The apiserver URL keelson will use (the one the operator gave). */
  server: string;
  /** The server URL cluster-info names (may differ, e.g. an internal address). */
  clusterInfoServer?: string;
  caPem: string;
  caPin: string;
}

const JWS_PREFIX = 'jws-kubeconfig-';

interface ClusterInfoCluster {
  server?: string;
  caPem: string;
}

function invalidClusterInfo(reason: string): KeelsonError {
  return new KeelsonError(ErrorCodes.JOIN_CLUSTER_INFO_INVALID, `kube-public/cluster-info is not usable: ${reason}`, { object: 'ConfigMap kube-public/cluster-info' });
}

function parseClusterInfoKubeconfig(text: string): ClusterInfoCluster {
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith('{') ? JSON.parse(text) : load(text);
  } catch (err) {
    throw invalidClusterInfo(`its kubeconfig is not YAML: ${errorMessage(err)}`);
  }
  const clusters = (doc as { clusters?: { cluster?: Record<string, unknown> }[] } | undefined)?.clusters;
  const cluster = Array.isArray(clusters) ? clusters[0]?.cluster : undefined;
  const caData = cluster?.['certificate-authority-data'];
  if (!cluster || typeof caData !== 'string' || caData === '') throw invalidClusterInfo('its kubeconfig has no cluster with certificate-authority-data');
  const caPem = Buffer.from(caData, 'base64').toString('utf8');
  if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw invalidClusterInfo('certificate-authority-data holds no PEM certificate');
  return { server: typeof cluster.server === 'string' ? cluster.server : undefined, caPem };
}

/** Errors worth another attempt before the discovery timeout: the network, 5xx, not signed yet. */
function retryable(err: unknown): boolean {
  if (isKeelsonError(err, ErrorCodes.API_UNREACHABLE) || isKeelsonError(err, ErrorCodes.JOIN_TOKEN_UNKNOWN)) return true;
  return isApiStatusError(err) && (err.status.code >= 500 || err.status.code === 404 || err.status.code === 429);
}

async function fetchClusterInfo(server: string, caPem: string | undefined, logger: Logger, timeoutMs: number): Promise<ConfigMap> {
  const client = createKubeClient(
    kubeconfigFromValues({ server, certificateAuthority: caPem, insecureSkipTLSVerify: caPem === undefined }),
    { logger, timeoutMs, userAgent: 'keelson-join' },
  );
  try {
    return await client.get(Resources.configmaps, 'cluster-info', { namespace: 'kube-public' });
  } finally {
    client.close();
  }
}

function checkSignature(cm: ConfigMap, token: BootstrapToken): string {
  const content = cm.data?.kubeconfig;
  if (typeof content !== 'string' || content === '') throw invalidClusterInfo('it has no kubeconfig entry');
  const jws = cm.data?.[`${JWS_PREFIX}${token.id}`];
  if (jws === undefined) {
    throw new KeelsonError(
      ErrorCodes.JOIN_TOKEN_UNKNOWN,
      `cluster-info carries no signature for token id ${token.id}: the token is unknown to the cluster, expired, or not meant for signing; ` +
        `make a new one on the control plane with: kubeadm token create --print-join-command`,
      { object: `token ${token.id}` },
    );
  }
  const check = verifyDetachedJws(jws, content, token.id, token.full);
  if (!check.ok) {
    throw new KeelsonError(
      ErrorCodes.JOIN_SIGNATURE_MISMATCH,
      `cluster-info signature for token id ${token.id} does not verify (${check.reason}): the token secret is wrong, or something between ` +
        `this host and the apiserver altered the answer; check the full token with: kubeadm token list`,
      { object: `token ${token.id}` },
    );
  }
  return content;
}

function unreachableAfter(server: string, timeoutMs: number, last: unknown): KeelsonError {
  return new KeelsonError(
    ErrorCodes.API_UNREACHABLE,
    `apiserver ${server} unreachable for ${Math.round(timeoutMs / 1000)}s (${errorMessage(last)}): check the address and port in --server, ` +
      `that this host can route to it (firewall, VPN), and that the apiserver is running`,
    { object: server, cause: last },
  );
}

export async function discoverCluster(options: DiscoveryOptions): Promise<DiscoveredCluster> {
  const { server, token, logger } = options;
  const timeoutMs = options.timeoutMs ?? 300_000;
  const retryMs = options.retryIntervalMs ?? 5000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  if (!options.skipCaVerification && options.caCertHashes.length === 0) {
    throw new KeelsonError(
      ErrorCodes.JOIN_CA_HASH_MISMATCH,
      'no --discovery-token-ca-cert-hash given: pass the hash kubeadm printed, or accept an unverified CA with --unsafe-skip-ca-verification',
      { object: 'discovery-token-ca-cert-hash' },
    );
  }

  let attempt = 0;
  let lastLogged = '';
  for (;;) {
    attempt++;
    try {
      const insecure = await fetchClusterInfo(server, undefined, logger, requestTimeoutMs);
      const content = checkSignature(insecure, token);
      const cluster = parseClusterInfoKubeconfig(content);
      const certs = parseCertificates(cluster.caPem);
      if (certs.length === 0) throw invalidClusterInfo('certificate-authority-data holds no certificate');
      const pins = certs.map(publicKeyPin);
      const pin = pins.find((p) => options.caCertHashes.includes(p));
      if (!options.skipCaVerification && !pin) {
        throw new KeelsonError(
          ErrorCodes.JOIN_CA_HASH_MISMATCH,
          `the cluster CA's public key hash is ${pins.join(', ')}, not ${options.caCertHashes.join(' or ')}: this is not the cluster you expect, ` +
            `or the hash is stale; on the control plane print the right one with: kubeadm token create --print-join-command`,
          { object: server },
        );
      }
      // The CA is now trusted: the same document must come back over verified TLS.
      const verified = await fetchClusterInfo(server, cluster.caPem, logger, requestTimeoutMs);
      if (verified.data?.kubeconfig !== content) {
        throw invalidClusterInfo('it changed between the unverified and the verified read; try again');
      }
      return { server, clusterInfoServer: cluster.server, caPem: cluster.caPem, caPin: pin ?? pins[0]! };
    } catch (err) {
      if (!retryable(err)) throw err;
      const message = errorMessage(err);
      if (message !== lastLogged) {
        logger.warn({ err, server, attempt }, 'cluster discovery failed, retrying');
        lastLogged = message;
      }
      if (Date.now() + retryMs >= deadline) {
        if (isKeelsonError(err, ErrorCodes.JOIN_TOKEN_UNKNOWN)) throw err;
        if (isApiStatusError(err)) throw new KeelsonError(ErrorCodes.API_UNREACHABLE, `apiserver ${server} kept failing for ${Math.round(timeoutMs / 1000)}s: ${message}`, { object: server, cause: err });
        throw unreachableAfter(server, timeoutMs, err);
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}
