/**
 * Unit tests of the CRI client without a runtime: error mapping, endpoint parsing, the proto's wire
 * format for fields keelson relies on, and the client against small in-process gRPC servers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { createLogger } from '../../agent/log';
import { createCriClient, nanosToDate, socketPathOf } from '../../cri/client';
import { CriError, CriErrorCodes, isNotFound, isUnimplemented, toCriError } from '../../cri/errors';
import { methodDef } from '../../cri/proto';

const ctx = { method: 'RuntimeService/StartContainer', object: 'container=abc', socket: '/run/x.sock', timeoutMs: 1234 };

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata: new grpc.Metadata() });
}

test('UNAVAILABLE maps to KEELSON_ERR_CRI_UNAVAILABLE naming the socket', (t) => {
  const err = toCriError(grpcError(grpc.status.UNAVAILABLE, 'No connection established. Last error: connect ENOENT /run/x.sock'), ctx);
  t.true(err instanceof CriError);
  t.is(err.code, CriErrorCodes.UNAVAILABLE);
  t.is(err.object, 'socket=/run/x.sock');
  t.regex(err.message, /unix socket \/run\/x\.sock/);
  t.regex(err.message, /StartContainer \(container=abc\)/);
  t.is(err.grpcCodeName, 'UNAVAILABLE');
});

test('DEADLINE_EXCEEDED maps to KEELSON_ERR_CRI_DEADLINE with the object and the deadline', (t) => {
  const err = toCriError(grpcError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ctx);
  t.is(err.code, CriErrorCodes.DEADLINE);
  t.is(err.object, 'container=abc');
  t.regex(err.message, /1234 ms deadline/);
});

test('UNIMPLEMENTED is an unsupported API only for Version', (t) => {
  const onVersion = toCriError(grpcError(grpc.status.UNIMPLEMENTED, 'unknown service runtime.v1.RuntimeService'), {
    ...ctx,
    method: 'RuntimeService/Version',
    object: undefined,
  });
  t.is(onVersion.code, CriErrorCodes.UNSUPPORTED_VERSION);
  t.is(onVersion.object, 'socket=/run/x.sock');
  const onEvents = toCriError(grpcError(grpc.status.UNIMPLEMENTED, 'not implemented'), { ...ctx, method: 'RuntimeService/GetContainerEvents' });
  t.is(onEvents.code, CriErrorCodes.CALL_FAILED);
  t.true(isUnimplemented(onEvents));
});

test('other statuses map to KEELSON_ERR_CRI_CALL_FAILED carrying the grpc code and the object', (t) => {
  const err = toCriError(grpcError(grpc.status.NOT_FOUND, 'container "abc" not found'), ctx);
  t.is(err.code, CriErrorCodes.CALL_FAILED);
  t.is(err.grpcCode, grpc.status.NOT_FOUND);
  t.is(err.grpcCodeName, 'NOT_FOUND');
  t.is(err.object, 'container=abc');
  t.true(isNotFound(err));
  t.regex(err.message, /NOT_FOUND: container "abc" not found/);
  const odd = toCriError(new Error('socket hang up'), ctx);
  t.is(odd.code, CriErrorCodes.CALL_FAILED);
  t.is(odd.grpcCode, undefined);
  t.false(isNotFound(odd));
});

test('endpoints: unix:// URLs and plain paths; anything else is refused', (t) => {
  t.is(socketPathOf('unix:///run/containerd/containerd.sock'), '/run/containerd/containerd.sock');
  t.is(socketPathOf('unix:/run/crio/crio.sock'), '/run/crio/crio.sock');
  t.is(socketPathOf('/tmp/a.sock'), '/tmp/a.sock');
  t.throws(() => socketPathOf('tcp://127.0.0.1:1234'), { instanceOf: TypeError });
});

test('nanosecond timestamps convert to dates', (t) => {
  t.is(nanosToDate('1700000000123456789')?.toISOString(), '2023-11-14T22:13:20.123Z');
  t.is(nanosToDate('0'), null);
});

test('wire format: requests use the upstream field numbers', (t) => {
  const hex = (rpc: string, req: object) => methodDef('RuntimeService', rpc).requestSerialize(req).toString('hex');
  // container_id = 1 (string), timeout = 2 (varint)
  t.is(hex('StopContainer', { container_id: 'a', timeout: 5 }), '0a0161' + '1005');
  // container_id = 1, cmd = 2 (repeated string), timeout = 3
  t.is(hex('ExecSync', { container_id: 'c', cmd: ['x'], timeout: 3 }), '0a0163' + '120178' + '1803');
  // CreateContainerRequest.config = 2 → ContainerConfig.log_path = 11 (tag 0x5a)
  t.is(hex('CreateContainer', { config: { log_path: 'l' } }), '1203' + '5a016c');
  // RunPodSandboxRequest.config = 1 → PodSandboxConfig.port_mappings = 5 → PortMapping{protocol UDP = 1 (field 1), host_port = 3}
  t.is(hex('RunPodSandbox', { config: { port_mappings: [{ protocol: 'UDP', host_port: 53 }] } }), '0a06' + '2a04' + '0801' + '1835');
  // PullImageRequest.auth = 2 → AuthConfig.registry_token = 6
  const pull = methodDef('ImageService', 'PullImage').requestSerialize({ auth: { registry_token: 't' } }).toString('hex');
  t.is(pull, '1203' + '320174');
});

test('wire format: responses decode with defaults, enum names and exact int64 strings', (t) => {
  const decode = methodDef('RuntimeService', 'ContainerStatus').responseDeserialize;
  // ContainerStatusResponse.status = 1 { id = 1 "x", state = 3 RUNNING(1), started_at = 5, exit_code = 7 }
  const startedAt = 1700000000123456789n;
  const varint = (n: bigint) => {
    const out: number[] = [];
    while (n > 0x7fn) {
      out.push(Number((n & 0x7fn) | 0x80n));
      n >>= 7n;
    }
    out.push(Number(n));
    return Buffer.from(out);
  };
  const inner = Buffer.concat([Buffer.from('0a0178', 'hex'), Buffer.from('1801', 'hex'), Buffer.from('28', 'hex'), varint(startedAt), Buffer.from('3802', 'hex')]);
  const bytes = Buffer.concat([Buffer.from([0x0a, inner.length]), inner]);
  const res = decode(bytes) as { status: Record<string, unknown>; info: object };
  t.is(res.status.id, 'x');
  t.is(res.status.state, 'CONTAINER_RUNNING');
  t.is(res.status.started_at, '1700000000123456789');
  t.is(res.status.finished_at, '0');
  t.is(res.status.exit_code, 2);
  t.deepEqual(res.status.mounts, []);
  t.deepEqual(res.info, {});
  // An absent state is CONTAINER_CREATED (enum value 0), not undefined.
  const empty = decode(Buffer.from('0a00', 'hex')) as { status: { state: string } };
  t.is(empty.status.state, 'CONTAINER_CREATED');
});

type Handler = grpc.handleUnaryCall<Buffer, Buffer>;

async function fakeRuntime(t: import('ava').ExecutionContext, methods: Record<string, Handler>, at?: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kt-cri-unit-'));
  const socket = at ?? path.join(dir, 'fake.sock');
  const server = new grpc.Server();
  const service: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [methodPath, handler] of Object.entries(methods)) {
    service[methodPath] = {
      path: methodPath,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    };
    impl[methodPath] = handler;
  }
  server.addService(service, impl);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  t.teardown(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  return socket;
}

test('a runtime serving only runtime.v1alpha2 gives KEELSON_ERR_CRI_UNSUPPORTED_VERSION', async (t) => {
  const socket = await fakeRuntime(t, {
    '/runtime.v1alpha2.RuntimeService/Version': (_call, cb) => cb(null, Buffer.alloc(0)),
  });
  const cri = createCriClient({ endpoint: socket });
  t.teardown(() => cri.close());
  const err = await t.throwsAsync(cri.version(), { instanceOf: CriError });
  t.is(err?.code, CriErrorCodes.UNSUPPORTED_VERSION);
  t.is(err?.object, `socket=${socket}`);
});

test('a runtime reporting an older API version through v1 is refused too', async (t) => {
  // VersionResponse { version = 1 "0.1.0", runtime_api_version = 4 "v1alpha2" }
  const body = Buffer.concat([Buffer.from('0a05', 'hex'), Buffer.from('0.1.0'), Buffer.from('2208', 'hex'), Buffer.from('v1alpha2')]);
  const socket = await fakeRuntime(t, { '/runtime.v1.RuntimeService/Version': (_call, cb) => cb(null, body) });
  const cri = createCriClient({ endpoint: `unix://${socket}` });
  t.teardown(() => cri.close());
  const err = await t.throwsAsync(cri.version(), { instanceOf: CriError });
  t.is(err?.code, CriErrorCodes.UNSUPPORTED_VERSION);
  t.regex(err!.message, /v1alpha2/);
});

test('a runtime that does not answer in time gives KEELSON_ERR_CRI_DEADLINE; per-call timeoutMs wins', async (t) => {
  const socket = await fakeRuntime(t, {
    '/runtime.v1.RuntimeService/ContainerStatus': () => {
      // never answers
    },
  });
  const cri = createCriClient({ endpoint: socket, timeoutMs: 60_000 });
  t.teardown(() => cri.close());
  const started = Date.now();
  const err = await t.throwsAsync(cri.containerStatus({ container_id: 'c1' }, { timeoutMs: 100 }), { instanceOf: CriError });
  t.is(err?.code, CriErrorCodes.DEADLINE);
  t.is(err?.object, 'container=c1');
  t.true(Date.now() - started < 2000);
});

test('an aborted call fails with CANCELLED', async (t) => {
  const socket = await fakeRuntime(t, { '/runtime.v1.RuntimeService/ListContainers': () => {} });
  const cri = createCriClient({ endpoint: socket });
  t.teardown(() => cri.close());
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const err = await t.throwsAsync(cri.listContainers({}, { signal: controller.signal }), { instanceOf: CriError });
  t.is(err?.code, CriErrorCodes.CALL_FAILED);
  t.is(err?.grpcCodeName, 'CANCELLED');
});

test('a closed client refuses calls', async (t) => {
  const cri = createCriClient({ endpoint: '/nonexistent/keelson.sock' });
  cri.close();
  const err = await t.throwsAsync(cri.version(), { instanceOf: CriError });
  t.is(err?.code, CriErrorCodes.UNAVAILABLE);
});

test('the client logs once when the runtime goes away and once when it is back', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kt-cri-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'later.sock');
  const lines: string[] = [];
  const logger = createLogger({ format: 'json', level: 'info', sink: { write: (l) => void lines.push(l) } });
  const cri = createCriClient({ endpoint: socket, logger });
  t.teardown(() => cri.close());
  for (let i = 0; i < 3; i++) {
    const err = await t.throwsAsync(cri.version(), { instanceOf: CriError });
    t.is(err?.code, CriErrorCodes.UNAVAILABLE);
  }
  // VersionResponse { runtime_api_version = 4 "v1" }
  await fakeRuntime(t, { '/runtime.v1.RuntimeService/Version': (_call, cb) => cb(null, Buffer.from('22027631', 'hex')) }, socket);
  t.is((await cri.version()).runtime_api_version, 'v1');
  const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; socket: string });
  t.deepEqual(
    records.map((r) => [r.level, r.msg, r.socket]),
    [
      [40, 'CRI runtime unavailable', socket],
      [30, 'CRI runtime available again', socket],
    ],
  );
});
