/**
 * imagePullSecrets against a real registry: Debian's docker-registry (distribution 2.8) with bcrypt
 * htpasswd basic auth on 127.0.0.1:<free port> inside the node's network namespace, a test image
 * pushed into it with `ctr images push`, and the private containerd's CRI plugin allowed to pull
 * from it over plain http (hosts.toml). Through keelson's kubelet:
 * - a pod with a kubernetes.io/dockerconfigjson pull secret pulls the image and runs it;
 * - without a secret, or with a wrong password, the container waits with ErrImagePull and then
 *   ImagePullBackOff naming the image, with Failed Events, and a pod beside it keeps running;
 * - imagePullPolicy Always asks the registry again, IfNotPresent does not.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Pod, Secret } from 'kubernetes-types/core/v1';
import { registerEventSink } from '../../agent/pods/events';
import { integrationTest } from '../harness/requirements';
import { allowPlainHttp, pushImage, REGISTRY_COMMANDS, startRegistry, type TestRegistry } from '../harness/registry';
import { SPEC_NODE_COMMANDS, sh, specNode } from './spec-node';
import { b64 } from './spec-helpers';

const itest = integrationTest({ root: true, commands: [...SPEC_NODE_COMMANDS, ...REGISTRY_COMMANDS] });

const USER = 'keelson-puller';
const PASSWORD = randomBytes(12).toString('base64url');
const REPO = 'private/app';
const MARKER = 'pulled-from-the-private-registry';

let registry: TestRegistry | undefined;
let image = '';
let deniedImage = '';
const events = new Map<string, string[]>();
let unregisterSink = () => {};

// stop the registry before specNode's own after hook stops containerd and deletes the namespace
itest.serial.after.always(async () => {
  unregisterSink();
  await registry?.stop();
});

// pull back-off longer than the first start retry (1 s), so a failed pull is seen in ImagePullBackOff before the next attempt
const node = specNode(itest, { podSubnet: '10.88.24.0/24', config: { backoff: { initialMs: 4000, maxMs: 8000 } } });

itest.serial.before(async () => {
  registry = await startRegistry({ netns: node.containerd.netns, users: { [USER]: PASSWORD } });
  allowPlainHttp(node.containerd, registry.host);
  const entrypoint = ['sh', '-c', `echo ${MARKER} > /tmp/marker; exec sleep 3600`];
  image = await pushImage(node.containerd, registry, { repo: REPO, tag: '1', user: USER, password: PASSWORD, entrypoint });
  deniedImage = await pushImage(node.containerd, registry, { repo: REPO, tag: 'denied', user: USER, password: PASSWORD, entrypoint });
  node.data.secrets.push(pullSecret('regcred', USER, PASSWORD), pullSecret('wrongcred', USER, 'not-the-password'));
  unregisterSink = registerEventSink({
    owns: (uid) => events.has(uid),
    record: (_pod, type, reason, message, o) => void events.get(_pod.metadata!.uid!)!.push(`${type} ${reason} ${o?.fieldPath ?? ''} ${message}`),
  });
});

itest.afterEach.always((t) => {
  if (!t.passed) registry?.markFailed();
});

function pullSecret(name: string, username: string, password: string): Secret {
  const auths = { [registry!.host]: { username, password, auth: b64(`${username}:${password}`) } };
  return { metadata: { namespace: 'ns1', name }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64(JSON.stringify({ auths })) } };
}

/** A pod running the pushed image's own entrypoint; its Events are collected. */
function registryPod(name: string, ref: string, policy: 'Always' | 'IfNotPresent', secret?: string): Pod {
  const pod = node.pod(name, {
    containers: [{ name: 'app', image: ref, imagePullPolicy: policy }],
    ...(secret ? { imagePullSecrets: [{ name: secret }] } : {}),
  });
  events.set(pod.metadata!.uid!, []);
  return pod;
}

