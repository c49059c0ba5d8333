import test from 'ava';
import { chmod, chown, lstat, mkdir, mkdtemp, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeMounter, createVolumeManager, writeAtomic } from '../../agent/pods/volumes';
import { ownedMode, setVolumeOwnership } from '../../agent/pods/volumes/volume-ownership';
import { integrationTest } from '../harness/requirements';
import { b64, memoryPodData } from './spec-helpers';

// chown needs root (skipped with a message outside CI, never skipped under CI=true)
const asRoot = integrationTest({ root: true, commands: [] });
const GID = 2345;
const file = (text: string, mode: number) => ({ data: Buffer.from(text), mode });
const perm = async (p: string) => {
  const st = await stat(p);
  return { mode: st.mode & 0o7777, gid: st.gid };
};

async function tmp(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-fsgroup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('ownedMode: group rw (or r) added, folders also get group x and setgid', (t) => {
  t.is(ownedMode(0o400, false, true), 0o440);
  t.is(ownedMode(0o644, false, true), 0o644);
  t.is(ownedMode(0o600, false, false), 0o660);
  t.is(ownedMode(0o755, true, true), 0o2755);
  t.is(ownedMode(0o700, true, false), 0o2770);
  t.is(ownedMode(0o777, true, false), 0o2777);
});

asRoot('atomic writer with fsGroup: 0400 becomes 0440 group-owned, folders setgid; no churn; an update is owned too', async (t) => {
  const dir = await tmp(t);
  t.true(await writeAtomic(dir, new Map([['key', file('k1', 0o400)], ['sub/cert', file('c1', 0o600)]]), new Date(), GID));
  t.deepEqual(await perm(path.join(dir, 'key')), { mode: 0o440, gid: GID });
  t.deepEqual(await perm(path.join(dir, 'sub/cert')), { mode: 0o640, gid: GID });
  t.deepEqual(await perm(path.join(dir, 'sub')), { mode: 0o2755, gid: GID });
  t.deepEqual(await perm(path.join(dir, await readlink(path.join(dir, '..data')))), { mode: 0o2755, gid: GID });
  t.deepEqual(await perm(dir), { mode: 0o2750, gid: GID }); // mkdtemp's 0700 + group r-x
  t.is((await lstat(path.join(dir, 'key'))).gid, GID, 'the top-level link is group-owned too');
  // the widened mode is not mistaken for a content change
  t.false(await writeAtomic(dir, new Map([['key', file('k1', 0o400)], ['sub/cert', file('c1', 0o600)]]), new Date(), GID));
  t.true(await writeAtomic(dir, new Map([['key', file('k2', 0o400)], ['new', file('n', 0o400)]]), new Date(), GID));
  t.deepEqual(await perm(path.join(dir, 'key')), { mode: 0o440, gid: GID });
  t.deepEqual(await perm(path.join(dir, 'new')), { mode: 0o440, gid: GID });
  // without fsGroup nothing is widened
  const plain = await tmp(t);
  await writeAtomic(plain, new Map([['key', file('k', 0o400)]]));
  t.deepEqual(await perm(path.join(plain, 'key')), { mode: 0o400, gid: 0 });
});

asRoot('setVolumeOwnership: OnRootMismatch skips a volume whose root is right; Always walks it', async (t) => {
  const dir = await tmp(t);
  await writeFile(path.join(dir, 'f'), 'x', { mode: 0o600 });
  await chown(dir, 0, GID);
  await chmod(dir, 0o2775);
  const own = { fsGroup: GID, readOnly: false };
  t.false(await setVolumeOwnership(dir, own, 'OnRootMismatch'));
  t.deepEqual(await perm(path.join(dir, 'f')), { mode: 0o600, gid: 0 });
  await chmod(dir, 0o775); // setgid missing: the root is a mismatch
  t.true(await setVolumeOwnership(dir, own, 'OnRootMismatch'));
  t.deepEqual(await perm(path.join(dir, 'f')), { mode: 0o660, gid: GID });
  await chown(path.join(dir, 'f'), 0, 0);
  t.true(await setVolumeOwnership(dir, own, 'Always'));
  t.deepEqual(await perm(path.join(dir, 'f')), { mode: 0o660, gid: GID });
});

function pod(uid: string, securityContext: object): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns1', uid },
    spec: {
      securityContext,
      containers: [{ name: 'c', image: 'i' }],
      volumes: [
        { name: 'sec', secret: { secretName: 'creds', defaultMode: 0o400 } },
        { name: 'cfg', configMap: { name: 'cfg' } },
        { name: 'info', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
        { name: 'proj', projected: { sources: [{ serviceAccountToken: { path: 'token' } }, { secret: { name: 'creds' } }], defaultMode: 0o400 } },
        { name: 'scratch', emptyDir: {} },
        { name: 'host', hostPath: { path: '/tmp/keelson-fsgroup-host-' + uid, type: 'DirectoryOrCreate' } },
      ],
    },
  };
}

