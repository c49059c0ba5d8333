/**
 * Each doctor check provoked through its context: real files in a temp folder (resolv.conf loops,
 * a fake cgroup root, CNI folders), real certificates from the test PKI, a real local HTTPS
 * apiserver stand-in with a skewed Date header, and an injected statfs for a nearly full disk.
 */
import test from 'ava';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type KeelsonConfig } from '../../agent/config';
import { apiserverCheck, clockCheck } from '../../agent/doctor/apiserver';
import { certificatesCheck } from '../../agent/doctor/certificates';
import { cgroupsCheck } from '../../agent/doctor/cgroups';
import type { CheckResult, DoctorContext, RuntimeProbe } from '../../agent/doctor/check';
import { cniCheck } from '../../agent/doctor/cni';
import { diskCheck } from '../../agent/doctor/disk';
import { createDoctorContext, renderResults, runChecks } from '../../agent/doctor/index';
import { resolvConfCheck } from '../../agent/doctor/resolv-conf';
import { createTestPki, type TestPki } from '../harness/pki';

const tmp = mkdtempSync(join(tmpdir(), 'keelson-doctor-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function dir(): string {
  const d = join(tmp, String(++n));
  mkdirSync(d, { recursive: true });
  return d;
}

function configFrom(yaml: string, extra: { kubeconfig?: string; rootDir?: string } = {}): KeelsonConfig {
  const file = join(dir(), 'config.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ config: file, kubeconfig: extra.kubeconfig, rootDir: extra.rootDir ?? join(tmp, 'root') }, () => false).config;
}

function byName(results: CheckResult | CheckResult[], name: string): CheckResult {
  const list = Array.isArray(results) ? results : [results];
  const r = list.find((x) => x.name === name);
  if (!r) throw new Error(`no result named ${name} in ${list.map((x) => x.name).join(', ')}`);
  return r;
}

const noRuntime: RuntimeProbe = { endpoint: 'unix:///nonexistent.sock', socket: '/nonexistent.sock', error: new Error('down') };

// ---------- resolv.conf loops ----------

test('resolv.conf naming the node-local DNS address is a forwarding loop', async (t) => {
  const d = dir();
  writeFileSync(join(d, 'resolv.conf'), 'search example.org\nnameserver 169.254.20.10\nnameserver 10.0.0.1\n');
  const ctx = createDoctorContext(configFrom(`dns:\n  resolvConf: ${join(d, 'resolv.conf')}\n`));
  const r = byName(await resolvConfCheck.run(ctx), 'dns forwarding');
  t.is(r.status, 'fail');
  t.regex(r.detail, /169\.254\.20\.10, keelson's own DNS address: forwarded queries come back to keelson \(a loop\)/);
  t.regex(r.fix!, /set dns\.upstreams in \/etc\/keelson\/config\.yaml/);
  t.regex(r.fix!, new RegExp(`remove keelson's addresses \\(169\\.254\\.20\\.10\\) from ${join(d, 'resolv.conf')}`));
});

test('systemd-resolved stub that forwards back to keelson is a loop through resolved', async (t) => {
  const d = dir();
  writeFileSync(join(d, 'resolv.conf'), 'nameserver 127.0.0.53\noptions edns0 trust-ad\n');
  writeFileSync(join(d, 'resolved.conf'), 'nameserver 169.254.20.10\n');
  const config = configFrom(`dns:\n  resolvConf: ${join(d, 'resolv.conf')}\n`);
  const ctx = createDoctorContext(config, { paths: { systemdResolvConf: join(d, 'resolved.conf') } });
  const r = byName(await resolvConfCheck.run(ctx), 'dns forwarding');
  t.is(r.status, 'fail');
  t.regex(r.detail, /a loop through systemd-resolved/);
  t.regex(r.fix!, /remove 169\.254\.20\.10 from DNS= in \/etc\/systemd\/resolved\.conf .* systemctl restart systemd-resolved/);

  // the same stub with real upstreams behind it is fine
  writeFileSync(join(d, 'resolved.conf'), 'nameserver 192.0.2.53\n');
  const fine = byName(await resolvConfCheck.run(createDoctorContext(config, { paths: { systemdResolvConf: join(d, 'resolved.conf') } })), 'dns forwarding');
  t.is(fine.status, 'ok');
  t.regex(fine.detail, /forwarding to 192\.0\.2\.53 \(behind systemd-resolved's stub\)/);
});

test('the stub alone, with nothing behind it, is a warning; an explicit upstream equal to the listen address fails', async (t) => {
  const d = dir();
  writeFileSync(join(d, 'resolv.conf'), 'nameserver 127.0.0.53\n');
  const stub = byName(await resolvConfCheck.run(createDoctorContext(configFrom(`dns:\n  resolvConf: ${join(d, 'resolv.conf')}\n`), { paths: { systemdResolvConf: join(d, 'missing') } })), 'dns forwarding');
  t.is(stub.status, 'warn');
  t.regex(stub.fix!, /set dns\.resolvConf: \/run\/systemd\/resolve\/resolv\.conf/);
  const explicit = byName(await resolvConfCheck.run(createDoctorContext(configFrom('dns:\n  listen: ["127.0.0.1"]\n  upstreams: ["127.0.0.1:53"]\n'))), 'dns forwarding');
  t.is(explicit.status, 'fail');
  t.regex(explicit.fix!, /set dns\.upstreams to resolvers outside this node/);
});

test('kubelet resolvConf with a loopback nameserver warns that pods cannot reach it', async (t) => {
  const d = dir();
  writeFileSync(join(d, 'resolv.conf'), 'nameserver 127.0.0.53\n');
  writeFileSync(join(d, 'resolved.conf'), 'nameserver 192.0.2.53\n');
  const ctx = createDoctorContext(configFrom(`resolvConf: ${join(d, 'resolv.conf')}\n`), { paths: { systemdResolvConf: join(d, 'resolved.conf') } });
  const r = byName(await resolvConfCheck.run(ctx), 'pod resolv.conf');
  t.is(r.status, 'warn');
  t.regex(r.fix!, /set resolvConf: \/run\/systemd\/resolve\/resolv\.conf in \/etc\/keelson\/config\.yaml/);
});

// ---------- certificates and clock skew (a local HTTPS apiserver stand-in) ----------

let pki: TestPki;
test.before(async () => {
  pki = await createTestPki({ dir: join(tmp, 'pki') });
});

function writeKubeconfig(server: string, cert: { certPath: string; keyPath: string }): string {
  const file = join(dir(), 'kubelet.conf');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: c\n  cluster:\n    server: ${server}\n    certificate-authority: ${pki.caCertPath}`,
      `users:\n- name: u\n  user:\n    client-certificate: ${cert.certPath}\n    client-key: ${cert.keyPath}`,
      'contexts:\n- name: x\n  context:\n    cluster: c\n    user: u',
      'current-context: x',
      '',
    ].join('\n'),
  );
  return file;
}

test('an expired client certificate fails with the re-join fix', async (t) => {
  const cert = await pki.issueClientCert('system:node:edge-1', ['system:nodes'], { seconds: 1 });
  await new Promise((r) => setTimeout(r, 2100));
  const ctx = createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig('https://127.0.0.1:1', cert) }));
  const r = byName(await certificatesCheck.run(ctx), 'client certificate');
  t.is(r.status, 'fail');
  t.regex(r.detail, new RegExp(`client certificate ${cert.certPath} \\(.*CN=system:node:edge-1\\) expired`));
  t.regex(r.fix!, /keelson can no longer rotate it: join again: .*kubeadm token create --print-join-command.*keelson join --server URL --token TOKEN/);
  t.is(byName(await certificatesCheck.run(ctx), 'cluster CA').status, 'ok');
});

test('a certificate expiring within a week warns, a valid one is ok', async (t) => {
  const soon = await pki.issueClientCert('system:node:edge-2', ['system:nodes'], { days: 3 });
  const r = byName(await certificatesCheck.run(createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig('https://127.0.0.1:1', soon) }))), 'client certificate');
  t.is(r.status, 'warn');
  t.regex(r.detail, /expires in 2 days|expires in 3 days|expires in \d+ hours/);
  const later = await pki.issueClientCert('system:node:edge-3', ['system:nodes'], { days: 365 });
  t.is(byName(await certificatesCheck.run(createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig('https://127.0.0.1:1', later) }))), 'client certificate').status, 'ok');
});

async function fakeApiserver(skewMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
    res.setHeader('Date', new Date(Date.now() + skewMs).toUTCString());
    res.writeHead(req.url === '/version' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ major: '1', minor: '33', gitVersion: 'v1.33.0-test' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('a clock ten minutes behind the apiserver fails with the time-sync fix', async (t) => {
  const api = await fakeApiserver(10 * 60_000);
  t.teardown(api.close);
  const cert = await pki.issueClientCert('system:node:edge-4', ['system:nodes'], { days: 30 });
  const ctx = createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig(api.url, cert) }));
  const reach = byName(await apiserverCheck.run(ctx), 'apiserver');
  t.is(reach.status, 'ok');
  t.regex(reach.detail, /reachable, Kubernetes v1\.33\.0-test/);
  const r = byName(await clockCheck.run(ctx), 'clock skew');
  t.is(r.status, 'fail');
  t.regex(r.detail, /this host's clock is (599|600)\.\d s behind the apiserver's/);
  t.regex(r.fix!, /timedatectl set-ntp true/);
});

test('a small skew warns, none is ok, an unreachable apiserver fails the reachability check', async (t) => {
  const cert = await pki.issueClientCert('system:node:edge-5', ['system:nodes'], { days: 30 });
  const ahead = await fakeApiserver(-20_000);
  t.teardown(ahead.close);
  const w = byName(await clockCheck.run(createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig(ahead.url, cert) }))), 'clock skew');
  t.is(w.status, 'warn');
  t.regex(w.detail, /(19|20)\.\d s ahead of the apiserver's/);
  const same = await fakeApiserver(0);
  t.teardown(same.close);
  t.is(byName(await clockCheck.run(createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig(same.url, cert) }))), 'clock skew').status, 'ok');
  const gone = createDoctorContext(configFrom('{}\n', { kubeconfig: writeKubeconfig('https://127.0.0.1:1', cert) }));
  const down = byName(await apiserverCheck.run(gone), 'apiserver');
  t.is(down.status, 'fail');
  t.regex(down.detail, /ECONNREFUSED/);
  t.regex(down.fix!, /check the network path to the control plane/);
  t.is(byName(await clockCheck.run(gone), 'clock skew').status, 'warn');
});

// ---------- disk (injected statfs) ----------

test('low disk and few inodes on rootDir fail against evictionHard; near the threshold warns', async (t) => {
  const root = join(dir(), 'keelson');
  const config = configFrom('evictionHard:\n  nodefs.available: "10%"\n  nodefs.inodesFree: "5%"\n  imagefs.available: "2Gi"\n', { rootDir: root });
  const statfs = (p: string) => {
    if (p.startsWith(root)) return { bsize: 4096, blocks: 1_000_000, bavail: 50_000, files: 100_000, ffree: 1_000 }; // 5% free, 1% inodes
    if (p === '/var/lib/containerd') return { bsize: 4096, blocks: 1_000_000, bavail: 786_432, files: 100_000, ffree: 90_000 }; // 3 GiB free: < 2 × 2Gi
    throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  };
  const ctx = createDoctorContext(config, { statfs, runtime: async () => noRuntime });
  const results = await diskCheck.run(ctx);
  const space = byName(results, `disk ${root}`);
  t.is(space.status, 'fail');
  t.regex(space.detail, /195\.3 MiB free of 3\.8 GiB \(5\.0%\), nodefs\.available threshold 10%: pods are evicted/);
  t.regex(space.fix!, /journalctl --vacuum-size/);
  const inodes = byName(results, `inodes ${root}`);
  t.is(inodes.status, 'fail');
  t.regex(inodes.fix!, /crictl rmi --prune/);
  const image = byName(results, 'disk /var/lib/containerd');
  t.is(image.status, 'warn');
  t.regex(image.detail, /imagefs\.available threshold 2Gi: close to eviction/);
});

// ---------- cgroups (a fake cgroup root) ----------

test('cgroup v2 without the memory controller fails with the kernel command line fix', async (t) => {
  const root = dir();
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io pids\n');
  const ctx = createDoctorContext(configFrom('{}\n'), { paths: { cgroupRoot: root }, exec: async () => ({ code: 1, stdout: '', stderr: 'no bus' }) });
  const results = await cgroupsCheck.run(ctx);
  const r = byName(results, 'cgroups');
  t.is(r.status, 'fail');
  t.regex(r.detail, /cgroup v2 without the memory controller/);
  t.regex(r.fix!, /cgroup_enable=memory cgroup_memory=1/);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma\n');
  t.is(byName(await cgroupsCheck.run(ctx), 'cgroups').status, 'ok');
});

test('a keelson unit without Delegate=yes warns (systemctl answer injected)', async (t) => {
  const root = dir();
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  const exec = async (argv: string[]) => ({ code: 0, stdout: argv.includes('keelson.service') ? 'Delegate=no\nLoadState=loaded\n' : '', stderr: '' });
  const r = byName(await cgroupsCheck.run(createDoctorContext(configFrom('{}\n'), { paths: { cgroupRoot: root }, exec })), 'cgroup delegation');
  t.is(r.status, 'warn');
  t.regex(r.fix!, /add Delegate=yes under \[Service\]/);
});

// ---------- CNI config ----------

test('an empty CNI folder, and a config naming a missing plugin, are reported with the fix', async (t) => {
  const conf = dir();
  const bin = dir();
  const probe: RuntimeProbe = { endpoint: 'unix:///x.sock', socket: '/x.sock', version: { runtimeName: 'containerd', runtimeVersion: 'v1.6', apiVersion: 'v1' }, conditions: [], runtimeConfig: { cni: { confDir: conf, binDir: bin } } };
  const base = configFrom('{}\n');
  const standalone: DoctorContext = createDoctorContext(base, { runtime: async () => probe });
  const empty = await cniCheck.run(standalone);
  t.is(byName(empty, 'cni').status, 'warn'); // standalone: hostNetwork static pods still run
  t.regex(byName(empty, 'cni').detail, new RegExp(`no CNI config in ${conf}`));
  const joined = createDoctorContext({ ...base, kubeconfig: '/x' }, { runtime: async () => probe, kubeconfig: () => ({ server: 'https://x', insecureSkipTLSVerify: false, credentials: {} }) });
  t.is(byName(await cniCheck.run(joined), 'cni').status, 'fail');
  writeFileSync(join(conf, '10-net.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }, { type: 'portmap' }] }));
  writeFileSync(join(bin, 'bridge'), '');
  const missing = byName(await cniCheck.run(joined), 'cni');
  t.is(missing.status, 'fail');
  t.regex(missing.detail, /uses plugins portmap that are not in/);
  t.regex(missing.fix!, /apt-get install containernetworking-plugins/);
  writeFileSync(join(bin, 'portmap'), '');
  t.is(byName(await cniCheck.run(joined), 'cni').status, 'ok');
});

test('a check that throws is reported as failed and the others still run', async (t) => {
  const ctx = createDoctorContext(configFrom('{}\n'), { runtime: async () => noRuntime });
  const results = await runChecks(ctx, [{ name: 'boom', run: async () => { throw new Error('kaput'); } }, resolvConfCheck]);
  t.is(results[0]!.status, 'fail');
  t.regex(results[0]!.detail, /the check itself failed: kaput/);
  t.true(results.length > 1);
  t.regex(renderResults(results), /1 failed/);
});

test('/proc/net addresses decode (IPv4, IPv6, v4-mapped) and overlap rules for port conflicts', async (t) => {
  const { decodeProcAddress, parseProcNet } = await import('../../agent/doctor/sockets.js');
  const { addressesOverlap } = await import('../../agent/doctor/ports.js');
  t.is(decodeProcAddress('0100007F'), '127.0.0.1');
  t.is(decodeProcAddress('00000000000000000000000001000000'), '::1');
  t.is(decodeProcAddress('0000000000000000FFFF00000A14FEA9'), '::ffff:169.254.20.10');
  t.is(decodeProcAddress('00000000000000000000000000000000'), '::');
  const table = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:2AF8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   1: 0100007F:2AF9 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0 100 0 0 10 0\n';
  t.deepEqual(parseProcNet(table, 'tcp'), [{ protocol: 'tcp', address: '127.0.0.1', port: 11000, inode: 4242 }]);
  t.true(addressesOverlap('0.0.0.0', '169.254.20.10'));
  t.true(addressesOverlap('::', '169.254.20.10'));
  t.true(addressesOverlap('::ffff:169.254.20.10', '169.254.20.10'));
  t.false(addressesOverlap('127.0.0.53', '169.254.20.10'));
  t.false(addressesOverlap('::1', '0.0.0.0'));
});
