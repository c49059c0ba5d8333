/**
 * The CRI client against a real, private containerd running in a fresh network namespace:
 * version, images, the pod and container lifecycle, logs, exec, pod networking, errors, restart.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createCriClient, type CriClient } from '../../cri/client';
import { CriErrorCodes, isCriError, isNotFound, isUnimplemented, type CriError } from '../../cri/errors';
import type { ContainerEvent, PodSandboxConfig } from '../../cri/types';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE, PAUSE_IMAGE } from '../harness/images';
import { execIn } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const test = integrationTest({ root: true, commands: ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'nsenter', 'ip', 'busybox'] });

const POD_SUBNET = '10.88.41.0/24';
let node: ContainerdNode | undefined;
let cri: CriClient;

test.before(async () => {
  node = await startContainerd({ podSubnet: POD_SUBNET });
  cri = createCriClient({ endpoint: node.endpoint });
});

test.afterEach.always((t) => {
  if (!t.passed) node?.markFailed();
});

test.after.always(async () => {
  cri?.close();
  await node?.stop();
});

function sandboxConfig(name: string, uid: string): PodSandboxConfig {
  return {
    metadata: { name, namespace: 'default', uid, attempt: 0 },
    hostname: name,
    log_directory: path.join(node!.podLogDir, `default_${name}_${uid}`),
    labels: { 'io.kubernetes.pod.name': name },
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function expectCriError(promise: Promise<unknown>): Promise<CriError> {
  try {
    await promise;
  } catch (err) {
    if (isCriError(err)) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

test.serial('Version reports the runtime.v1 API', async (t) => {
  const v = await cri.version();
  t.is(v.runtime_api_version, 'v1');
  t.is(v.runtime_name, 'containerd');
  t.regex(v.runtime_version, /^1\.\d+/);
  const status = await cri.status();
  const conditions = Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c.status]));
  t.deepEqual(conditions, { RuntimeReady: true, NetworkReady: true });
});

test.serial('imported test images are visible through the ImageService', async (t) => {
  const busybox = await cri.imageStatus({ image: { image: BUSYBOX_IMAGE } });
  t.truthy(busybox.image, 'busybox image present');
  t.true(busybox.image!.repo_tags.includes(BUSYBOX_IMAGE));
  t.true(Number(busybox.image!.size) > 1_000_000, 'size is a decimal string of the real image size');
  const pause = await cri.imageStatus({ image: { image: PAUSE_IMAGE } });
  t.truthy(pause.image);
  const missing = await cri.imageStatus({ image: { image: 'docker.io/library/absent:none' } });
  t.is(missing.image, null);
  const { images } = await cri.listImages();
  t.true(images.some((i) => i.repo_tags.includes(PAUSE_IMAGE)));
  const fs = await cri.imageFsInfo();
  t.true(fs.image_filesystems.length > 0);
});

test.serial('pod and container lifecycle: run, log, exec, network, stop, remove', async (t) => {
  const config = sandboxConfig('hello', 'uid-hello-1');
  const { pod_sandbox_id } = await cri.runPodSandbox({ config });
  t.truthy(pod_sandbox_id);

  const sandbox = await cri.podSandboxStatus({ pod_sandbox_id });
  t.is(sandbox.status?.state, 'SANDBOX_READY');
  t.is(sandbox.status?.metadata?.name, 'hello');
  const ip = sandbox.status?.network?.ip ?? '';
  t.regex(ip, /^10\.88\.41\.\d+$/, 'pod IP comes from the node bridge subnet');

  const { container_id } = await cri.createContainer({
    pod_sandbox_id,
    sandbox_config: config,
    config: {
      metadata: { name: 'main', attempt: 0 },
      image: { image: BUSYBOX_IMAGE },
      command: ['sh', '-c', 'echo hello; sleep 300'],
      envs: [{ key: 'GREETING', value: 'hi there' }],
      log_path: 'main/0.log',
      labels: { 'io.kubernetes.container.name': 'main' },
    },
  });
  const created = await cri.containerStatus({ container_id });
  t.is(created.status?.state, 'CONTAINER_CREATED', 'state 0 is reported, not left out');

  await cri.startContainer({ container_id });
  const running = await cri.containerStatus({ container_id });
  t.is(running.status?.state, 'CONTAINER_RUNNING');
  t.is(running.status?.metadata?.name, 'main');
  t.regex(running.status!.started_at, /^\d{19}$/, 'nanosecond timestamp kept exact as a string');
  const logPath = path.join(config.log_directory!, 'main/0.log');
  t.is(running.status?.log_path, logPath);

  // CRI log format: <RFC3339Nano time> <stream> <P|F> <content>
  const line = await waitFor('hello in the container log', async () => {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    return text.split('\n').find((l) => l.endsWith(' hello'));
  });
  t.regex(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F hello$/);

  const exec = await cri.execSync({ container_id, cmd: ['sh', '-c', 'echo "$GREETING"; echo oops >&2; exit 3'], timeout: 10 });
  t.is(exec.stdout.toString(), 'hi there\n');
  t.is(exec.stderr.toString(), 'oops\n');
  t.is(exec.exit_code, 3);

  // The container sees its pod IP, and the node namespace reaches it over the CNI bridge.
  const addr = await cri.execSync({ container_id, cmd: ['ip', '-4', '-o', 'addr', 'show', 'eth0'], timeout: 10 });
  t.true(addr.stdout.toString().includes(`${ip}/24`));
  await execIn(node!.netns, 'busybox', ['ping', '-c', '1', '-W', '2', ip]);

  // Stats, resource updates and the streaming URLs decode through the same codec.
  const stats = await cri.containerStats({ container_id });
  t.is(stats.stats?.attributes?.id, container_id);
  t.true(Number(stats.stats?.memory?.working_set_bytes?.value ?? 0) > 0);
  await cri.updateContainerResources({ container_id, linux: { memory_limit_in_bytes: 96 * 1024 * 1024, cpu_shares: 256 } });
  const updated = await cri.containerStatus({ container_id });
  t.is(updated.status?.resources?.linux?.memory_limit_in_bytes, String(96 * 1024 * 1024));
  t.regex((await cri.exec({ container_id, cmd: ['sh'], stdout: true })).url, /^http:\/\/127\.0\.0\.1:\d+\/exec\//);
  await cri.reopenContainerLog({ container_id });

  const running2 = await cri.listContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } });
  t.true(running2.containers.some((c) => c.id === container_id));
  const listed = await cri.listContainers({ filter: { pod_sandbox_id } });
  t.deepEqual(
    listed.containers.map((c) => [c.id, c.state]),
    [[container_id, 'CONTAINER_RUNNING']],
  );

  const stopStarted = Date.now();
  await cri.stopContainer({ container_id, timeout: 2 });
  t.true(Date.now() - stopStarted < 10_000);
  const exited = await cri.containerStatus({ container_id });
  t.is(exited.status?.state, 'CONTAINER_EXITED');
  t.not(exited.status?.finished_at, '0');

  await cri.removeContainer({ container_id });
  const gone = await expectCriError(cri.containerStatus({ container_id }));
  t.true(isNotFound(gone));
  t.is(gone.code, CriErrorCodes.CALL_FAILED);
  t.is(gone.object, `container=${container_id}`);

  await cri.stopPodSandbox({ pod_sandbox_id });
  const stopped = await cri.podSandboxStatus({ pod_sandbox_id });
  t.is(stopped.status?.state, 'SANDBOX_NOTREADY');
  await cri.removePodSandbox({ pod_sandbox_id });
  const { items } = await cri.listPodSandbox();
  t.false(items.some((p) => p.id === pod_sandbox_id));
});

test.serial('GetContainerEvents streams events, or reports Unimplemented (containerd 1.6)', async (t) => {
  const events: ContainerEvent[] = [];
  const failure = new Promise<CriError>((resolve) => {
    const cancel = cri.containerEvents(
      (e) => events.push(e),
      (err) => resolve(err),
    );
    t.teardown(cancel);
  });
  const config = sandboxConfig('events', 'uid-events-1');
  const { pod_sandbox_id } = await cri.runPodSandbox({ config });
  t.teardown(async () => {
    await cri.stopPodSandbox({ pod_sandbox_id });
    await cri.removePodSandbox({ pod_sandbox_id });
  });
  const outcome = await Promise.race([failure, waitFor('a container event', async () => (events.length ? events : undefined), 5000)]);
  if (Array.isArray(outcome)) {
    t.true(outcome.some((e) => e.container_id === pod_sandbox_id));
  } else {
    t.true(isUnimplemented(outcome), `unexpected stream error: ${outcome.message}`);
    t.is(outcome.grpcCodeName, 'UNIMPLEMENTED');
  }
});

test.serial('a deadline shorter than the call gives KEELSON_ERR_CRI_DEADLINE', async (t) => {
  const config = sandboxConfig('slow', 'uid-slow-1');
  const { pod_sandbox_id } = await cri.runPodSandbox({ config });
  t.teardown(async () => {
    await cri.stopPodSandbox({ pod_sandbox_id });
    await cri.removePodSandbox({ pod_sandbox_id });
  });
  const { container_id } = await cri.createContainer({
    pod_sandbox_id,
    sandbox_config: config,
    config: { metadata: { name: 'sleeper' }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '300'], log_path: 'sleeper/0.log' },
  });
  await cri.startContainer({ container_id });
  const started = Date.now();
  const err = await expectCriError(cri.execSync({ container_id, cmd: ['sleep', '3'], timeout: 10 }, { timeoutMs: 300 }));
  t.is(err.code, CriErrorCodes.DEADLINE);
  t.is(err.object, `container=${container_id}`);
  t.regex(err.message, /300 ms deadline/);
  t.true(Date.now() - started < 2500, 'the client gave up at its deadline');
  // The client stays usable.
  t.is((await cri.containerStatus({ container_id })).status?.state, 'CONTAINER_RUNNING');
});

test.serial('a missing socket gives KEELSON_ERR_CRI_UNAVAILABLE naming the socket', async (t) => {
  const socket = path.join(node!.dir, 'no-such.sock');
  const other = createCriClient({ endpoint: `unix://${socket}` });
  t.teardown(() => other.close());
  const started = Date.now();
  const err = await expectCriError(other.version());
  t.is(err.code, CriErrorCodes.UNAVAILABLE);
  t.is(err.object, `socket=${socket}`);
  t.true(err.message.includes(socket));
  t.true(Date.now() - started < 2000, 'fails fast');
});

test.serial('after containerd restarts the same client works again; while down calls fail fast', async (t) => {
  const config = sandboxConfig('survivor', 'uid-survivor-1');
  const { pod_sandbox_id } = await cri.runPodSandbox({ config });
  t.teardown(async () => {
    await cri.stopPodSandbox({ pod_sandbox_id }).catch(() => {});
    await cri.removePodSandbox({ pod_sandbox_id }).catch(() => {});
  });

  await node!.kill();
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    const err = await expectCriError(cri.version());
    t.is(err.code, CriErrorCodes.UNAVAILABLE);
    t.true(err.message.includes(node!.socket));
    t.true(Date.now() - started < 2000, `call ${i} while down fails fast`);
  }

  await node!.restart();
  const v = await cri.version();
  t.is(v.runtime_api_version, 'v1');
  const sandbox = await cri.podSandboxStatus({ pod_sandbox_id });
  t.is(sandbox.status?.state, 'SANDBOX_READY', 'the pod survived the runtime restart');

  // A restart between two calls: the channel's broken connection is replaced transparently.
  await node!.restart();
  t.is((await cri.version()).runtime_api_version, 'v1');
});
