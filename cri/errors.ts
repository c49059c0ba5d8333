/**
 * CRI client errors. Same shape as agent/errors.ts's KeelsonError (stable `code`, the `object` it
 * concerns) — cri/ may not import agent/ — plus the gRPC status code when the runtime answered.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

export const CriErrorCodes = {
  /** The socket is missing, refuses connections, or the runtime went away. */
  UNAVAILABLE: 'KEELSON_ERR_CRI_UNAVAILABLE',
  /** The runtime answers but does not serve the runtime.v1 API (Version is Unimplemented). */
  UNSUPPORTED_VERSION: 'KEELSON_ERR_CRI_UNSUPPORTED_VERSION',
  /** The runtime answered a call with an error status. */
  CALL_FAILED: 'KEELSON_ERR_CRI_CALL_FAILED',
  /** The call's deadline passed before the runtime answered. */
  DEADLINE: 'KEELSON_ERR_CRI_DEADLINE',
} as const;

export type CriErrorCode = (typeof CriErrorCodes)[keyof typeof CriErrorCodes];

export class CriError extends Error {
  readonly code: CriErrorCode;
  /** What the call concerned: `container=<id>`, `podSandbox=<id>`, `image=<ref>`, `socket=<path>`. */
  readonly object: string | undefined;
  /** The RPC, e.g. `RuntimeService/StartContainer`. */
  readonly method: string;
  /** gRPC status code (numeric) when there was one, e.g. 5 for NOT_FOUND. */
  readonly grpcCode: number | undefined;
  /** gRPC status name, e.g. `NOT_FOUND`. */
  readonly grpcCodeName: string | undefined;

  constructor(
    code: CriErrorCode,
    message: string,
    options: { object?: string; method: string; grpcCode?: number; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CriError';
    this.code = code;
    this.object = options.object;
    this.method = options.method;
    this.grpcCode = options.grpcCode;
    this.grpcCodeName = options.grpcCode === undefined ? undefined : GrpcStatus[options.grpcCode];
  }
}

export function isCriError(err: unknown, code?: CriErrorCode): err is CriError {
  return err instanceof CriError && (code === undefined || err.code === code);
}

/** True when the runtime reported that the object does not exist (gRPC NOT_FOUND). */
export function isNotFound(err: unknown): boolean {
  return isCriError(err) && err.grpcCode === GrpcStatus.NOT_FOUND;
}

/** True when the runtime does not implement the RPC (e.g. GetContainerEvents on containerd 1.6). */
export function isUnimplemented(err: unknown): boolean {
  return isCriError(err) && err.grpcCode === GrpcStatus.UNIMPLEMENTED;
}

interface GrpcLikeError {
  code?: unknown;
  details?: unknown;
  message?: unknown;
}

export interface CallContext {
  /** `RuntimeService/Version`, ... */
  method: string;
  /** Object the call concerns, if any (`container=<id>`). */
  object?: string;
  /** The unix socket path, named in unavailable errors. */
  socket: string;
  /** The deadline the call had, in ms. */
  timeoutMs: number;
}

/** Maps a gRPC error of one call to a CriError with a stable code. Pure, unit-tested. */
export function toCriError(err: unknown, ctx: CallContext): CriError {
  const e = (err ?? {}) as GrpcLikeError;
  const grpcCode = typeof e.code === 'number' ? e.code : undefined;
  // grpc-js ends connection errors with an empty "Resolution note:"; journal lines are long enough.
  const details = (typeof e.details === 'string' && e.details ? e.details : typeof e.message === 'string' ? e.message : String(err)).replace(/\s*Resolution note:\s*$/, '');
  const about = ctx.object ? ` (${ctx.object})` : '';
  if (grpcCode === GrpcStatus.UNAVAILABLE) {
    return new CriError(
      CriErrorCodes.UNAVAILABLE,
      `CRI runtime unavailable at unix socket ${ctx.socket}: ${details} [${ctx.method}${about}]`,
      { object: `socket=${ctx.socket}`, method: ctx.method, grpcCode, cause: err },
    );
  }
  if (grpcCode === GrpcStatus.DEADLINE_EXCEEDED) {
    return new CriError(
      CriErrorCodes.DEADLINE,
      `CRI call ${ctx.method}${about} exceeded its ${ctx.timeoutMs} ms deadline (socket ${ctx.socket})`,
      { object: ctx.object ?? `socket=${ctx.socket}`, method: ctx.method, grpcCode, cause: err },
    );
  }
  if (grpcCode === GrpcStatus.UNIMPLEMENTED && ctx.method === 'RuntimeService/Version') {
    return new CriError(
      CriErrorCodes.UNSUPPORTED_VERSION,
      `CRI runtime at ${ctx.socket} does not serve the runtime.v1 API (Version: ${details})`,
      { object: `socket=${ctx.socket}`, method: ctx.method, grpcCode, cause: err },
    );
  }
  const codeName = grpcCode === undefined ? 'UNKNOWN' : (GrpcStatus[grpcCode] ?? String(grpcCode));
  return new CriError(CriErrorCodes.CALL_FAILED, `CRI call ${ctx.method}${about} failed: ${codeName}: ${details}`, {
    object: ctx.object,
    method: ctx.method,
    grpcCode,
    cause: err,
  });
}