const eventsOf = (name: string) => events.get(node.uid(name)) ?? [];
const appStatus = (name: string) => node.statusOf(name)?.containerStatuses?.find((s) => s.name === 'app');
const running = (name: string) => node.statusOf(name)?.phase === 'Running' && appStatus(name)?.state?.running !== undefined;
/** Successful resolves of the tag (each CRI pull asks for the tag's manifest, first without then with credentials). */
const registryLog = () => readFileSync(registry!.logPath, 'utf8');
const resolves = (tag: string) => registry!.manifestRequests(REPO, tag).filter((r) => r.status === 200).length;

itest.serial('a pod with a dockerconfigjson pull secret pulls from the auth-protected registry and runs', async (t) => {
  t.falsy((await node.cri.imageStatus({ image: { image } })).image, 'the image is not on the node before');

  node.add(registryPod('with-secret', image, 'IfNotPresent', 'regcred'));
  await node.waitFor('with-secret running', () => running('with-secret'), 60_000);

  t.is(appStatus('with-secret')!.image, image);
  t.regex(appStatus('with-secret')!.imageID ?? '', /sha256:[0-9a-f]{64}/);
  t.is((await node.exec('with-secret', 'app', 'cat /tmp/marker')).trim(), MARKER, 'the container runs the pushed image');
  // the registry really asked for credentials and got them
  const tagRequests = registry!.manifestRequests(REPO, '1');
  t.true(tagRequests.some((r) => r.status === 401), JSON.stringify(tagRequests));
  t.true(tagRequests.some((r) => r.status === 200 && r.userAgent.startsWith('containerd/')), JSON.stringify(tagRequests));
  t.true(registry!.requests().some((r) => r.method === 'GET' && r.path.startsWith(`/v2/${REPO}/blobs/sha256:`) && r.status === 200), 'blobs fetched');
  const log = eventsOf('with-secret');
  t.true(log.includes(`Normal Pulling spec.containers{app} Pulling image "${image}"`), log.join('\n'));
  t.true(log.some((e) => e.startsWith(`Normal Pulled spec.containers{app} Successfully pulled image "${image}" in `)), log.join('\n'));
});

