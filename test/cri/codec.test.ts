/** The CRI wire codec (cri/codec.ts): parsing, round trips and the protobuf corner cases runtimes send. */
import test from 'ava';
import { createCodec, parseProto } from '../../cri/codec';
import { loadCri } from '../../cri/proto';

const { codec, schema } = loadCri();

test('the keelson proto parses into both services with every RPC keelson calls', (t) => {
  t.is(schema.pkg, 'runtime.v1');
  const runtime = [...(schema.services.get('RuntimeService')?.keys() ?? [])];
  for (const rpc of ['Version', 'RunPodSandbox', 'CreateContainer', 'ExecSync', 'UpdateRuntimeConfig', 'ListPodSandboxStats']) t.true(runtime.includes(rpc), rpc);
  t.true(schema.services.get('RuntimeService')?.get('GetContainerEvents')?.responseStream);
  t.deepEqual([...(schema.services.get('ImageService')?.keys() ?? [])].sort(), ['ImageFsInfo', 'ImageStatus', 'ListImages', 'PullImage', 'RemoveImage']);
});

test('a request round-trips: nested messages, maps, repeated fields, enums, int64', (t) => {
  const request = {
    pod_sandbox_id: 'sb1',
    config: {
      metadata: { name: 'web', attempt: 2 },
      image: { image: 'docker.io/library/busybox:keelson-test' },
      command: ['sh', '-c', 'echo hi'],
      envs: [
        { key: 'A', value: '1' },
        { key: 'B', value: '' },
      ],
      mounts: [{ container_path: '/data', host_path: '/var/lib/x', readonly: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' }],
      labels: { app: 'web', tier: 'front' },
      log_path: 'web/2.log',
      linux: {
        resources: { cpu_shares: 512, memory_limit_in_bytes: '9007199254740993', oom_score_adj: -998 },
        security_context: { run_as_user: { value: 0 }, supplemental_groups: [1, 2, 3000000000], capabilities: { drop_capabilities: ['NET_RAW'] } },
      },
    },
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking a decoded tree
  const decoded = codec.decode('CreateContainerRequest', codec.encode('CreateContainerRequest', request)) as Record<string, any>;
  t.is(decoded.pod_sandbox_id, 'sb1');
  t.deepEqual(decoded.config.metadata, { name: 'web', attempt: 2 });
  t.deepEqual(decoded.config.command, ['sh', '-c', 'echo hi']);
  t.deepEqual(decoded.config.envs, request.config.envs);
  t.deepEqual(decoded.config.labels, { app: 'web', tier: 'front' });
  t.is(decoded.config.log_path, 'web/2.log');
  const mount = decoded.config.mounts[0];
  t.is(mount.propagation, 'PROPAGATION_HOST_TO_CONTAINER');
  t.is(mount.readonly, true);
  t.is(mount.selinux_relabel, false);
  t.deepEqual(mount.uidMappings, []);
  t.is(mount.image, null);
  t.is(decoded.config.linux.resources.cpu_shares, '512');
  t.is(decoded.config.linux.resources.memory_limit_in_bytes, '9007199254740993', 'beyond 2^53, exact');
  t.is(decoded.config.linux.resources.oom_score_adj, '-998', 'negative int64');
  t.is(decoded.config.linux.resources.cpu_quota, '0');
  t.deepEqual(decoded.config.linux.security_context.run_as_user, { value: '0' }, 'a set wrapper with a zero value stays set');
  t.deepEqual(decoded.config.linux.security_context.supplemental_groups, ['1', '2', '3000000000']);
  t.is(decoded.config.linux.security_context.run_as_group, null);
  t.is(decoded.config.tty, false);
  t.deepEqual(decoded.config.annotations, {});
  t.is(decoded.sandbox_config, null);
});

test('decoding accepts unpacked repeated numbers, negative int32 and skips unknown fields', (t) => {
  // LinuxContainerUser { uid = 1: 5, supplemental_groups = 3 unpacked: 7, 8 }
  const user = codec.decode('LinuxContainerUser', Buffer.from('0805' + '1807' + '1808', 'hex')) as Record<string, unknown>;
  t.deepEqual(user, { uid: '5', gid: '0', supplemental_groups: ['7', '8'] });
  // ContainerStatus.exit_code = 7 as int32 -1 (ten-byte varint), plus unknown fields 99 (varint),
  // 100 (length-delimited), 101 (fixed32), 102 (fixed64), then id = 1 "z".
  const bytes = Buffer.concat([
    Buffer.from('38ffffffffffffffffff01', 'hex'),
    Buffer.from('98062a', 'hex'),
    Buffer.from('a20603616263', 'hex'),
    Buffer.from('ad0601020304', 'hex'),
    Buffer.from('b1060102030405060708', 'hex'),
    Buffer.from('0a017a', 'hex'),
  ]);
  const status = codec.decode('ContainerStatus', bytes) as Record<string, unknown>;
  t.is(status.exit_code, -1);
  t.is(status.id, 'z');
  // An enum value this proto does not know yet comes through as its number.
  const future = codec.decode('ContainerStatus', Buffer.from('1809', 'hex')) as Record<string, unknown>;
  t.is(future.state, 9);
});

test('bad input is rejected with the field named, and truncated data does not decode', (t) => {
  t.throws(() => codec.encode('PortMapping', { protocol: 'QUIC' }), { message: /protocol/ });
  t.throws(() => codec.encode('StopContainerRequest', { timeout: 1.5 }), { message: /timeout/ });
  t.throws(() => codec.encode('ExecSyncRequest', { cmd: 'ls' }), { message: /cmd/ });
  t.throws(() => codec.decode('VersionResponse', Buffer.from('0a05616263', 'hex')), { message: /truncated/ });
});

test('the parser resolves nested types, refuses unknown ones', (t) => {
  const s = parseProto(`syntax = "proto3"; package p.v1;
    message Outer { enum Kind { A = 0; B = 1; } Kind kind = 1; map<string, Inner> items = 2; repeated int32 n = 3 [packed = true]; }
    message Inner { string s = 1; }
    service S { rpc Get(Outer) returns (stream Inner); }`);
  const c = createCodec(s);
  const out = c.decode('Outer', c.encode('Outer', { kind: 'B', items: { x: { s: 'y' } }, n: [1, -2] })) as Record<string, unknown>;
  t.deepEqual(out, { kind: 'B', items: { x: { s: 'y' } }, n: [1, -2] });
  t.true(s.services.get('S')?.get('Get')?.responseStream);
  t.throws(() => parseProto('syntax = "proto3"; message M { Missing m = 1; }'), { message: /unknown type Missing/ });
});
