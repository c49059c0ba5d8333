import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { parseResolvConf } from '../../agent/pods/dns';
import { applyDefaults } from '../../agent/pods/manifest';
import { qosClass } from '../../agent/pods/pod-status';
import { bytes, milliCpu } from '../../agent/pods/quantity';
import { containerResources, makeContainerConfig, makeSandboxConfig } from '../../agent/pods/runtime-config';
import { toStaticPod } from '../../agent/pods/static-pod';

function staticPod(spec: object): Pod {
  const raw = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'kube-system' }, spec };
  return toStaticPod(applyDefaults(raw as Pod), raw, '/m/p.yaml', 'n1');
}

const DNS = { servers: ['10.0.0.2'], searches: ['lan'], options: ['ndots:1'] };

test('pod network sandbox: pod namespaces, hostname, DNS, log folder, host ports only', (t) => {
  const pod = staticPod({ containers: [{ name: 'a', image: 'i:1', ports: [{ containerPort: 80 }, { containerPort: 53, hostPort: 5353, protocol: 'UDP', hostIP: '127.0.0.1' }] }] });
  const c = makeSandboxConfig(pod, 2, { podLogsDir: '/var/log/pods', dnsConfig: DNS });
  t.deepEqual(c.metadata, { name: 'p-n1', namespace: 'kube-system', uid: pod.metadata!.uid!, attempt: 2 });
  t.is(c.hostname, 'p-n1');
  t.is(c.logDirectory, `/var/log/pods/kube-system_p-n1_${pod.metadata!.uid}`);
  t.deepEqual(c.dnsConfig, DNS);
  t.deepEqual(c.portMappings, [{ protocol: 'UDP', containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' }]);
  t.deepEqual(c.linux.securityContext, { namespaceOptions: { network: 'pod', pid: 'container', ipc: 'pod' }, privileged: false });
});

test('hostNetwork sandbox: node network, no hostname, host ports default to container ports; privileged propagates', (t) => {
  const pod = staticPod({ hostNetwork: true, containers: [{ name: 'a', image: 'i:1', ports: [{ containerPort: 9000 }], securityContext: { privileged: true } }] });
  const c = makeSandboxConfig(pod, 0, { podLogsDir: '/l' });
  t.is(c.hostname, '');
  t.is(c.linux.securityContext.namespaceOptions.network, 'node');
  t.true(c.linux.securityContext.privileged);
  t.deepEqual(c.portMappings.map((p) => p.hostPort), [9000]);
  const cc = makeContainerConfig(pod, pod.spec!.containers[0], 0, { podIP: '192.0.2.1', hostIP: '192.0.2.1' });
  t.true(cc.linux.securityContext.privileged);
  t.is(cc.linux.securityContext.namespaceOptions.network, 'node');
});

test('resources: limits → CFS quota and memory limit, requests → shares', (t) => {
  t.deepEqual(containerResources({ name: 'a', resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '250m' } } }), {
    cpuShares: 256, cpuQuota: 200_000, cpuPeriod: 100_000, memoryLimitInBytes: 2 ** 30,
  });
  t.deepEqual(containerResources({ name: 'a' }), { cpuShares: 2, cpuQuota: 0, cpuPeriod: 100_000, memoryLimitInBytes: 0 });
  t.is(containerResources({ name: 'a', resources: { limits: { cpu: '100m' } } }).cpuShares, 102);
});

test('quantities', (t) => {
  t.is(milliCpu('500m'), 500);
  t.is(milliCpu('1.5'), 1500);
  t.is(milliCpu(2), 2000);
  t.is(bytes('128Mi'), 128 * 2 ** 20);
  t.is(bytes('1G'), 1e9);
  t.is(bytes('1e3'), 1000);
  t.is(bytes('12x'), undefined);
});

test('container config: command, args, env, workingDir, user, log path and restart annotations', (t) => {
  const pod = staticPod({ containers: [{ name: 'a', image: 'i:1', command: ['/bin/sh'], args: ['-c', 'x'], workingDir: '/w', env: [{ name: 'K', value: 'v' }, { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }], securityContext: { runAsUser: 65534 } }] });
  const cc = makeContainerConfig(pod, pod.spec!.containers[0], 3, { podIP: '10.1.2.3', hostIP: '' });
  t.deepEqual([cc.command, cc.args, cc.workingDir], [['/bin/sh'], ['-c', 'x'], '/w']);
  t.deepEqual(cc.envs, [{ key: 'K', value: 'v' }, { key: 'IP', value: '10.1.2.3' }]);
  t.is(cc.linux.securityContext.runAsUser, 65534);
  t.is(cc.logPath, 'a/3.log');
  t.deepEqual(cc.metadata, { name: 'a', attempt: 3 });
  t.is(cc.annotations['io.kubernetes.container.restartCount'], '3');
  t.is(cc.annotations['io.kubernetes.pod.terminationGracePeriod'], '30');
  t.deepEqual(
    Object.keys(cc.labels).filter((k) => k.startsWith('io.kubernetes.')).sort(),
    ['io.kubernetes.container.name', 'io.kubernetes.pod.name', 'io.kubernetes.pod.namespace', 'io.kubernetes.pod.uid'],
  );
});

test('resolv.conf → sandbox DNS config', (t) => {
  const text = '# comment\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch a.example b.example\noptions ndots:2 edns0\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n';
  t.deepEqual(parseResolvConf(text), { servers: ['10.0.0.2', '10.0.0.3', '1.1.1.1'], searches: ['a.example', 'b.example'], options: ['ndots:2', 'edns0'] });
});

test('QoS class', (t) => {
  t.is(qosClass(staticPod({ containers: [{ name: 'a', image: 'i:1' }] })), 'BestEffort');
  t.is(qosClass(staticPod({ containers: [{ name: 'a', image: 'i:1', resources: { limits: { cpu: '1', memory: '1Gi' } } }] })), 'Guaranteed');
  t.is(qosClass(staticPod({ containers: [{ name: 'a', image: 'i:1', resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1000m' } } }] })), 'Guaranteed');
  t.is(qosClass(staticPod({ containers: [{ name: 'a', image: 'i:1', resources: { requests: { cpu: '1' } } }] })), 'Burstable');
});
