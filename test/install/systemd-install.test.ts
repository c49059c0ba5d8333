/**
 * The installer and the .deb in a container whose PID 1 is a real systemd (Debian 12, see
 * test/harness/systemd-container.ts): unpack the amd64 release tarball and run its install.sh as a
 * new user would, start keelson (standalone: no control plane), read ActiveState and StatusText,
 * re-run install.sh (an in-place upgrade), uninstall.sh with and without --purge, then dpkg -i,
 * dpkg -r and dpkg -P of the .deb.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KEELSON_NODE_FLAGS, REPO_ROOT } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';
import { startSystemdContainer, type SystemdContainer } from '../harness/systemd-container';

const execFileAsync = promisify(execFile);
const itest = integrationTest({ root: true, commands: ['dpkg-deb', 'npm', 'debootstrap', 'containerd', 'ctr', 'runc', 'flock'] });
const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TARBALL = `keelson-${VERSION}-linux-amd64.tar.gz`;
const DEB = `keelson_${VERSION}_amd64.deb`;
/** What install.sh installs from Debian; baked into the cached rootfs (the container has no network). */
const PREREQS = ['containerd', 'runc', 'containernetworking-plugins', 'iptables', 'nftables', 'conntrack'];

const out = mkdtempSync(path.join(tmpdir(), 'keelson-e2e-release-'));
let box: SystemdContainer | undefined;

test.afterEach.always((t) => {
  if (!t.passed) box?.markFailed();
});
test.after.always(async () => {
  await box?.stop();
  rmSync(out, { recursive: true, force: true });
});

