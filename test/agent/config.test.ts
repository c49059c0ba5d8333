import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfigObject, parseConfigText, parseComponents } from '../../agent/config';
import { parseDuration } from '../../agent/duration';
import { componentConfigs } from '../../agent/run';

const noFiles = () => false;

function writeConfig(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-config-'));
  const path = join(dir, 'config.yaml');
  writeFileSync(path, text);
  return path;
}

test('defaults follow upstream kubelet', (t) => {
  const { config } = loadConfig({ rootDir: '/tmp/x' }, noFiles);
  t.is(config.kubelet.maxPods, 110);
  t.is(config.kubelet.clusterDomain, 'cluster.local');
  t.is(config.kubelet.containerRuntimeEndpoint, 'unix:///run/containerd/containerd.sock');
  t.is(config.kubelet.podLogsDir, '/var/log/pods');
  t.is(config.kubelet.staticPodPath, '/etc/keelson/manifests');
  t.is(config.kubelet.nodeStatusUpdateFrequencyMs, 10_000);
  t.is(config.kubelet.nodeStatusReportFrequencyMs, 300_000);
  t.is(config.kubelet.imageGCHighThresholdPercent, 85);
  t.is(config.kubelet.imageGCLowThresholdPercent, 80);
  t.deepEqual(config.kubelet.evictionHard, { 'memory.available': '100Mi', 'nodefs.available': '10%', 'nodefs.inodesFree': '5%', 'imagefs.available': '15%' });
  t.deepEqual(config.components, ['kubelet', 'proxy', 'dns']);
  t.is(config.kubeconfig, undefined);
});

