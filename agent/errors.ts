/**
 * Keelson's error catalogue: every error the daemon reports carries a stable code and, where there
 * is one, the object it concerns (`pod=ns/name`, a file path, a socket). Components that may not
 * import agent/ (cri/, dns/, netproxy/) define errors of the same shape with codes listed here too.
 */
import { CriErrorCodes } from '../cri/errors';
import { DnsErrorCodes } from '../dns/errors';
import { ProxyErrorCodes } from '../netproxy/errors';

export const ErrorCodes = {
  CONFIG_INVALID: 'KEELSON_ERR_CONFIG_INVALID',
  CONFIG_UNREADABLE: 'KEELSON_ERR_CONFIG_UNREADABLE',
  KUBECONFIG_INVALID: 'KEELSON_ERR_KUBECONFIG_INVALID',
  API_UNREACHABLE: 'KEELSON_ERR_API_UNREACHABLE',
  API_STATUS: 'KEELSON_ERR_API_STATUS',
  WATCH_EXPIRED: 'KEELSON_ERR_WATCH_EXPIRED',
  WATCH_STALLED: 'KEELSON_ERR_WATCH_STALLED',
  MANIFEST_INVALID: 'KEELSON_ERR_MANIFEST_INVALID',
  POD_SYNC_FAILED: 'KEELSON_ERR_POD_SYNC_FAILED',
  // keelson join (agent/join), node registration and credentials (agent/node)
  JOIN_TOKEN_INVALID: 'KEELSON_ERR_JOIN_TOKEN_INVALID',
  JOIN_TOKEN_UNKNOWN: 'KEELSON_ERR_JOIN_TOKEN_UNKNOWN',
  JOIN_SIGNATURE_MISMATCH: 'KEELSON_ERR_JOIN_SIGNATURE_MISMATCH',
  JOIN_CA_HASH_MISMATCH: 'KEELSON_ERR_JOIN_CA_HASH_MISMATCH',
  JOIN_CLUSTER_INFO_INVALID: 'KEELSON_ERR_JOIN_CLUSTER_INFO_INVALID',
  CSR_DENIED: 'KEELSON_ERR_CSR_DENIED',
  CSR_TIMEOUT: 'KEELSON_ERR_CSR_TIMEOUT',
  PERMISSION_MISSING: 'KEELSON_ERR_PERMISSION_MISSING',
  NODE_REGISTRATION_FAILED: 'KEELSON_ERR_NODE_REGISTRATION_FAILED',
  // kubelet API (agent/server)
  KUBELET_API_LISTEN: 'KEELSON_ERR_KUBELET_API_LISTEN',
  // pod spec features (agent/pods: env, volumes, image pull secrets)
  POD_DATA_UNAVAILABLE: 'KEELSON_ERR_POD_DATA_UNAVAILABLE',
  VOLUME_SETUP_FAILED: 'KEELSON_ERR_VOLUME_SETUP_FAILED',
} as const;

/** Every code keelson reports, the daemon's own and those of cri/, dns/ and netproxy/. */
export const ErrorCatalogue: readonly string[] = [
  ...new Set([...Object.values(ErrorCodes), ...Object.values(CriErrorCodes), ...Object.values(DnsErrorCodes), ...Object.values(ProxyErrorCodes)]),
].sort();

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class KeelsonError extends Error {
  readonly code: string;
  /** The object the error concerns: `pod=ns/name`, a file path, a socket path, an URL. */
  readonly object: string | undefined;

  constructor(code: string, message: string, options: { object?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeelsonError';
    this.code = code;
    this.object = options.object;
  }
}

export function isKeelsonError(err: unknown, code?: string): err is KeelsonError {
  return err instanceof KeelsonError && (code === undefined || err.code === code);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
