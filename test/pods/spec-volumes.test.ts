import test from 'ava';
import { lstat, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeMounter, createVolumeManager, writeAtomic, type Payload } from '../../agent/pods/volumes';
import { b64, memoryPodData } from './spec-helpers';

const file = (text: string, mode = 0o644) => ({ data: Buffer.from(text), mode });

async function tmp(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-vol-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('atomic writer: ..data points at a version folder, top-level names link through it, modes kept', async (t) => {
  const dir = await tmp(t);
  const payload: Payload = new Map([['a.conf', file('A')], ['sub/b.conf', file('B', 0o600)]]);
  t.true(await writeAtomic(dir, payload));
  t.regex(await readlink(path.join(dir, '..data')), /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[0-9a-f]+$/);
  t.is(await readlink(path.join(dir, 'a.conf')), '..data/a.conf');
  t.is(await readlink(path.join(dir, 'sub')), '..data/sub');
  t.is(await readFile(path.join(dir, 'sub/b.conf'), 'utf8'), 'B');
  t.is((await stat(path.join(dir, 'sub/b.conf'))).mode & 0o777, 0o600);
});

test('atomic writer: same content changes nothing; new content swaps ..data, drops removed names and the old version', async (t) => {
  const dir = await tmp(t);
  await writeAtomic(dir, new Map([['a', file('1')], ['b', file('2')]]));
  const first = await readlink(path.join(dir, '..data'));
  t.false(await writeAtomic(dir, new Map([['a', file('1')], ['b', file('2')]])));
  t.is(await readlink(path.join(dir, '..data')), first);
  t.true(await writeAtomic(dir, new Map([['a', file('3')]])));
  const second = await readlink(path.join(dir, '..data'));
  t.not(second, first);
  t.is(await readFile(path.join(dir, 'a'), 'utf8'), '3');
  await t.throwsAsync(lstat(path.join(dir, 'b')));
  t.deepEqual((await readdir(dir)).sort(), ['..data', second, 'a'].sort());
  // a mode change alone is a change too
  t.true(await writeAtomic(dir, new Map([['a', file('3', 0o400)]])));
});

test('atomic writer: a reader holding the old file keeps reading consistent content during a swap', async (t) => {
  const dir = await tmp(t);
  await writeAtomic(dir, new Map([['x', file('old')], ['y', file('old')]]));
  const pinned = await readlink(path.join(dir, '..data'));
  const oldX = await readFile(path.join(dir, pinned, 'x'), 'utf8');
  await writeAtomic(dir, new Map([['x', file('new')], ['y', file('new')]]));
  t.is(oldX, 'old');
  t.deepEqual([await readFile(path.join(dir, 'x'), 'utf8'), await readFile(path.join(dir, 'y'), 'utf8')], ['new', 'new']);
});

test('atomic writer rejects paths escaping the volume', async (t) => {
  const dir = await tmp(t);
  for (const bad of ['../x', '/etc/x', '..hidden', 'a/../../x']) {
    await t.throwsAsync(writeAtomic(dir, new Map([[bad, file('x')]])), { message: /invalid file path/ });
  }
});

function podWith(volumes: object[], extra: object = {}): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns1', uid: 'uid-1', labels: { b: '2', a: '1' } },
    spec: {
      serviceAccountName: 'robot',
      volumes: volumes as Pod['spec'] extends infer S ? S extends { volumes?: infer V } ? V : never : never,
      containers: [{ name: 'c', image: 'i', resources: { limits: { memory: '32Mi' } } }],
      ...extra,
    },
  };
}

const DOWNWARD = { podIPs: [], hostIPs: ['192.0.2.1'], nodeAllocatable: { cpuMilli: 2000, memoryBytes: 2 ** 30, ephemeralStorageBytes: 0 } };

