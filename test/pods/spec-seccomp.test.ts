/**
 * seccomp profiles: which profile the sandbox and each container get (container over pod over the
 * node default, seccompDefault), manifest validation, a missing Localhost profile as a
 * CreateContainerError with an Event for that container only (fake runtime); then on a real
 * containerd: RuntimeDefault shows `Seccomp: 2` in /proc/self/status, Unconfined `Seccomp: 0`, a
 * Localhost profile from <rootDir>/seccomp is enforced, and a missing one is refused.
 */
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import { registerEventSink } from '../../agent/pods/events';
import { validateDocument } from '../../agent/pods/manifest';
import { containerSeccompProfile, sandboxSeccompProfile } from '../../agent/pods/seccomp';
import { IMAGE, makePod, setup } from './health-helpers';
import { integrationTest } from '../harness/requirements';
import { SPEC_NODE_COMMANDS, sh, specNode } from './spec-node';

const SETTINGS = { profileRoot: '/var/lib/keelson/seccomp', defaultToRuntimeDefault: false };

test('profile choice: container over pod over the node default; Localhost under <rootDir>/seccomp; seccompDefault', (t) => {
  const pod = (podProfile?: object, containerProfile?: object): [Pod, NonNullable<Pod['spec']>['containers'][number]] => {
    const p = makePod('p', podProfile ? { securityContext: { seccompProfile: podProfile } } : {}, [
      { name: 'a', image: IMAGE, ...(containerProfile ? { securityContext: { seccompProfile: containerProfile } } : {}) },
    ]);
    return [p, p.spec!.containers[0]];
  };
  const cases: [object | undefined, object | undefined, object, object][] = [
    [undefined, undefined, { type: 'Unconfined' }, { type: 'Unconfined' }],
    [{ type: 'RuntimeDefault' }, undefined, { type: 'RuntimeDefault' }, { type: 'RuntimeDefault' }],
    [{ type: 'RuntimeDefault' }, { type: 'Unconfined' }, { type: 'RuntimeDefault' }, { type: 'Unconfined' }],
    [undefined, { type: 'Localhost', localhostProfile: 'profiles/audit.json' }, { type: 'Unconfined' }, { type: 'Localhost', localhostRef: '/var/lib/keelson/seccomp/profiles/audit.json' }],
    [{ type: 'Localhost', localhostProfile: 'p.json' }, { type: 'RuntimeDefault' }, { type: 'Localhost', localhostRef: '/var/lib/keelson/seccomp/p.json' }, { type: 'RuntimeDefault' }],
  ];
  for (const [podProfile, containerProfile, sandbox, container] of cases) {
    const [p, c] = pod(podProfile, containerProfile);
    t.deepEqual(sandboxSeccompProfile(p, SETTINGS), sandbox, JSON.stringify({ podProfile, containerProfile }));
    t.deepEqual(containerSeccompProfile(p, c, SETTINGS), container, JSON.stringify({ podProfile, containerProfile }));
  }
  const [p, c] = pod(undefined, undefined);
  const withDefault = { ...SETTINGS, defaultToRuntimeDefault: true };
  t.deepEqual(sandboxSeccompProfile(p, withDefault), { type: 'RuntimeDefault' });
  t.deepEqual(containerSeccompProfile(p, c, withDefault), { type: 'RuntimeDefault' });
  const [explicit, ec] = pod(undefined, { type: 'Unconfined' });
  t.deepEqual(containerSeccompProfile(explicit, ec, withDefault), { type: 'Unconfined' }, 'an explicit Unconfined wins over seccompDefault');
});

