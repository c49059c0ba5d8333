/** netproxy's errors: same shape as agent/errors.ts (stable code + the object concerned). */
export const ProxyErrorCodes = {
  CONFIG_INVALID: 'KEELSON_ERR_PROXY_CONFIG_INVALID',
  MODE_UNSUPPORTED: 'KEELSON_ERR_PROXY_MODE_UNSUPPORTED',
  SYNC_FAILED: 'KEELSON_ERR_PROXY_SYNC_FAILED',
  COMMAND_FAILED: 'KEELSON_ERR_PROXY_COMMAND_FAILED',
  SERVICE_INVALID: 'KEELSON_ERR_PROXY_SERVICE_INVALID',
  ENDPOINTSLICE_INVALID: 'KEELSON_ERR_PROXY_ENDPOINTSLICE_INVALID',
  HEALTH_BIND_FAILED: 'KEELSON_ERR_PROXY_HEALTH_BIND_FAILED',
} as const;

export class ProxyError extends Error {
  readonly code: string;
  readonly object: string | undefined;

  constructor(code: string, message: string, options: { object?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.object = options.object;
  }
}