itest.serial('without the secret or with a wrong password: ErrImagePull, then ImagePullBackOff, Failed Events; a pod beside keeps running', async (t) => {
  node.add(node.pod('bystander', { containers: [{ name: 'main', ...sh('sleep 3600') }] }));
  const bystanderId = await node.containerId('bystander', 'main');

  /** Every waiting reason of the app container as the status manager records it, until ImagePullBackOff. */
  const observe = async (name: string) => {
    const seen: string[] = [];
    const messages = new Map<string, string>();
    const stop = node.kubelet.statusManager.onChange((pod, status) => {
      if (pod.metadata?.name !== name) return;
      const waiting = status.containerStatuses?.find((s) => s.name === 'app')?.state?.waiting;
      if (!waiting?.reason) return;
      if (seen.at(-1) !== waiting.reason) seen.push(waiting.reason);
      messages.set(waiting.reason, waiting.message ?? '');
    });
    try {
      await node.waitFor(`${name} in ImagePullBackOff`, () => seen.includes('ImagePullBackOff'), 30_000);
    } finally {
      stop();
    }
    return { seen, messages };
  };

  // 1) no imagePullSecrets at all: containerd asks anonymously and is refused
  const before = registry!.manifestRequests(REPO, 'denied').length;
  const anonWatch = observe('no-secret'); // subscribes before the pod is added
  node.add(registryPod('no-secret', deniedImage, 'IfNotPresent'));
  const anon = await anonWatch;
  t.deepEqual(anon.seen.filter((r) => r !== 'ContainerCreating').slice(0, 2), ['ErrImagePull', 'ImagePullBackOff']);
  t.true(anon.messages.get('ErrImagePull')!.includes(`"${deniedImage}"`), anon.messages.get('ErrImagePull'));
  t.regex(anon.messages.get('ErrImagePull')!, /401 Unauthorized/);
  t.is(anon.messages.get('ImagePullBackOff'), `Back-off pulling image "${deniedImage}"`);
  const anonRequests = registry!.manifestRequests(REPO, 'denied').slice(before);
  t.true(anonRequests.length > 0 && anonRequests.every((r) => r.status === 401), JSON.stringify(anonRequests));
  let log = eventsOf('no-secret');
  t.true(log.some((e) => e.startsWith(`Warning Failed spec.containers{app} Failed to pull image "${deniedImage}": `)), log.join('\n'));
  t.true(log.includes('Warning Failed spec.containers{app} Error: ErrImagePull'), log.join('\n'));
  t.true(log.includes(`Normal BackOff spec.containers{app} Back-off pulling image "${deniedImage}"`), log.join('\n'));

  // 2) a secret with the wrong password: the credentials are sent and rejected
  const logBefore = registryLog().length;
  const wrongWatch = observe('wrong-password'); // subscribes before the pod is added
  node.add(registryPod('wrong-password', deniedImage, 'IfNotPresent', 'wrongcred'));
  const wrong = await wrongWatch;
  t.deepEqual(wrong.seen.filter((r) => r !== 'ContainerCreating').slice(0, 2), ['ErrImagePull', 'ImagePullBackOff']);
  t.true(wrong.messages.get('ErrImagePull')!.includes(`"${deniedImage}"`), wrong.messages.get('ErrImagePull'));
  t.regex(wrong.messages.get('ErrImagePull')!, /401 Unauthorized/);
  // the registry tells "no credentials" (invalid authorization credential) from "wrong ones" (authentication failure)
  t.notRegex(registryLog().slice(0, logBefore), /authentication failure/, 'no credentials were sent before');
  t.regex(registryLog().slice(logBefore), /authentication failure/, 'the registry saw (and refused) the secret\'s credentials');
  log = eventsOf('wrong-password');
  t.true(log.some((e) => e.startsWith(`Warning Failed spec.containers{app} Failed to pull image "${deniedImage}": `)), log.join('\n'));

  // the pod beside them was never touched
  t.is(await node.containerId('bystander', 'main'), bystanderId);
  const by = node.statusOf('bystander')!.containerStatuses!.find((s) => s.name === 'main')!;
  t.is(by.restartCount, 0);
  t.truthy(by.state?.running);
  t.is(node.statusOf('bystander')!.phase, 'Running');
  node.remove('no-secret');
  node.remove('wrong-password');
});

itest.serial('imagePullPolicy Always asks the registry again; IfNotPresent uses the image already on the node', async (t) => {
  t.truthy((await node.cri.imageStatus({ image: { image } })).image, 'pulled by the first test');

  const beforeIfNotPresent = resolves('1');
  node.add(registryPod('if-not-present', image, 'IfNotPresent', 'regcred'));
  await node.waitFor('if-not-present running', () => running('if-not-present'), 30_000);
  t.is(resolves('1'), beforeIfNotPresent, 'IfNotPresent: no request to the registry');
  t.true(eventsOf('if-not-present').includes(`Normal Pulled spec.containers{app} Container image "${image}" already present on machine`), eventsOf('if-not-present').join('\n'));

  const beforeAlways = resolves('1');
  node.add(registryPod('always', image, 'Always', 'regcred'));
  await node.waitFor('always running', () => running('always'), 30_000);
  t.is(resolves('1'), beforeAlways + 1, 'Always: one more pull of the tag');
  const log = eventsOf('always');
  t.true(log.includes(`Normal Pulling spec.containers{app} Pulling image "${image}"`), log.join('\n'));
  t.true(log.some((e) => e.startsWith(`Normal Pulled spec.containers{app} Successfully pulled image "${image}" in `)), log.join('\n'));
});
