/**
 * Doctor checks against the real host parts, inside test network namespaces: the `keelson doctor`
 * CLI with a missing runtime socket, ports taken inside a netns, rules in both iptables variants
 * inside a netns, and IPVS asked for on this kernel.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../../agent/config';
import { createDoctorContext } from '../../agent/doctor/index';
import { iptablesCheck } from '../../agent/doctor/iptables';
import { ipvsCheck } from '../../agent/doctor/ipvs';
import { createCommandRunner } from '../../netproxy/exec';
import { CLI, NODE, runKeelson } from '../harness/keelson';
import { cleanupNetns, createNetns, execIn, netnsPath, nsenterArgs } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const itest = integrationTest({ root: true, commands: ['nsenter', 'ip', 'iptables-legacy', 'iptables-nft', 'iptables-legacy-save', 'iptables-nft-save'] });
const execFileAsync = promisify(execFile);

const tmp = mkdtempSync(join(tmpdir(), 'keelson-doctor-host-'));
const children: ChildProcess[] = [];
test.after.always(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cleanupNetns();
  rmSync(tmp, { recursive: true, force: true });
});

function configFile(name: string, yaml: string): string {
  const file = join(tmp, name);
  writeFileSync(file, yaml);
  return file;
}

/** Runs `keelson doctor ARGS` inside the namespace; never rejects on a non-zero exit. */
async function doctorIn(ns: string, args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await execFileAsync('nsenter', [...nsenterArgs(ns), NODE, CLI, 'doctor', ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '' };
  }
}

/** A node process inside the namespace listening on `port` at `host` (tcp, or udp), until killed. */
async function listenerIn(ns: string, protocol: 'tcp' | 'udp', host: string, port: number): Promise<ChildProcess> {
  const script = protocol === 'tcp'
    ? `require('net').createServer().listen(${port}, '${host}', () => console.log('up'))`
    : `const s = require('dgram').createSocket('udp4'); s.bind(${port}, '${host}', () => console.log('up'))`;
  const child = spawn('nsenter', [...nsenterArgs(ns), NODE, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
  });
  return child;
}

itest('keelson doctor with a missing runtime socket fails and says how to start the runtime', async (t) => {
  const r = await runKeelson(['doctor', '--root-dir', tmp, '--container-runtime-endpoint', `unix://${tmp}/nothing.sock`, '--check', 'runtime']);
  t.is(r.code, 1);
  t.regex(r.stdout, new RegExp(`FAIL  runtime .*no CRI socket at ${tmp}/nothing.sock`));
  t.regex(r.stdout, /fix: start the container runtime \(systemctl enable --now containerd\) or set containerRuntimeEndpoint/);
});

