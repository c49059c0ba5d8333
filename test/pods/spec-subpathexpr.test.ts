/**
 * volumeMounts[].subPathExpr: $(VAR) expansion from the container's environment into a subPath
 * (undefined or empty variables and results that are absolute or contain `..` are errors naming the
 * field), manifest validation (mutually exclusive with subPath), the mount and its folder on the
 * fake runtime; then on a real containerd: two containers of a pod see the same expanded folder,
 * and a bad expansion is a CreateContainerConfigError of that container only.
 */
import test from 'ava';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Container } from 'kubernetes-types/core/v1';
import { expandSubPathExprs } from '../../agent/pods/env';
import { validateDocument } from '../../agent/pods/manifest';
import { IMAGE, makePod, setup } from './health-helpers';
import { integrationTest } from '../harness/requirements';
import { SPEC_NODE_COMMANDS, sh, specNode } from './spec-node';

const ENV = [{ key: 'POD', value: 'web-1' }, { key: 'NS', value: 'shop' }, { key: 'EMPTY', value: '' }, { key: 'UP', value: '..' }, { key: 'ABS', value: '/etc' }];

function expand(subPathExpr: string): string {
  const c: Container = { name: 'c', volumeMounts: [{ name: 'v', mountPath: '/m' }, { name: 'v', mountPath: '/x', subPathExpr }] };
  return expandSubPathExprs(c, ENV).volumeMounts![1].subPath!;
}

test('expansion: variables from the environment, $$ escapes; undefined or empty variables, absolute and .. results are errors naming the field', (t) => {
  t.is(expand('$(NS)/$(POD)'), 'shop/web-1');
  t.is(expand('logs/$(POD).d'), 'logs/web-1.d');
  t.is(expand('a$$(POD)'), 'a$(POD)');
  t.is(expand('a..b/$(POD)'), 'a..b/web-1', '.. only as a whole path element is a step out');
  const c: Container = { name: 'c', volumeMounts: [{ name: 'v', mountPath: '/m', subPath: 'plain' }] };
  t.is(expandSubPathExprs(c, ENV), c, 'nothing to expand: the same container');
  const fails = (expr: string, message: string) =>
    t.throws(() => expand(expr), { message }, expr) as Error & { reason?: string };
  t.is(fails('$(MISSING)/$(EMPTY)/$(POD)', 'volumeMounts[1].subPathExpr: missing value for EMPTY, MISSING').reason, 'CreateContainerConfigError');
  fails('$(UP)/x', `volumeMounts[1].subPathExpr: "$(UP)/x" expands to "../x": must be a relative path without '..'`);
  fails('$(ABS)', `volumeMounts[1].subPathExpr: "$(ABS)" expands to "/etc": must be a relative path without '..'`);
  fails('x/$(UP)', `volumeMounts[1].subPathExpr: "x/$(UP)" expands to "x/..": must be a relative path without '..'`);
});

test('manifest: subPathExpr is supported; exclusive with subPath; a literal absolute or .. is refused', (t) => {
  const doc = (mount: object) => validateDocument({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' },
    spec: { volumes: [{ name: 'v', emptyDir: {} }], containers: [{ name: 'a', image: 'i', volumeMounts: [{ name: 'v', mountPath: '/m', ...mount }] }] },
  }, 0);
  const ok = doc({ subPathExpr: '$(POD_NAME)' });
  t.deepEqual([ok.errors, ok.warnings], [[], []]);
  const field = 'spec.containers[0].volumeMounts[0].subPathExpr';
  t.deepEqual(doc({ subPathExpr: '$(POD_NAME)', subPath: 'x' }).errors, [{ field, message: 'Invalid value: "$(POD_NAME)": subPathExpr and subPath are mutually exclusive' }]);
  t.deepEqual(doc({ subPathExpr: '/$(POD_NAME)' }).errors, [{ field, message: `Invalid value: "/$(POD_NAME)": must be a relative path without '..'` }]);
  t.deepEqual(doc({ subPathExpr: '../$(POD_NAME)' }).errors.map((e) => e.field), [field]);
});

