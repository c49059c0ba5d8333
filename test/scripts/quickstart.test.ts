/**
 * The README's first command, as a new user runs it: scripts/quickstart.sh leaves the demo static pod
 * Running, visible in `keelson status` and in `ctr -n k8s.io containers ls`, and a second run is a
 * no-op. It runs inside a network namespace this test creates, so the CNI bridge and its rules never
 * touch the host's own network; the system containerd it starts is stopped again afterwards.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { createCriClient } from '../../cri/client';
import { createNetns, deleteNetns, nsenterArgs } from '../harness/netns';
import { REPO_ROOT } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';

const execFileAsync = promisify(execFile);
const itest = integrationTest({ root: true, commands: ['nsenter', 'ip', 'apt-get', 'npm'] });

const SOCKET = '/run/containerd/containerd.sock';
const KEELSON_PID = '/var/lib/keelson/run/keelson.pid';
const CONTAINERD_PID = '/run/keelson-quickstart-containerd.pid';

async function quickstart(ns: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('nsenter', [...nsenterArgs(ns), 'bash', `${REPO_ROOT}/scripts/quickstart.sh`], {
      timeout: 600_000,
      maxBuffer: 16 << 20,
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

function killFromPidFile(file: string): void {
  if (!existsSync(file)) return;
  try {
    process.kill(Number(readFileSync(file, 'utf8').trim()), 'SIGTERM');
  } catch {
    // already gone
  }
  rmSync(file, { force: true });
}

async function removeAllPods(): Promise<void> {
  const cri = createCriClient({ endpoint: SOCKET, timeoutMs: 20_000 });
  try {
    const { items } = await cri.listPodSandbox({});
    for (const sandbox of items) {
      await cri.stopPodSandbox({ pod_sandbox_id: sandbox.id }).catch(() => undefined);
      await cri.removePodSandbox({ pod_sandbox_id: sandbox.id }).catch(() => undefined);
    }
  } catch {
    // containerd is not up: nothing to remove
  } finally {
    cri.close();
  }
}

async function unmountUnder(prefix: string): Promise<void> {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(prefix));
  for (const m of mounts.reverse()) await execFileAsync('umount', ['-l', m]).catch(() => undefined);
}

itest.serial('scripts/quickstart.sh leaves the demo pod Running, seen by keelson status and ctr', async (t) => {
  const ns = await createNetns();
  t.teardown(async () => {
    killFromPidFile(KEELSON_PID);
    rmSync('/etc/keelson/manifests/demo.yaml', { force: true });
    await removeAllPods();
    killFromPidFile(CONTAINERD_PID);
    await new Promise((r) => setTimeout(r, 1000));
    await unmountUnder('/run/containerd/');
    await deleteNetns(ns);
  });

  const first = await quickstart(ns);
  t.is(first.code, 0, first.output);
  t.regex(first.output, /keelson: installing|keelson: Debian packages already present/);
  t.regex(first.output, /default\/demo-\S+\s+Running\s+web\s+running\s+yes\s+0\s+10\.88\.\d+\.\d+/);
  t.regex(first.output, /Stop keelson \(the pod keeps running\): +kill \$\(cat \/var\/lib\/keelson\/run\/keelson.pid\)/);

  const ctr = await execFileAsync('ctr', ['-n', 'k8s.io', '--address', SOCKET, 'containers', 'ls']);
  t.regex(ctr.stdout, /docker\.io\/library\/busybox:keelson-test/);
  t.regex(ctr.stdout, /registry\.k8s\.io\/pause:keelson-test/);

  const status = await execFileAsync(`${REPO_ROOT}/scripts/keelson`, ['status']);
  t.regex(status.stdout, /mode standalone\s+daemon running/);
  t.regex(status.stdout, /default\/demo-\S+\s+Running/);

  const again = await quickstart(ns);
  t.is(again.code, 0, again.output);
  t.regex(again.output, /keelson: already running \(pid \d+\)/);
  t.regex(again.output, /keelson: (dist\/ is up to date|built dist\/)/);
});
