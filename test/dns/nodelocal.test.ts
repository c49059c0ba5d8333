/**
 * Production defaults end to end, inside a test network namespace: the component creates
 * 169.254.20.10 on lo, serves DNS on :53 (UDP and TCP) and /health, /ready on :8080, :8181.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { integrationTest } from '../harness/requirements';
import { run } from './helpers';

const itest = integrationTest({ root: true, commands: ['ip', 'nsenter', 'dig', 'curl'] });
const NS = `keelson-dnsl-${process.pid}`;
const nsenter = ['nsenter', `--net=/var/run/netns/${NS}`];
let child: ChildProcess | undefined;

itest.before(async (t) => {
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync(nsenter[0]!, [...nsenter.slice(1), 'ip', 'link', 'set', 'lo', 'up']);
  child = spawn(nsenter[0]!, [...nsenter.slice(1), process.execPath, path.join(__dirname, 'netns-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('dns server in netns did not start')), 15000);
    child!.stdout!.once('data', (d: Buffer) => { clearTimeout(timer); resolve(String(d)); });
  });
  t.log(line.trim());
  if (!line.includes('"ready":true')) throw new Error(line);
});
itest.after.always(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => { child!.once('exit', r); setTimeout(r, 3000); });
  }
  try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* already gone */ }
});

itest.serial('169.254.20.10 is created on lo and answers over UDP and TCP on port 53', async (t) => {
  const addrs = await run(nsenter[0]!, [...nsenter.slice(1), 'ip', '-o', '-4', 'addr', 'show', 'dev', 'lo']);
  t.regex(addrs, / 169\.254\.20\.10\/32 /);
  for (const proto of ['+notcp', '+tcp']) {
    const out = await run(nsenter[0]!, [...nsenter.slice(1), 'dig', '@169.254.20.10', '+short', '+tries=1', '+time=2', proto, 'web.default.svc.cluster.local', 'A']);
    t.is(out.trim(), '10.96.0.10', proto);
  }
  // not on all interfaces: 127.0.0.1:53 in the namespace has nobody listening
  await t.throwsAsync(run(nsenter[0]!, [...nsenter.slice(1), 'dig', '@127.0.0.1', '+tries=1', '+time=1', 'web.default.svc.cluster.local']));
});

itest.serial('/health on :8080 and /ready on :8181 of the node-local address', async (t) => {
  const health = await run(nsenter[0]!, [...nsenter.slice(1), 'curl', '-s', 'http://169.254.20.10:8080/health']);
  t.is(health, 'OK');
  const ready = await run(nsenter[0]!, [...nsenter.slice(1), 'curl', '-s', 'http://169.254.20.10:8181/ready']);
  t.is(ready, 'OK');
  const metrics = await run(nsenter[0]!, [...nsenter.slice(1), 'curl', '-s', 'http://169.254.20.10:9153/metrics']);
  t.regex(metrics, /coredns_dns_requests_total\{[^}]*type="A"\} [1-9]/);
});
