import { mkdtemp, rm, writeFile as rawWriteFile, rename, unlink, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import pino from 'pino';
import type { Pod } from 'kubernetes-types/core/v1';
import { realClock } from '../../agent/pods/clock';
import { createStaticPodSource, scanStaticPods } from '../../agent/pods/static-pod-source';

const pod = (name: string, cmd = 'echo hi') => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
    - name: app
      image: busybox:1
      command: [sh, -c, '${cmd}']
`;

/** Atomic, as editors and config tools write: the source never sees a half-written file. */
async function writeFile(file: string, text: string) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  await rawWriteFile(tmp, text);
  await rename(tmp, file);
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-manifests-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('scan: pods from every non-hidden file, problems named by file and field', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'a.yaml'), pod('a'));
  await writeFile(path.join(dir, 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b', namespace: 'kube-system' }, spec: { containers: [{ name: 'x', image: 'i:1' }] } }));
  await writeFile(path.join(dir, 'c.yaml'), pod('c').replace('      image: busybox:1\n', ''));
  await writeFile(path.join(dir, '.hidden.yaml'), pod('hidden'));
  await writeFile(path.join(dir, 'd.yaml'), pod('a')); // same name as a.yaml
  await mkdir(path.join(dir, 'subdir'));
  const result = await scanStaticPods(dir, 'node1');
  t.deepEqual(result.pods.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`), ['default/a-node1', 'kube-system/b-node1']);
  t.deepEqual(result.problems.map((p) => [path.basename(p.file), p.field]), [['c.yaml', 'spec.containers[0].image'], ['d.yaml', 'metadata.name']]);
});

test('scan: a missing folder is no pods, not an error', async (t) => {
  const result = await scanStaticPods('/nonexistent/keelson/manifests', 'n');
  t.deepEqual(result, { pods: [], problems: [], warnings: [] });
});

test('source: delivers the set on start and after add, change and remove; logs bad manifests at error level', async (t) => {
  const dir = await tempDir(t);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const source = createStaticPodSource({ staticPodPath: dir, nodeName: 'n1', logger, clock: realClock, debounceMs: 20, rescanMs: 1500 });
  t.teardown(() => source.stop());
  const sets: Pod[][] = [];
  let notify: (() => void) | undefined;
  const next = () => new Promise<Pod[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no update within 5 s')), 5000);
    notify = () => { clearTimeout(timer); resolve(sets[sets.length - 1]); };
  });
  await source.start((pods) => { sets.push(pods); notify?.(); });
  t.deepEqual(sets, [[]]);

  let update = next();
  await writeFile(path.join(dir, 'web.yaml'), pod('web'));
  const added = await update;
  t.deepEqual(added.map((p) => p.metadata!.name), ['web-n1']);
  const uid = added[0].metadata!.uid;

  update = next();
  await writeFile(path.join(dir, 'web.yaml'), pod('web', 'echo changed'));
  const changed = await update;
  t.is(changed.length, 1);
  t.not(changed[0].metadata!.uid, uid);

  update = next();
  await writeFile(path.join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: a, image: b}]\n');
  await writeFile(path.join(dir, 'web2.yaml'), pod('web2'));
  const withBad = await update;
  t.deepEqual(withBad.map((p) => p.metadata!.name).sort(), ['web-n1', 'web2-n1']);
  t.deepEqual(source.problems().map((p) => [path.basename(p.file), p.field]), [['bad.yaml', 'spec.restartPolicy']]);
  const logged = lines.find((l) => l.level === 50 && l.field === 'spec.restartPolicy');
  t.truthy(logged);
  t.is(logged!.file, path.join(dir, 'bad.yaml'));

  update = next();
  await unlink(path.join(dir, 'web.yaml'));
  t.deepEqual((await update).map((p) => p.metadata!.name), ['web2-n1']);
});