const DOWNWARD = { podIPs: [], hostIPs: ['192.0.2.1'], nodeAllocatable: { cpuMilli: 1000, memoryBytes: 2 ** 30, ephemeralStorageBytes: 0 } };

asRoot('volume manager with fsGroup: API volumes and emptyDir group-owned, token 0640, hostPath untouched; OnRootMismatch', async (t) => {
  const root = await tmp(t);
  const data = memoryPodData({
    configMaps: [{ metadata: { namespace: 'ns1', name: 'cfg' }, data: { a: '1' } }],
    secrets: [{ metadata: { namespace: 'ns1', name: 'creds' }, data: { key: b64('s1') } }],
  });
  const newManager = () => createVolumeManager({ rootDir: root, data, mounter: createFakeMounter(), clock: createFakeClock(0), logger: pino({ level: 'silent' }) });
  const vm = newManager();
  const uid = `fsg-${process.pid}`;
  const host = `/tmp/keelson-fsgroup-host-${uid}`;
  t.teardown(() => rm(host, { recursive: true, force: true }));
  const vol = (plugin: string, name: string) => path.join(root, 'pods', uid, 'volumes', `kubernetes.io~${plugin}`, name);
  await vm.setUp(pod(uid, { fsGroup: GID }), DOWNWARD);
  t.deepEqual(await perm(path.join(vol('secret', 'sec'), 'key')), { mode: 0o440, gid: GID });
  t.deepEqual(await perm(vol('secret', 'sec')), { mode: 0o2755, gid: GID });
  t.deepEqual(await perm(path.join(vol('configmap', 'cfg'), 'a')), { mode: 0o644, gid: GID });
  t.deepEqual(await perm(path.join(vol('downward-api', 'info'), 'name')), { mode: 0o644, gid: GID });
  t.deepEqual(await perm(path.join(vol('projected', 'proj'), 'token')), { mode: 0o640, gid: GID });
  t.deepEqual(await perm(path.join(vol('projected', 'proj'), 'key')), { mode: 0o440, gid: GID });
  t.deepEqual(await perm(vol('empty-dir', 'scratch')), { mode: 0o2777, gid: GID });
  t.deepEqual(await perm(host), { mode: 0o755, gid: 0 });

  // a Secret update keeps the ownership
  data.secrets[0].data = { key: b64('s2') };
  await vm.setUp(pod(uid, { fsGroup: GID }), DOWNWARD);
  t.deepEqual(await perm(path.join(vol('secret', 'sec'), 'key')), { mode: 0o440, gid: GID });
  t.deepEqual(await perm(vol('empty-dir', 'scratch')), { mode: 0o2777, gid: GID }, 'a resync keeps setgid');

  // a file written as root:root into the emptyDir: a restarted agent with OnRootMismatch leaves it,
  // with the default policy it walks the volume again
  const written = path.join(vol('empty-dir', 'scratch'), 'w');
  await writeFile(written, 'x', { mode: 0o600 });
  await chown(written, 0, 0);
  await newManager().setUp(pod(uid, { fsGroup: GID, fsGroupChangePolicy: 'OnRootMismatch' }), DOWNWARD);
  t.deepEqual(await perm(written), { mode: 0o600, gid: 0 });
  await newManager().setUp(pod(uid, { fsGroup: GID }), DOWNWARD);
  t.deepEqual(await perm(written), { mode: 0o660, gid: GID });

  // no fsGroup: modes as given, nothing group-owned
  const other = `plain-${process.pid}`;
  await mkdir(path.join(root, 'pods'), { recursive: true });
  t.teardown(() => rm(`/tmp/keelson-fsgroup-host-${other}`, { recursive: true, force: true }));
  await vm.setUp(pod(other, {}), DOWNWARD);
  const plain = path.join(root, 'pods', other, 'volumes', 'kubernetes.io~secret', 'sec', 'key');
  t.deepEqual(await perm(plain), { mode: 0o400, gid: 0 });
  t.deepEqual(await perm(path.join(root, 'pods', other, 'volumes', 'kubernetes.io~empty-dir', 'scratch')), { mode: 0o777, gid: 0 });
});