test('manifest: seccompProfile is accepted (no warning) and checked at pod and container level', (t) => {
  const doc = (podSc: object, containerSc: object) =>
    validateDocument({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { securityContext: podSc, containers: [{ name: 'a', image: 'i', securityContext: containerSc }] } }, 0);
  const ok = doc({ seccompProfile: { type: 'RuntimeDefault' } }, { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/a.json' } });
  t.deepEqual(ok.errors, []);
  t.deepEqual(ok.warnings, []);
  const bad = (podProfile: object, containerProfile: object) => doc({ seccompProfile: podProfile }, { seccompProfile: containerProfile }).errors.map((e) => `${e.field}: ${e.message}`).sort();
  t.deepEqual(bad({ type: 'Strict' }, { type: 'Localhost' }), [
    'spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost',
    'spec.securityContext.seccompProfile.type: Unsupported value: "Strict": supported values: "RuntimeDefault", "Unconfined", "Localhost"',
  ]);
  t.deepEqual(bad({ type: 'RuntimeDefault', localhostProfile: 'x' }, { type: 'Localhost', localhostProfile: '../etc/x' }), [
    `spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "../etc/x": must be a relative path without '..'`,
    'spec.securityContext.seccompProfile.localhostProfile: Invalid value: can only be set when seccomp type is Localhost',
  ]);
  t.deepEqual(bad({}, { localhostProfile: '/abs' }), [
    'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "/abs": must be a relative path without \'..\'',
    'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: can only be set when seccomp type is Localhost',
    'spec.containers[0].securityContext.seccompProfile.type: Required value',
    'spec.securityContext.seccompProfile.type: Required value',
  ]);
});

test('fake runtime: the sandbox gets the pod profile, containers theirs; a missing Localhost profile is a CreateContainerError with an Event, the sibling runs', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'keelson-seccomp-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(path.join(root, 'seccomp', 'profiles'), { recursive: true });
  await writeFile(path.join(root, 'seccomp', 'profiles', 'present.json'), '{"defaultAction":"SCMP_ACT_ALLOW"}');
  const env = await setup({ config: { rootDir: root, podLogsDir: path.join(root, 'logs'), seccompDefault: true } });
  t.teardown(() => env.kubelet.stop());
  const pod = makePod('sc', { securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/present.json' } } }, [
    { name: 'inherits', image: IMAGE },
    { name: 'unconfined', image: IMAGE, securityContext: { seccompProfile: { type: 'Unconfined' } } },
    { name: 'missing', image: IMAGE, securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/absent.json' } } },
  ]);
  const plain = makePod('plain');
  const events: string[] = [];
  t.teardown(registerEventSink({ owns: (uid) => uid === pod.metadata!.uid, record: (_p, type, reason, message, o) => void events.push(`${type} ${reason} ${o?.fieldPath ?? ''} ${message}`) }));
  env.source.set([pod, plain]);
  const missingState = () => env.kubelet.statusManager.getPodStatus(pod.metadata!.uid!)?.containerStatuses?.find((s) => s.name === 'missing')?.state?.waiting;
  await env.until(() => missingState()?.reason === 'CreateContainerError');
  const absent = path.join(root, 'seccomp', 'profiles', 'absent.json');
  t.is(missingState()!.message, `seccomp profile not found: ${absent}`);
  t.true(events.includes(`Warning Failed spec.containers{missing} Error: seccomp profile not found: ${absent}`), events.join('\n'));

  const present = { type: 'Localhost', localhostRef: path.join(root, 'seccomp', 'profiles', 'present.json') };
  const sandboxes = [...env.runtime.sandboxes.values()];
  t.deepEqual(sandboxes.find((s) => s.metadata.name === pod.metadata!.name)!.config.linux.securityContext.seccomp, present);
  // seccompDefault: a pod that sets nothing gets RuntimeDefault
  t.deepEqual(sandboxes.find((s) => s.metadata.name === plain.metadata!.name)!.config.linux.securityContext.seccomp, { type: 'RuntimeDefault' });
  const profileOf = (name: string) => [...env.runtime.containers.values()].find((c) => c.config.metadata.name === name && c.state === 'running')?.config.linux.securityContext.seccomp;
  t.deepEqual(profileOf('inherits'), present);
  t.deepEqual(profileOf('unconfined'), { type: 'Unconfined' });
  t.deepEqual(profileOf('app'), { type: 'RuntimeDefault' });
  t.falsy([...env.runtime.containers.values()].find((c) => c.config.metadata.name === 'missing'), 'the runtime was never asked');
});

// ---------------------------------------------------------------- real containerd

const itest = integrationTest({ root: true, commands: SPEC_NODE_COMMANDS });
/** Allows everything but creating directories: enforced, and visible from a shell. */
const NO_MKDIR = JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] });
const node = specNode(itest, {
  podSubnet: '10.88.22.0/24',
  async prepare(rootDir) {
    await mkdir(path.join(rootDir, 'seccomp', 'profiles'), { recursive: true });
    await writeFile(path.join(rootDir, 'seccomp', 'profiles', 'no-mkdir.json'), NO_MKDIR);
  },
});

itest.serial('containerd: RuntimeDefault → Seccomp 2, Unconfined (and unset) → Seccomp 0, a Localhost profile is enforced, a missing one is refused', async (t) => {
  const seccompLine = 'grep ^Seccomp: /proc/self/status';
  node.add(
    node.pod('seccomp', {
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        { name: 'runtime-default', ...sh('exec sleep 3600') },
        { name: 'unconfined', ...sh('exec sleep 3600'), securityContext: { seccompProfile: { type: 'Unconfined' } } },
        { name: 'localhost', ...sh('exec sleep 3600'), securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/no-mkdir.json' } } },
        { name: 'missing', ...sh('exec sleep 3600'), securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/absent.json' } } },
      ],
    }),
    node.pod('unset', { containers: [{ name: 'app', ...sh('exec sleep 3600') }] }),
  );
  t.regex(await node.exec('seccomp', 'runtime-default', seccompLine), /^Seccomp:\s+2$/m);
  t.regex(await node.exec('seccomp', 'unconfined', seccompLine), /^Seccomp:\s+0$/m);
  t.regex(await node.exec('unset', 'app', seccompLine), /^Seccomp:\s+0$/m);
  t.regex(await node.exec('seccomp', 'localhost', seccompLine), /^Seccomp:\s+2$/m);
  t.regex(await node.exec('seccomp', 'localhost', 'mkdir /tmp/d 2>&1; echo rc=$?'), /Operation not permitted[\s\S]*rc=1/);
  t.is(await node.exec('seccomp', 'unconfined', 'mkdir /tmp/d && echo made'), 'made\n');
  const waitingOf = () => node.statusOf('seccomp')?.containerStatuses?.find((s) => s.name === 'missing')?.state?.waiting;
  const waiting = await node.waitFor('missing profile reported', () => waitingOf()?.reason === 'CreateContainerError' && waitingOf());
  t.is(waiting.message, `seccomp profile not found: ${path.join(node.rootDir, 'seccomp', 'profiles', 'absent.json')}`);
  t.truthy(node.statusOf('seccomp')!.containerStatuses!.find((s) => s.name === 'runtime-default')!.state!.running);
});
