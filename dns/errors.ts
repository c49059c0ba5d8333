/** dns/ may not import agent/: errors of the same shape as agent/errors.ts, codes listed here. */
export const DnsErrorCodes = {
  CONFIG_INVALID: 'KEELSON_ERR_CONFIG_INVALID',
  DNS_LISTEN_FAILED: 'KEELSON_ERR_DNS_LISTEN_FAILED',
  DNS_ADDRESS_SETUP: 'KEELSON_ERR_DNS_ADDRESS_SETUP',
  DNS_UPSTREAM_FAILED: 'KEELSON_ERR_DNS_UPSTREAM_FAILED',
  DNS_FORWARD_LOOP: 'KEELSON_ERR_DNS_FORWARD_LOOP',
  DNS_CHECKPOINT: 'KEELSON_ERR_DNS_CHECKPOINT',
  DNS_BAD_OBJECT: 'KEELSON_ERR_DNS_BAD_OBJECT',
} as const;

export class DnsError extends Error {
  readonly code: string;
  readonly object: string | undefined;

  constructor(code: string, message: string, options: { object?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeelsonError';
    this.code = code;
    this.object = options.object;
  }
}
