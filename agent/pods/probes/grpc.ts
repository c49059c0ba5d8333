/**
 * gRPC probes: grpc.health.v1.Health/Check over plaintext HTTP/2 with @grpc/grpc-js, success when
 * the status is SERVING. The two messages are encoded by hand (one field each), so no .proto file
 * and no proto-loader are needed:
 *   HealthCheckRequest  { string service = 1; }
 *   HealthCheckResponse { ServingStatus status = 1; }  // UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
 */
import * as grpc from '@grpc/grpc-js';
import type { ProbeOutcome } from './http';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

export function encodeHealthCheckRequest(service: string): Buffer {
  if (!service) return Buffer.alloc(0);
  const bytes = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a, ...varint(bytes.length)]), bytes]);
}

function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return [value, pos];
    shift += 7;
    if (shift > 63) throw new Error('varint too long');
  }
}

/** Decodes HealthCheckResponse.status (unknown fields skipped; absent status is UNKNOWN = 0). */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  let pos = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      let v: number;
      [v, pos] = readVarint(buf, pos);
      if (field === 1) status = v;
    } else if (wire === 2) {
      let len: number;
      [len, pos] = readVarint(buf, pos);
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  if (pos > buf.length) throw new Error('truncated message');
  return status;
}

export function encodeHealthCheckResponse(status: number): Buffer {
  return status ? Buffer.from([0x08, ...varint(status)]) : Buffer.alloc(0);
}

export function decodeHealthCheckRequest(buf: Buffer): string {
  let pos = 0;
  let service = '';
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    if ((key & 7) !== 2) throw new Error('unexpected wire type');
    let len: number;
    [len, pos] = readVarint(buf, pos);
    if (key >>> 3 === 1) service = buf.subarray(pos, pos + len).toString('utf8');
    pos += len;
  }
  return service;
}

export function grpcHealthCheck(host: string, port: number, service: string, timeoutMs: number): Promise<ProbeOutcome> {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.use_local_subchannel_pool': 1 });
  return new Promise<ProbeOutcome>((resolve) => {
    client.makeUnaryRequest<string, number>(
      HEALTH_CHECK_PATH,
      encodeHealthCheckRequest,
      decodeHealthCheckResponse,
      service,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, status) => {
        if (err) {
          const what = err.code === grpc.status.UNIMPLEMENTED ? 'this server does not implement the grpc health protocol (grpc.health.v1.Health)'
            : err.code === grpc.status.DEADLINE_EXCEEDED ? `timeout: health rpc did not complete within ${timeoutMs}ms`
              : `failed to connect service "${address}" within ${timeoutMs}ms: ${err.details || err.message}`;
          resolve({ ok: false, output: what });
          return;
        }
        const name = SERVING_STATUS[status ?? 0] ?? String(status);
        resolve(status === 1 ? { ok: true, output: '' } : { ok: false, output: `service unhealthy (responded with "${name}")` });
      },
    );
  }).finally(() => client.close());
}
