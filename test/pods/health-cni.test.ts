/** The kubenet-style CNI bootstrap: written for a pod CIDR into an empty conf dir, never over an existing config. */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import pino from 'pino';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime } from '../../agent/pods/fake-runtime';
import { ensureCniConfig, KEELSON_CNI_FILE, renderBridgeConflist } from '../../agent/pods/cni-config';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-cni-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'net.d');
}

function uninitialized() {
  const runtime = createFakeRuntime(createFakeClock());
  runtime.runtimeStatus = {
    conditions: [
      { type: 'RuntimeReady', status: true, reason: '', message: '' },
      { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'Network plugin returns error: cni plugin not initialized' },
    ],
  };
  return runtime;
}

test('bridge + host-local + portmap over the pod CIDR; IPv6 and dual-stack routes', (t) => {
  const conf = JSON.parse(renderBridgeConflist({ podCIDR: '10.244.3.0/24' }));
  t.is(conf.cniVersion, '0.4.0');
  t.deepEqual(conf.plugins.map((p: { type: string }) => p.type), ['bridge', 'portmap']);
  t.like(conf.plugins[0], { bridge: 'cni0', isGateway: true, ipMasq: true, hairpinMode: true });
  t.deepEqual(conf.plugins[0].ipam, { type: 'host-local', ranges: [[{ subnet: '10.244.3.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] });
  t.deepEqual(conf.plugins[1].capabilities, { portMappings: true });
  const dual = JSON.parse(renderBridgeConflist({ podCIDR: '10.244.3.0/24,fd00:10:244:3::/64', bridge: 'kbr0', ipamDataDir: '/tmp/x' }));
  t.deepEqual(dual.plugins[0].ipam.routes, [{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
  t.is(dual.plugins[0].ipam.dataDir, '/tmp/x');
  t.throws(() => renderBridgeConflist({ podCIDR: '10.244.3.0/33' }), { message: /invalid pod CIDR/ });
});

test('an empty conf dir and an uninitialized runtime network get the config; a second run changes nothing', async (t) => {
  const confDir = await tempDir(t);
  const logger = pino({ level: 'silent' });
  t.is(await ensureCniConfig({ podCIDR: '10.244.3.0/24', runtime: uninitialized(), logger, confDir }), 'written');
  t.deepEqual(await readdir(confDir), [KEELSON_CNI_FILE]);
  const first = await readFile(path.join(confDir, KEELSON_CNI_FILE), 'utf8');
  t.is(first, renderBridgeConflist({ podCIDR: '10.244.3.0/24' }));
  t.is(await ensureCniConfig({ podCIDR: '10.99.0.0/24', runtime: uninitialized(), logger, confDir }), 'exists');
  t.is(await readFile(path.join(confDir, KEELSON_CNI_FILE), 'utf8'), first);
});

test('an existing CNI config is never overwritten or shadowed; no pod CIDR or a bad one writes nothing', async (t) => {
  const confDir = await tempDir(t);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  t.is(await ensureCniConfig({ podCIDR: undefined, runtime: uninitialized(), logger, confDir }), 'no-pod-cidr');
  t.regex(String(lines.at(-1)?.runtimeNetwork), /cni plugin not initialized/);
  t.is(await ensureCniConfig({ podCIDR: 'not-a-cidr', runtime: uninitialized(), logger, confDir }), 'invalid-pod-cidr');
  t.deepEqual(await readdir(confDir).catch(() => []), []);
  await mkdir(confDir, { recursive: true });
  await writeFile(path.join(confDir, '05-flannel.conflist'), '{"name":"cbr0"}');
  t.is(await ensureCniConfig({ podCIDR: '10.244.3.0/24', runtime: uninitialized(), logger, confDir }), 'exists');
  t.deepEqual(await readdir(confDir), ['05-flannel.conflist']);
});

test('without a configured folder, the one the runtime reports is used', async (t) => {
  const confDir = await tempDir(t);
  const runtime = uninitialized();
  runtime.runtimeStatus = { ...runtime.runtimeStatus, cniConfDir: confDir };
  t.is(await ensureCniConfig({ podCIDR: '10.244.7.0/24', runtime, logger: pino({ level: 'silent' }) }), 'written');
  t.deepEqual(await readdir(confDir), [KEELSON_CNI_FILE]);
});
