/**
 * The on-disk checkpoint of apiserver pods and the ConfigMaps/Secrets they use: round trip, an
 * empty set that is still a set, Secrets with mode 0600, bad files skipped, and the apiserver-first
 * lookup that falls back to the checkpoint when the apiserver cannot be reached.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import pino from 'pino';
import type { Pod } from 'kubernetes-types/core/v1';
import { createConfigObjectStore, createPodCheckpoint, referencedConfigObjects } from '../../agent/pods/checkpoint';
import { ApiStatusError } from '../../agent/kube/api-error';
import { KeelsonError } from '../../agent/errors';

const logger = pino({ level: 'silent' });

function dir(t: { teardown(fn: () => void): void }) {
  const d = mkdtempSync(join(tmpdir(), 'keelson-ckpt-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const pod = (name: string, extra: Partial<Pod['spec']> = {}): Pod => ({
  metadata: { name, namespace: 'default', uid: `uid-${name}`, resourceVersion: '7', managedFields: [{ manager: 'x' }] },
  spec: { nodeName: 'n', containers: [{ name: 'c', image: 'i' }], ...extra },
  status: { phase: 'Running', startTime: '2024-01-01T00:00:00Z', podIP: '10.0.0.1' },
});

test('pods: no checkpoint yet is undefined, an empty set is []; the set round-trips without resourceVersion', (t) => {
  const d = dir(t);
  t.is(createPodCheckpoint(d, logger).loadPods(), undefined);
  const c = createPodCheckpoint(d, logger);
  c.savePods([]);
  t.deepEqual(createPodCheckpoint(d, logger).loadPods(), []);
  c.savePods([pod('a'), pod('b')]);
  c.savePods([pod('b')]);
  const loaded = createPodCheckpoint(d, logger).loadPods()!;
  t.deepEqual(loaded.map((p) => p.metadata!.name), ['b']);
  t.is(loaded[0].metadata!.resourceVersion, undefined);
  t.is(loaded[0].metadata!.managedFields, undefined);
  t.deepEqual(loaded[0].status, { phase: 'Running', startTime: '2024-01-01T00:00:00Z' });
  t.is(statSync(join(d, 'pods', 'uid-b.json')).mode & 0o777, 0o600);
  t.deepEqual(readdirSync(join(d, 'pods')).filter((n) => n.includes('.tmp')), [], 'no temporary files left');
});

test('pods: a corrupt file is skipped, the others load', (t) => {
  const d = dir(t);
  createPodCheckpoint(d, logger).savePods([pod('a'), pod('b')]);
  writeFileSync(join(d, 'pods', 'uid-a.json'), '{"metadata": {"uid"');
  t.deepEqual(createPodCheckpoint(d, logger).loadPods()!.map((p) => p.metadata!.name), ['b']);
});

test('referenced ConfigMaps and Secrets: volumes, projected, env, envFrom, imagePullSecrets', (t) => {
  const p = pod('r', {
    volumes: [{ name: 'v', configMap: { name: 'cm1' } }, { name: 'w', secret: { secretName: 's1' } }, { name: 'p', projected: { sources: [{ configMap: { name: 'cm2' } }, { secret: { name: 's2' } }] } }],
    containers: [{ name: 'c', image: 'i', env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's3', key: 'k' } } }], envFrom: [{ configMapRef: { name: 'cm3' } }] }],
    imagePullSecrets: [{ name: 'pull' }],
  });
  t.deepEqual(referencedConfigObjects(p), {
    configMaps: ['default/cm1', 'default/cm2', 'default/cm3'],
    secrets: ['default/pull', 'default/s1', 'default/s2', 'default/s3'],
  });
});

test('config objects: from the apiserver (checkpointed, Secrets 0600), the checkpoint when it is unreachable, gone on 404', async (t) => {
  const d = dir(t);
  const checkpoint = createPodCheckpoint(d, logger);
  let mode: 'up' | 'down' | 'gone' = 'up';
  const client = {
    async get(res: { kind: string }, name: string, opts?: { namespace?: string }) {
      if (mode === 'down') throw new KeelsonError('KEELSON_ERR_API_UNREACHABLE', 'connect ECONNREFUSED');
      if (mode === 'gone') throw new ApiStatusError({ kind: 'Status', code: 404, reason: 'NotFound', message: 'not found' } as never, name, 'GET');
      return { kind: res.kind, metadata: { name, namespace: opts?.namespace, resourceVersion: '3' }, data: { key: `${res.kind}-v` } } as never;
    },
  };
  const store = createConfigObjectStore(client, checkpoint, logger);
  t.is((await store.getSecret('default', 's1'))?.data?.key, 'Secret-v');
  t.is((await store.getConfigMap('default', 'cm1'))?.data?.key, 'ConfigMap-v');
  t.is(statSync(join(d, 'secrets', 'default_s1.json')).mode & 0o777, 0o600);
  t.is(statSync(join(d, 'secrets')).mode & 0o777, 0o700);
  mode = 'down';
  t.is((await store.getSecret('default', 's1'))?.data?.key, 'Secret-v', 'offline: the checkpointed copy');
  await t.throwsAsync(store.getSecret('default', 'never-seen'), { message: /ECONNREFUSED/ }, 'unknown and unreachable: it cannot be known');
  mode = 'gone';
  t.is(await store.getSecret('default', 's1'), undefined);
  t.is(checkpoint.loadObject('Secret', 'default', 's1'), undefined, 'deleted in the apiserver → dropped from the checkpoint');
  // refresh drops what no pod uses any more
  mode = 'up';
  await store.refresh([pod('x', { volumes: [{ name: 'v', configMap: { name: 'cm9' } }] })]);
  t.deepEqual(checkpoint.listObjects('ConfigMap'), ['default/cm9']);
  t.deepEqual(checkpoint.listObjects('Secret'), []);
});