async function show(b: SystemdContainer, ...props: string[]): Promise<Record<string, string>> {
  const text = await b.run(`systemctl show ${props.map((p) => `-p ${p}`).join(' ')} keelson`);
  return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let ready: Promise<SystemdContainer> | undefined;
function setup(): Promise<SystemdContainer> {
  ready ??= (async () => {
    let started = Date.now();
    await execFileAsync('bash', [path.join(REPO_ROOT, 'scripts', 'package.sh'), '--arch', 'amd64', '--out', out], { timeout: 240_000, maxBuffer: 16 << 20 });
    console.log(`package.sh --arch amd64: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    started = Date.now();
    box = await startSystemdContainer({ packages: PREREQS });
    await box.waitForSystemd();
    console.log(`systemd container up: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    box.copyIn(path.join(out, TARBALL), `/root/${TARBALL}`);
    box.copyIn(path.join(out, DEB), `/root/${DEB}`);
    return box;
  })();
  return ready;
}

itest.serial('install.sh from the release tarball installs keelson, and systemctl start reports it active with a status', async (t) => {
  const b = await setup();
  const install = await b.exec(`cd /root && tar xzf ${TARBALL} && ./keelson-${VERSION}-linux-amd64/install.sh`, { timeoutMs: 120_000 });
  t.log(`--- install transcript ---\n${install.stdout}${install.stderr}`);
  t.is(install.code, 0, install.stderr);
  t.regex(install.stdout, /prerequisites: all present/);
  t.regex(install.stdout, new RegExp(`keelson ${VERSION.replace(/\./g, '\\.')} from the unpacked release`));
  t.regex(install.stdout, /^\+ systemctl daemon-reload$/m);
  t.regex(install.stdout, /^\+ systemctl enable keelson\.service$/m);
  t.notRegex(install.stdout, /^\+ systemctl (re|try-re)?start/m, 'not joined: installed and enabled, not started');
  t.regex(install.stdout, /Next steps:/);
  t.regex(await b.run('keelson version'), new RegExp(`^keelson ${VERSION.replace(/\./g, '\\.')} \\(node v24\\.\\d+\\.\\d+, linux/x64\\)$`, 'm'));
  t.regex(await b.run('cat /etc/keelson/config.yaml'), /kind: KubeletConfiguration/);
  t.is((await b.run('systemctl is-enabled keelson')).trim(), 'enabled');

  // Standalone (no kubeconfig): kubelet only, so the test needs no control plane.
  b.writeFile('/etc/default/keelson', 'KEELSON_ARGS="--components kubelet --hostname-override edge-e2e"\n');
  await b.run('systemctl start keelson', { timeoutMs: 130_000 });
  const state = await until('keelson active with a StatusText', 60_000, async () => {
    const s = await show(b, 'ActiveState', 'SubState', 'StatusText', 'MainPID');
    return s.ActiveState === 'active' && s.StatusText ? s : undefined;
  });
  t.log(`systemctl show: ${JSON.stringify(state)}`);
  t.is(state.SubState, 'running');
  t.not(state.MainPID, '0');
  const flags = KEELSON_NODE_FLAGS.join(' ');
  t.true(
    (await b.run(`cat /proc/${state.MainPID}/cmdline | tr '\\0' ' '`)).startsWith(`/usr/lib/keelson/node/bin/node ${flags} /usr/lib/keelson/dist/agent/cli.js run --components kubelet --hostname-override edge-e2e`),
    'the main process is the bundled node with scripts/node-flags running keelson',
  );
  t.true((await b.run(`tr '\\0' '\\n' < /proc/${state.MainPID}/environ`)).split('\n').includes('MALLOC_ARENA_MAX=2'), 'the wrapper limits malloc arenas');
  const journal = await b.journal('keelson', 'info');
  t.regex(journal, /keelson starting/);
  const status = await b.exec('keelson status');
  t.log(`--- keelson status ---\n${status.stdout}${status.stderr}`);
  t.regex(status.stdout, /node edge-e2e/);
  const doctor = await b.exec('keelson doctor', { timeoutMs: 60_000 });
  t.log(`--- keelson doctor ---\n${doctor.stdout}`);
  t.regex(doctor.stdout, /^ok    runtime\s+containerd \S+ \(CRI v1\) at \/run\/containerd\/containerd\.sock$/m);
  t.regex(doctor.stdout, /^ok    cgroup delegation\s+keelson\.service has Delegate=yes$/m);
  t.regex(doctor.stdout, /^ok    port 10248\/tcp\s+127\.0\.0\.1:10248\/tcp held by the running keelson \(pid \d+\)$/m);
  t.regex(doctor.stdout, /(failed|checks ok)/);
});

itest.serial('re-running install.sh upgrades in place: config kept, running keelson restarted', async (t) => {
  const b = await setup();
  const before = await show(b, 'MainPID', 'ActiveState');
  t.is(before.ActiveState, 'active');
  b.writeFile('/etc/keelson/config.yaml', '# edited by the operator\nkind: KubeletConfiguration\nstaticPodPath: /etc/keelson/manifests\n');
  const again = await b.exec(`/root/keelson-${VERSION}-linux-amd64/install.sh`, { timeoutMs: 120_000 });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, new RegExp(`\\(replacing ${VERSION.replace(/\./g, '\\.')}\\)`));
  t.regex(again.stdout, /\/etc\/keelson\/config\.yaml exists: kept/);
  t.regex(again.stdout, /^\+ systemctl try-restart keelson\.service$/m);
  t.regex(await b.run('head -1 /etc/keelson/config.yaml'), /# edited by the operator/);
  const after = await until('keelson active again', 60_000, async () => {
    const s = await show(b, 'MainPID', 'ActiveState');
    return s.ActiveState === 'active' && s.MainPID !== before.MainPID && s.MainPID !== '0' ? s : undefined;
  });
  t.not(after.MainPID, before.MainPID);
});

itest.serial('uninstall.sh removes keelson and its unit, keeps config until --purge', async (t) => {
  const b = await setup();
  const r = await b.exec(`/root/keelson-${VERSION}-linux-amd64/uninstall.sh`, { timeoutMs: 120_000 });
  t.is(r.code, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /^\+ systemctl disable --now keelson\.service$/m);
  t.regex(r.stdout, /^\+ \/usr\/bin\/keelson cleanup --mode all$/m);
  t.is((await b.exec('systemctl is-active keelson')).stdout.trim(), 'inactive');
  t.not((await b.exec('test -e /usr/lib/keelson || test -e /usr/bin/keelson || test -e /lib/systemd/system/keelson.service')).code, 0);
  t.is((await b.exec('test -f /etc/keelson/config.yaml')).code, 0);
  const purge = await b.exec(`/root/keelson-${VERSION}-linux-amd64/uninstall.sh --purge`, { timeoutMs: 60_000 });
  t.is(purge.code, 0, purge.stderr);
  t.not((await b.exec('test -e /etc/keelson || test -e /var/lib/keelson || test -e /etc/default/keelson')).code, 0);
});

itest.serial('the .deb installs with dpkg -i (enabled, not started: not joined) and removes with dpkg -r and dpkg -P', async (t) => {
  const b = await setup();
  const install = await b.exec(`dpkg -i /root/${DEB}`, { timeoutMs: 120_000 });
  t.is(install.code, 0, install.stderr + install.stdout);
  t.regex(await b.run('dpkg -s keelson'), /^Status: install ok installed$/m);
  t.regex(await b.run('keelson version'), new RegExp(`^keelson ${VERSION.replace(/\./g, '\\.')} `, 'm'));
  t.is((await b.run('systemctl is-enabled keelson')).trim(), 'enabled');
  t.is((await b.exec('systemctl is-active keelson')).stdout.trim(), 'inactive');
  t.regex(await b.run('cat /etc/default/keelson'), /KEELSON_ARGS=""/);

  const remove = await b.exec('dpkg -r keelson', { timeoutMs: 60_000 });
  t.is(remove.code, 0, remove.stderr);
  t.not((await b.exec('test -e /usr/bin/keelson || test -e /usr/lib/keelson/node/bin/node || test -e /lib/systemd/system/keelson.service')).code, 0);
  t.is((await b.exec('test -f /etc/keelson/config.yaml')).code, 0, 'conffiles stay after remove');
  t.regex(await b.run('dpkg -s keelson 2>&1 || true'), /Status: deinstall ok config-files/);
  const purge = await b.exec('dpkg -P keelson', { timeoutMs: 60_000 });
  t.is(purge.code, 0, purge.stderr);
  t.not((await b.exec('test -e /etc/keelson/config.yaml || test -e /etc/default/keelson')).code, 0);
});