itest('ports taken inside a test netns are named with the process that holds them', async (t) => {
  const ns = await createNetns();
  await execIn(ns, 'ip', ['addr', 'add', '169.254.20.10/32', 'dev', 'lo']);
  const healthz = await listenerIn(ns, 'tcp', '127.0.0.1', 10248);
  const dns = await listenerIn(ns, 'udp', '0.0.0.0', 53);
  const root = join(tmp, 'ports-root');
  const r = await doctorIn(ns, ['--check', 'ports', '--root-dir', root, '--json']);
  t.is(r.code, 1);
  const results = (JSON.parse(r.stdout) as { results: { name: string; status: string; detail: string; fix?: string }[] }).results;
  const port = (name: string) => results.find((x) => x.name === name)!;
  t.is(port('port 10248/tcp').status, 'fail');
  t.regex(port('port 10248/tcp').detail, new RegExp(`127\\.0\\.0\\.1:10248/tcp for the kubelet healthz is taken: 127\\.0\\.0\\.1:10248/tcp held by pid ${healthz.pid} \\(node\\)`));
  t.regex(port('port 10248/tcp').fix!, /move keelson's kubelet healthz elsewhere \(healthzBindAddress\/healthzPort in \/etc\/keelson\/config\.yaml\)/);
  t.is(port('port 53/udp').status, 'fail');
  t.regex(port('port 53/udp').detail, /169\.254\.20\.10:53\/udp for the cluster DNS is taken: 0\.0\.0\.0:53\/udp/);
  t.is(port('port 53/tcp').status, 'ok');
  t.is(port('port 10250/tcp').status, 'ok');

  // The same sockets held by the running keelson are not conflicts.
  mkdirSync(join(root, 'run'), { recursive: true });
  const now = new Date().toISOString();
  writeFileSync(join(root, 'run', 'status.json'), JSON.stringify({ pid: dns.pid, version: 't', nodeName: 'n', mode: 'standalone', startedAt: now, updatedAt: now, components: [], pods: [], problems: [] }));
  const again = JSON.parse((await doctorIn(ns, ['--check', 'ports', '--root-dir', root, '--json'])).stdout) as { results: { name: string; status: string; detail: string }[] };
  const udp = again.results.find((x) => x.name === 'port 53/udp')!;
  t.is(udp.status, 'ok');
  t.regex(udp.detail, new RegExp(`held by the running keelson \\(pid ${dns.pid}\\)`));
});

itest('rules in both iptables variants inside a test netns are a mismatch', async (t) => {
  const ns = await createNetns();
  const exec = createCommandRunner(['nsenter', `--net=${netnsPath(ns)}`, '--']);
  const config = loadConfig({ config: configFile('ipt.yaml', 'proxy:\n  mode: iptables\n'), rootDir: tmp }, () => false).config;
  const clean = await iptablesCheck.run(createDoctorContext(config, { exec }));
  t.is((clean as { status: string }).status, 'ok');
  await execIn(ns, 'iptables-legacy', ['-A', 'INPUT', '-s', '192.0.2.1', '-j', 'DROP']);
  await execIn(ns, 'iptables-nft', ['-A', 'INPUT', '-s', '192.0.2.2', '-j', 'DROP']);
  await execIn(ns, 'iptables-nft', ['-A', 'INPUT', '-s', '192.0.2.3', '-j', 'DROP']);
  const r = (await iptablesCheck.run(createDoctorContext(config, { exec }))) as { status: string; detail: string; fix?: string };
  t.is(r.status, 'fail');
  t.regex(r.detail, /rules in both iptables variants \(legacy: 1 rules, nft: 2 rules\); keelson would use iptables-nft/);
  t.regex(r.fix!, /update-alternatives --set iptables \/usr\/sbin\/iptables-nft/);
  t.regex(r.fix!, /iptables-legacy -F/);
  // In nftables mode the proxy is not affected: a warning.
  const nftConfig = loadConfig({ config: configFile('nft.yaml', 'proxy:\n  mode: nftables\n'), rootDir: tmp }, () => false).config;
  t.is(((await iptablesCheck.run(createDoctorContext(nftConfig, { exec }))) as { status: string }).status, 'warn');
});

itest('ipvs mode asked for on this kernel: the check matches /proc/net/ip_vs, with a fallback mode in the fix', async (t) => {
  const ns = await createNetns();
  const exec = createCommandRunner(['nsenter', `--net=${netnsPath(ns)}`, '--']);
  const config = loadConfig({ config: configFile('ipvs.yaml', 'proxy:\n  mode: ipvs\n'), rootDir: tmp }, () => false).config;
  const r = (await ipvsCheck.run(createDoctorContext(config, { exec }))) as { status: string; detail: string; fix?: string };
  const available = (await exec(['cat', '/proc/net/ip_vs'])).code === 0;
  t.log(`IPVS on this kernel: ${available ? 'available' : 'not available'}`);
  if (available) {
    t.is(r.status, 'ok');
  } else {
    t.is(r.status, 'fail');
    t.regex(r.detail, /proxy\.mode is ipvs but \/proc\/net\/ip_vs is missing/);
    t.regex(r.fix!, /modprobe ip_vs .* or set proxy\.mode: (nftables|iptables) in \/etc\/keelson\/config\.yaml \(supported on this kernel\)/);
  }
});
