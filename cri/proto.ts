/**
 * Loads cri/proto/api.proto once, at run time, with keelson's own small codec (cri/codec.ts)
 * instead of @grpc/proto-loader + protobufjs, which would cost 10–17 MB of RSS.
 *
 * Mapping, chosen so the TypeScript shapes in cri/types.ts hold:
 * - field names stay snake_case as in the proto (`pod_sandbox_id`);
 * - int64/uint64 arrive as exact decimal strings (nanosecond timestamps exceed 2^53); requests
 *   take numbers or strings;
 * - enums are names (`'CONTAINER_RUNNING'`);
 * - absent scalars, lists and maps come back as '', 0, [], {} (the runtime leaves zero values off
 *   the wire, e.g. state CONTAINER_CREATED or exit_code 0); absent messages as null.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createCodec, parseProto, type Codec, type Schema } from './codec';

/**
 * The proto ships as a source file beside the package: from dist/cri/proto.js it is at
 * ../../cri/proto/api.proto; a copy next to the compiled file (dist/cri/proto/api.proto) wins if present.
 */
export function protoPath(): string {
  const candidates = [path.join(__dirname, 'proto', 'api.proto'), path.resolve(__dirname, '..', '..', 'cri', 'proto', 'api.proto')];
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  throw new Error(`CRI proto not found; looked at ${candidates.join(', ')}`);
}

let loaded: { schema: Schema; codec: Codec } | undefined;

export function loadCri(): { schema: Schema; codec: Codec } {
  if (!loaded) {
    const schema = parseProto(readFileSync(protoPath(), 'utf8'));
    if (schema.pkg !== 'runtime.v1') throw new Error(`CRI proto has package ${schema.pkg}, expected runtime.v1`);
    loaded = { schema, codec: createCodec(schema) };
  }
  return loaded;
}

export interface MethodDef {
  /** gRPC path, e.g. `/runtime.v1.RuntimeService/Version`. */
  path: string;
  responseStream: boolean;
  requestSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
}

const methods = new Map<string, MethodDef>();

/** The definition of one RPC, e.g. methodDef('RuntimeService', 'Version'). */
export function methodDef(service: 'RuntimeService' | 'ImageService', rpc: string): MethodDef {
  const key = `${service}/${rpc}`;
  let def = methods.get(key);
  if (def) return def;
  const { schema, codec } = loadCri();
  const r = schema.services.get(service)?.get(rpc);
  if (!r) throw new Error(`CRI proto has no RPC ${key}`);
  def = {
    path: `/${schema.pkg}.${service}/${rpc}`,
    responseStream: r.responseStream,
    requestSerialize: (value) => codec.encode(r.request, value),
    responseDeserialize: (bytes) => codec.decode(r.response, bytes),
  };
  methods.set(key, def);
  return def;
}