test('fake runtime: the expanded subPath is mounted and its folder made; a bad expansion waits in CreateContainerConfigError, the sibling runs', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'keelson-subpathexpr-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const env = await setup({ config: { rootDir: root, podLogsDir: path.join(root, 'logs') } });
  t.teardown(() => env.kubelet.stop());
  const podName = { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } };
  const pod = makePod('spe', { volumes: [{ name: 'data', emptyDir: {} }] }, [
    { name: 'good', image: IMAGE, env: [podName], volumeMounts: [{ name: 'data', mountPath: '/data', subPathExpr: 'pods/$(POD_NAME)' }] },
    { name: 'bad', image: IMAGE, volumeMounts: [{ name: 'data', mountPath: '/data', subPathExpr: 'pods/$(POD_NAME)' }] },
  ]);
  env.source.set([pod]);
  const statusOf = (name: string) => env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)?.containerStatuses?.find((s) => s.name === name)?.state;
  await env.until(() => statusOf('good')?.running !== undefined && statusOf('bad')?.waiting?.reason === 'CreateContainerConfigError');
  t.is(statusOf('bad')!.waiting!.message, 'volumeMounts[0].subPathExpr: missing value for POD_NAME');
  const expected = path.join(root, 'pods', pod.metadata!.uid!, 'volumes', 'kubernetes.io~empty-dir', 'data', 'pods', pod.metadata!.name!);
  const good = [...env.runtime.containers.values()].find((c) => c.config.metadata.name === 'good')!;
  t.deepEqual(good.config.mounts!.find((m) => m.containerPath === '/data'), { containerPath: '/data', hostPath: expected, readonly: false });
  t.true((await stat(expected)).isDirectory());
});

// ---------------------------------------------------------------- real containerd

const itest = integrationTest({ root: true, commands: SPEC_NODE_COMMANDS });
const node = specNode(itest, { podSubnet: '10.88.23.0/24' });

itest.serial('containerd: two containers write through subPathExpr folders of one emptyDir; a reader of the whole volume sees both; a .. expansion is refused', async (t) => {
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const writer = (name: string) => ({
    name, ...sh(`echo "from $CNAME" > /out/hello; exec sleep 3600`),
    env: [fieldEnv('POD_NAME', 'metadata.name'), { name: 'CNAME', value: name }],
    volumeMounts: [{ name: 'logs', mountPath: '/out', subPathExpr: '$(POD_NAME)/$(CNAME)' }],
  });
  node.add(node.pod('spe', {
    volumes: [{ name: 'logs', emptyDir: {} }],
    containers: [
      writer('one'), writer('two'),
      { name: 'reader', ...sh('exec sleep 3600'), volumeMounts: [{ name: 'logs', mountPath: '/all', readOnly: true }] },
      { name: 'escapes', ...sh('exec sleep 3600'), env: [{ name: 'UP', value: '..' }], volumeMounts: [{ name: 'logs', mountPath: '/out', subPathExpr: '$(UP)' }] },
    ],
  }));
  await node.waitFor('both files written', async () => (await node.exec('spe', 'reader', 'cat /all/spe/one/hello /all/spe/two/hello 2>/dev/null')) === 'from one\nfrom two\n');
  t.is(await node.exec('spe', 'one', 'ls /out'), 'hello\n', 'the writer sees only its own folder');
  const onHost = path.join(node.rootDir, 'pods', `uid-spe-${process.pid}`, 'volumes', 'kubernetes.io~empty-dir', 'logs', 'spe', 'two', 'hello');
  t.is(await readFile(onHost, 'utf8'), 'from two\n');
  const waitingOf = () => node.statusOf('spe')?.containerStatuses?.find((s) => s.name === 'escapes')?.state?.waiting;
  const waiting = await node.waitFor('escapes refused', () => waitingOf()?.reason === 'CreateContainerConfigError' && waitingOf());
  t.is(waiting.message, `volumeMounts[0].subPathExpr: "$(UP)" expands to "..": must be a relative path without '..'`);
});
