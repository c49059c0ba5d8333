/**
 * Errors from the apiserver: a `Status` body (or an HTTP status without one) becomes an
 * ApiStatusError with code KEELSON_ERR_API_STATUS, carrying the status code, reason and the object
 * concerned (`Pod default/web`). Connection failures use KEELSON_ERR_API_UNREACHABLE.
 */
import type { Status } from 'kubernetes-types/meta/v1';
import { ErrorCodes, KeelsonError } from '../errors';

export interface ApiStatus {
  /** HTTP status code (from the Status body when it has one). */
  code: number;
  /** Machine-readable reason: NotFound, AlreadyExists, Conflict, Expired, Gone, ... ('' if none). */
  reason: string;
  message: string;
  details?: Status['details'];
}

export class ApiStatusError extends KeelsonError {
  readonly status: ApiStatus;

  constructor(status: ApiStatus, object: string, request: string) {
    super(ErrorCodes.API_STATUS, `${request} ${object}: ${status.code} ${status.reason || 'error'}: ${status.message}`, { object });
    this.name = 'ApiStatusError';
    this.status = status;
  }
}

/** Builds the error from an HTTP error response body, whether or not it is a `Status`. */
export function statusFromResponse(httpCode: number, body: string): ApiStatus {
  try {
    const parsed = JSON.parse(body) as Status;
    if (parsed && parsed.kind === 'Status') return statusFromObject(parsed, httpCode);
  } catch {
    // not JSON: fall through
  }
  return { code: httpCode, reason: '', message: body.trim().slice(0, 300) || `HTTP ${httpCode}` };
}

export function statusFromObject(status: Status, fallbackCode = 0): ApiStatus {
  return {
    code: status.code ?? fallbackCode,
    reason: status.reason ?? '',
    message: status.message ?? '',
    details: status.details,
  };
}

export function isApiStatusError(err: unknown, code?: number): err is ApiStatusError {
  return err instanceof ApiStatusError && (code === undefined || err.status.code === code);
}

export const isNotFound = (err: unknown): boolean => isApiStatusError(err, 404);
export const isConflict = (err: unknown): boolean => isApiStatusError(err, 409);
export const isAlreadyExists = (err: unknown): boolean => isApiStatusError(err, 409) && err.status.reason === 'AlreadyExists';

/** The list-watch's resourceVersion is no longer served: relist. */
export function isExpired(status: ApiStatus): boolean {
  return status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone';
}

/**
 * A watch from a version newer than the server has (it lost history, e.g. restarted from an older
 * state): kube-apiserver answers with a Timeout whose cause is ResourceVersionTooLarge. Relist too.
 */
export function isResourceVersionTooLarge(status: ApiStatus): boolean {
  if (status.details?.causes?.some((c) => c.reason === 'ResourceVersionTooLarge')) return true;
  return /too large resource version/i.test(status.message);
}