test('a KubeletConfiguration file is read with upstream field names and flags win', (t) => {
  const path = writeConfig(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /srv/manifests
maxPods: 50
clusterDNS: [10.96.0.10]
clusterDomain: Edge.Local
nodeStatusUpdateFrequency: 20s
proxy:
  mode: iptables
dns:
  ttl: 30
`);
  const { config } = loadConfig({ config: path, staticPodPath: '/flag/manifests', components: 'kubelet,dns', hostnameOverride: 'Edge-1' }, noFiles);
  t.is(config.kubelet.staticPodPath, '/flag/manifests');
  t.is(config.kubelet.maxPods, 50);
  t.deepEqual(config.kubelet.clusterDNS, ['10.96.0.10']);
  t.is(config.kubelet.clusterDomain, 'edge.local');
  t.is(config.kubelet.nodeStatusUpdateFrequencyMs, 20_000);
  t.deepEqual(config.proxyRaw, { mode: 'iptables' });
  t.deepEqual(config.dnsRaw, { ttl: 30 });
  t.deepEqual(config.components, ['kubelet', 'dns']);
  t.is(config.nodeName, 'edge-1');
});

test('an invalid file fails naming the file, the field and the reason', (t) => {
  const path = writeConfig('kind: KubeletConfiguration\nmaxPods: -3\nclusterDNS: [not-an-ip]\nstaticPodPth: /x\n');
  const err = t.throws(() => loadConfig({ config: path }, noFiles));
  t.regex(err!.message, new RegExp(`invalid config ${path}`));
  t.regex(err!.message, /maxPods: must be an integer between 1 and 10000/);
  t.regex(err!.message, /clusterDNS\[0\]: not an IP address/);
  t.regex(err!.message, /staticPodPth: unknown field/);
  t.is((err as unknown as { code: string }).code, 'KEELSON_ERR_CONFIG_INVALID');
});

test('YAML syntax errors name the line', (t) => {
  const err = t.throws(() => parseConfigText('maxPods: [1,\n  2\nfoo: : bar\n', '/etc/keelson/config.yaml'));
  t.regex(err!.message, /invalid config \/etc\/keelson\/config.yaml: line \d+/);
});

test('wrong apiVersion and kind are reported', (t) => {
  const parsed = parseConfigObject({ apiVersion: 'v1', kind: 'Pod' });
  t.deepEqual(parsed.problems.map((p) => p.field), ['apiVersion', 'kind']);
});

test('unsupported upstream fields warn instead of failing', (t) => {
  const parsed = parseConfigObject({ cgroupDriver: 'systemd' });
  t.deepEqual(parsed.problems, []);
  t.is(parsed.warnings.length, 1);
  t.regex(parsed.warnings[0], /cgroupDriver/);
});

test('components and durations are validated', (t) => {
  t.deepEqual(parseComponents('dns, proxy'), ['dns', 'proxy']);
  t.throws(() => parseComponents('kubelet,coredns'), { message: /invalid --components/ });
  t.is(parseDuration('1m30s'), 90_000);
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('10'), undefined);
  t.is(parseDuration('5x'), undefined);
});

test('graceful node shutdown is off by default, as upstream', (t) => {
  const { config } = loadConfig({ rootDir: '/tmp/x' }, noFiles);
  t.is(config.kubelet.shutdownGracePeriodMs, 0);
  t.is(config.kubelet.shutdownGracePeriodCriticalPodsMs, 0);
});

test('shutdownGracePeriod and shutdownGracePeriodCriticalPods are read, not ignored', (t) => {
  const parsed = parseConfigObject({ shutdownGracePeriod: '1m', shutdownGracePeriodCriticalPods: '20s' });
  t.deepEqual(parsed.problems, []);
  t.deepEqual(parsed.warnings, []);
  t.is(parsed.kubelet.shutdownGracePeriodMs, 60_000);
  t.is(parsed.kubelet.shutdownGracePeriodCriticalPodsMs, 20_000);
  t.is(parseConfigObject({ shutdownGracePeriod: '0' }).kubelet.shutdownGracePeriodMs, 0);
});

test('seccompDefault: off by default as upstream, read from the file, a boolean only', (t) => {
  t.false(loadConfig({ rootDir: '/tmp/x' }, noFiles).config.kubelet.seccompDefault);
  const on = parseConfigObject({ seccompDefault: true });
  t.deepEqual(on.problems, []);
  t.deepEqual(on.warnings, []);
  t.true(on.kubelet.seccompDefault);
  t.deepEqual(parseConfigObject({ seccompDefault: 'yes' }).problems.map((p) => p.field), ['seccompDefault']);
});

test('shutdown grace periods are validated', (t) => {
  const fields = (doc: Record<string, unknown>) => parseConfigObject(doc).problems.map((p) => p.field);
  t.deepEqual(fields({ shutdownGracePeriod: '10s', shutdownGracePeriodCriticalPods: '30s' }), ['shutdownGracePeriodCriticalPods']);
  t.deepEqual(fields({ shutdownGracePeriodCriticalPods: '5s' }), ['shutdownGracePeriodCriticalPods']);
  t.deepEqual(fields({ shutdownGracePeriod: '1.5s' }), ['shutdownGracePeriod']);
  t.deepEqual(fields({ shutdownGracePeriod: 30 }), ['shutdownGracePeriod']);
  t.deepEqual(fields({ shutdownGracePeriod: '-3s' }), ['shutdownGracePeriod']);
});

test('the configuration example in README.md is valid', (t) => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const example = /```yaml\n(apiVersion: kubelet\.config\.k8s\.io\/v1beta1[\s\S]*?)```/.exec(readme);
  t.truthy(example, 'README.md has a KubeletConfiguration example');
  const path = writeConfig(example![1]);
  const { config, warnings } = loadConfig({ config: path }, noFiles);
  t.deepEqual(warnings, []);
  t.deepEqual(config.kubelet.clusterDNS, ['10.96.0.10']);
  t.deepEqual(componentConfigs(config).dns.listen, ['169.254.20.10']);
  t.is(componentConfigs(config).proxy.mode, 'nftables');
});