test('volume manager: configMap, secret (tmpfs), downwardAPI, projected with token, emptyDir Memory with size, hostPath types; updates propagate; teardown', async (t) => {
  const root = await tmp(t);
  const clock = createFakeClock(1_700_000_000_000);
  const data = memoryPodData({
    configMaps: [{ metadata: { namespace: 'ns1', name: 'cfg' }, data: { 'app.conf': 'v1', other: 'o' }, binaryData: { 'bin': b64('\u0001\u0002') } }],
    secrets: [{ metadata: { namespace: 'ns1', name: 'creds' }, data: { password: b64('pw') } }],
  }, () => clock.now());
  const mounter = createFakeMounter();
  const vm = createVolumeManager({ rootDir: root, data, mounter, clock, logger: pino({ level: 'silent' }) });
  const hostDir = path.join(root, 'host', 'made');
  const pod = podWith([
    { name: 'cfg', configMap: { name: 'cfg', items: [{ key: 'app.conf', path: 'conf/app.conf', mode: 0o600 }] } },
    { name: 'all', configMap: { name: 'cfg', defaultMode: 0o440 } },
    { name: 'sec', secret: { secretName: 'creds' } },
    { name: 'opt', secret: { secretName: 'absent', optional: true } },
    { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }, { path: 'mem', resourceFieldRef: { containerName: 'c', resource: 'limits.memory', divisor: '1Mi' } }] } },
    { name: 'proj', projected: { sources: [
      { serviceAccountToken: { path: 'token', audience: 'vault', expirationSeconds: 1000 } },
      { configMap: { name: 'cfg', items: [{ key: 'other', path: 'other' }] } },
      { downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
    ] } },
    { name: 'scratch', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    { name: 'disk', emptyDir: {} },
    { name: 'host', hostPath: { path: hostDir, type: 'DirectoryOrCreate' } },
  ]);
  await vm.setUp(pod, DOWNWARD);
  const vol = (plugin: string, name: string) => path.join(root, 'pods', 'uid-1', 'volumes', `kubernetes.io~${plugin}`, name);
  t.is(await readFile(path.join(vol('configmap', 'cfg'), 'conf/app.conf'), 'utf8'), 'v1');
  t.is((await stat(path.join(vol('configmap', 'cfg'), 'conf/app.conf'))).mode & 0o777, 0o600);
  t.deepEqual((await readdir(vol('configmap', 'all'))).filter((n) => !n.startsWith('..')).sort(), ['app.conf', 'bin', 'other']);
  t.is((await stat(path.join(vol('configmap', 'all'), 'other'))).mode & 0o777, 0o440);
  t.deepEqual([...(await readFile(path.join(vol('configmap', 'all'), 'bin')))], [1, 2]);
  t.is(await readFile(path.join(vol('secret', 'sec'), 'password'), 'utf8'), 'pw');
  t.deepEqual((await readdir(vol('secret', 'opt'))).filter((n) => !n.startsWith('..')), []);
  t.is(await readFile(path.join(vol('downward-api', 'info'), 'labels'), 'utf8'), 'a="1"\nb="2"');
  t.is(await readFile(path.join(vol('downward-api', 'info'), 'mem'), 'utf8'), '32');
  t.is(await readFile(path.join(vol('projected', 'proj'), 'token'), 'utf8'), 'token-1');
  t.is(await readFile(path.join(vol('projected', 'proj'), 'other'), 'utf8'), 'o');
  t.is(await readFile(path.join(vol('projected', 'proj'), 'name'), 'utf8'), 'p');
  t.deepEqual(data.tokenRequests[0], { namespace: 'ns1', serviceAccount: 'robot', options: { audiences: ['vault'], expirationSeconds: 1000, boundPod: { name: 'p', uid: 'uid-1' } } });
  t.is(mounter.mounted.get(vol('empty-dir', 'scratch')), 16 * 2 ** 20);
  t.true(mounter.mounted.has(vol('secret', 'sec')) && mounter.mounted.has(vol('projected', 'proj')));
  t.false(mounter.mounted.has(vol('configmap', 'cfg')));
  t.true((await stat(hostDir)).isDirectory());

  // ConfigMap change → new content after the next setUp; token kept until 80 % of its life
  data.configMaps[0].data!['app.conf'] = 'v2';
  clock.advance(700_000);
  await vm.setUp(pod, DOWNWARD);
  t.is(await readFile(path.join(vol('configmap', 'cfg'), 'conf/app.conf'), 'utf8'), 'v2');
  t.is(data.tokenRequests.length, 1);
  clock.advance(150_000); // 850 s of 1000 s
  await vm.setUp(pod, DOWNWARD);
  t.is(data.tokenRequests.length, 2);
  t.is(await readFile(path.join(vol('projected', 'proj'), 'token'), 'utf8'), 'token-2');

  // mounts: API volumes read-only, subPath, propagation
  const c = { name: 'c', volumeMounts: [
    { name: 'cfg', mountPath: '/etc/app' }, { name: 'disk', mountPath: '/data', subPath: 'x/y' }, { name: 'host', mountPath: '/h', readOnly: true, mountPropagation: 'HostToContainer' },
  ] };
  t.deepEqual(vm.mounts(pod, c), [
    { containerPath: '/etc/app', hostPath: vol('configmap', 'cfg'), readonly: true },
    { containerPath: '/data', hostPath: path.join(vol('empty-dir', 'disk'), 'x/y'), readonly: false },
    { containerPath: '/h', hostPath: hostDir, readonly: true, propagation: 'hostToContainer' },
  ]);

  await vm.tearDown('uid-1');
  await t.throwsAsync(stat(path.join(root, 'pods', 'uid-1')));
  t.is(mounter.mounted.size, 0);
  t.true((await stat(hostDir)).isDirectory(), 'hostPath content is never removed');
});

test('volume manager: a missing ConfigMap or key, or a failed hostPath check, names the volume; nothing else breaks', async (t) => {
  const root = await tmp(t);
  const data = memoryPodData({ configMaps: [{ metadata: { namespace: 'ns1', name: 'cfg' }, data: { a: '1' } }] });
  const vm = createVolumeManager({ rootDir: root, data, mounter: createFakeMounter(), clock: createFakeClock(0), logger: pino({ level: 'silent' }) });
  const notDir = path.join(root, 'file');
  await writeFile(notDir, '');
  const cases: [object, RegExp][] = [
    [{ name: 'v', configMap: { name: 'nope' } }, /^MountVolume\.SetUp failed for volume "v" : configmap "nope" not found$/],
    [{ name: 'v', configMap: { name: 'cfg', items: [{ key: 'zz', path: 'zz' }] } }, /configmap references non-existent config key: zz/],
    [{ name: 'v', secret: { secretName: 'nope' } }, /secret "nope" not found/],
    [{ name: 'v', hostPath: { path: notDir, type: 'Directory' } }, /hostPath type check failed: .* is not a directory/],
    [{ name: 'v', hostPath: { path: path.join(root, 'absent'), type: 'File' } }, /is not a file/],
  ];
  for (const [v, message] of cases) await t.throwsAsync(vm.setUp(podWith([v]), DOWNWARD), { message });
  await vm.setUp(podWith([{ name: 'v', configMap: { name: 'cfg' } }]), DOWNWARD);
});
