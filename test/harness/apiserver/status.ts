/** `Status` error bodies, shaped as kube-apiserver returns them (metav1.Status, apiVersion v1). */
export type StatusReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'BadRequest'
  | 'Gone'
  | 'Expired'
  | 'Unauthorized'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout'
  | 'TooManyRequests';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: StatusReason | '';
  details?: StatusDetails;
  code: number;
}

export class ApiError extends Error {
  readonly code: number;
  readonly reason: StatusReason;
  readonly details: StatusDetails | undefined;

  constructor(code: number, reason: StatusReason, message: string, details?: StatusDetails) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): StatusBody {
    const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** `pods`, `leases.coordination.k8s.io`: the qualified resource name used in messages. */
export interface Qualified {
  plural: string;
  group: string;
}

function qualified(res: Qualified): string {
  return res.group ? `${res.plural}.${res.group}` : res.plural;
}

export const errors = {
  notFound: (res: Qualified, name: string) =>
    new ApiError(404, 'NotFound', `${qualified(res)} "${name}" not found`, { name, group: res.group || undefined, kind: res.plural }),
  alreadyExists: (res: Qualified, name: string) =>
    new ApiError(409, 'AlreadyExists', `${qualified(res)} "${name}" already exists`, { name, group: res.group || undefined, kind: res.plural }),
  conflict: (res: Qualified, name: string, why: string) =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(res)} "${name}": ${why}`, { name, group: res.group || undefined, kind: res.plural }),
  invalid: (kind: string, group: string, name: string, causes: { field: string; message: string; reason?: string }[]) =>
    new ApiError(
      422,
      'Invalid',
      `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`,
      { name, group: group || undefined, kind, causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })) },
    ),
  badRequest: (message: string) => new ApiError(400, 'BadRequest', message),
  gone: (message: string) => new ApiError(410, 'Expired', message),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  forbidden: (user: string, verb: string, res: Qualified, namespace: string | undefined, name?: string, sub?: string) => {
    const resource = sub ? `${res.plural}/${sub}` : res.plural;
    const where = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
    const named = name ? ` "${name}"` : '';
    return new ApiError(
      403,
      'Forbidden',
      `${res.plural}${named} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${res.group}"${where}`,
      { name, group: res.group || undefined, kind: res.plural },
    );
  },
  forbiddenPath: (user: string, path: string) =>
    new ApiError(403, 'Forbidden', `forbidden: User "${user}" cannot get path "${path}"`),
  methodNotAllowed: (method: string) => new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`),
  unsupportedMediaType: (type: string) =>
    new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${type}; the test apiserver speaks JSON only)`),
  internal: (message: string) => new ApiError(500, 'InternalError', `Internal error occurred: ${message}`),
  serviceUnavailable: (message = 'the server is currently unable to handle the request') => new ApiError(503, 'ServiceUnavailable', message),
  tooManyRequests: (retryAfterSeconds = 1) =>
    new ApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds }),
  timeout: (message: string) => new ApiError(504, 'Timeout', message),
  /** A version newer than the server's (client-go recognises it by the cause). */
  tooLargeResourceVersion: (wanted: number, current: number) =>
    new ApiError(504, 'Timeout', `Timeout: Too large resource version: ${wanted}, current: ${current}`, {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      retryAfterSeconds: 1,
    }),
};

/** A Status body for a code chosen by fault injection. */
export function errorForCode(code: number): ApiError {
  switch (code) {
    case 429:
      return errors.tooManyRequests(1);
    case 503:
      return errors.serviceUnavailable();
    case 504:
      return errors.timeout('the server was unable to return a response in the time allotted, but may still be processing the request');
    case 409:
      return new ApiError(409, 'Conflict', 'injected conflict');
    case 410:
      return errors.gone('injected: too old resource version');
    default:
      return new ApiError(code, 'InternalError', 'Internal error occurred: injected fault');
  }
}
