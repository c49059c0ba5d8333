/**
 * Loads cri/proto/api.proto once, at run time, with @grpc/proto-loader.
 *
 * Options, chosen so the TypeScript shapes in cri/types.ts hold:
 * - keepCase: field names stay snake_case as in the proto (`pod_sandbox_id`);
 * - longs: String — int64 nanosecond timestamps exceed 2^53, so they arrive as exact decimal strings;
 * - enums: String — `'CONTAINER_RUNNING'` rather than 1;
 * - defaults/arrays/objects: true — absent scalars, lists and maps come back as '', 0, [], {}
 *   (the runtime omits zero values on the wire, e.g. state CONTAINER_CREATED or exit_code 0).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

/**
 * The proto ships as a source file beside the package: from dist/cri/proto.js it is at
 * ../../cri/proto/api.proto; a copy next to the compiled file (dist/cri/proto/api.proto) wins if present.
 */
export function protoPath(): string {
  const candidates = [path.join(__dirname, 'proto', 'api.proto'), path.resolve(__dirname, '..', '..', 'cri', 'proto', 'api.proto')];
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  throw new Error(`CRI proto not found; looked at ${candidates.join(', ')}`);
}

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

let cached: protoLoader.PackageDefinition | undefined;

export function loadCriDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(protoPath(), LOADER_OPTIONS);
  return cached;
}

export interface MethodDef {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
}

/** The definition of one RPC, e.g. method('RuntimeService', 'Version'). */
export function methodDef(service: 'RuntimeService' | 'ImageService', rpc: string): MethodDef {
  const svc = loadCriDefinition()[`runtime.v1.${service}`] as unknown as Record<string, MethodDef> | undefined;
  const def = svc?.[rpc];
  if (!def) throw new Error(`CRI proto has no RPC ${service}/${rpc}`);
  return def;
}
