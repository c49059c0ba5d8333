/**
 * Pod spec features on a real containerd (private, in its own network namespace), driven through
 * createKubelet with an in-memory pod source and PodDataLookup: each case is a pod spec and what
 * must be observable inside its container (read with CRI ExecSync): env, files in volumes,
 * /etc/resolv.conf, /etc/hosts, hostname, uid/gid, capabilities, no_new_privs, cgroup limits, init
 * container order and sidecars; plus CreateContainerConfigError for a missing ConfigMap (retried,
 * siblings undisturbed), ConfigMap update propagation, and volume cleanup when the pod goes.
 */
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import { integrationTest } from '../harness/requirements';
import { b64 } from './spec-helpers';
import { SPEC_NODE_COMMANDS, SPEC_NODE_IP as NODE_IP, sh, specNode } from './spec-node';

const itest = integrationTest({ root: true, commands: SPEC_NODE_COMMANDS });

let hostDir = '';
const node = specNode(itest, {
  podSubnet: '10.88.9.0/24',
  config: { clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local' },
  objects: {
    configMaps: [{ metadata: { namespace: 'ns1', name: 'cfg' }, data: { MODE: 'fast', 'app.conf': 'version=1', level: '3' } }],
    secrets: [{ metadata: { namespace: 'ns1', name: 'creds' }, data: { PASSWORD: b64('s3cret'), 'tls.key': b64('KEY') } }],
    services: [
      { metadata: { namespace: 'ns1', name: 'web-api' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
      { metadata: { namespace: 'default', name: 'kubernetes' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP' }] } },
    ],
  },
  prepare: async (rootDir) => {
    hostDir = path.join(rootDir, 'host-data', 'made-by-kubelet');
    node.add(...testPods());
  },
});
const { statusOf, exec, waitFor } = node;
const data = node.data;
const pod = (name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}): Pod => node.pod(name, spec, meta);

function testPods(): Pod[] {
  const pods = new Map<string, Pod>();
  pods.set('features', pod('features', {
    hostname: 'web', subdomain: 'sub',
    dnsConfig: { searches: ['extra.example'], options: [{ name: 'timeout', value: '2' }] },
    initContainers: [
      { name: 'init-one', ...sh('echo one >> /work/order; chmod 666 /work/order'), volumeMounts: [{ name: 'work', mountPath: '/work' }] },
      // a sidecar counts as started once its startupProbe passes: its late line still comes before init-two's
      {
        name: 'sidecar', restartPolicy: 'Always', ...sh('sleep 1; echo sidecar >> /work/order; exec sleep 3600'), volumeMounts: [{ name: 'work', mountPath: '/work' }],
        startupProbe: { exec: { command: ['grep', '-qx', 'sidecar', '/work/order'] }, periodSeconds: 1, failureThreshold: 60 },
      },
      { name: 'init-two', ...sh('echo two >> /work/order'), volumeMounts: [{ name: 'work', mountPath: '/work' }] },
    ],
    containers: [{
      name: 'app', ...sh('echo app >> /work/order; exec sleep 3600'),
      command: ['sh', '-c', 'echo app >> /work/order; echo "$(GREETING)" > /work/greeting; exec sleep 3600'],
      workingDir: '/work',
      ports: [{ containerPort: 8080, hostPort: 18080 }],
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'GREETING', value: 'hello-$(POD_NAME)' },
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'TIER', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
        { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } },
        { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } },
        { name: 'MAYBE', valueFrom: { secretKeyRef: { name: 'absent', key: 'x', optional: true } } },
      ],
      resources: { limits: { cpu: '500m', memory: '64Mi' }, requests: { cpu: '250m', memory: '32Mi' } },
      securityContext: {
        runAsUser: 1000, runAsGroup: 3000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      },
      volumeMounts: [
        { name: 'work', mountPath: '/work' },
        { name: 'mem', mountPath: '/mem' },
        { name: 'cfg', mountPath: '/etc/cfg' },
        { name: 'creds', mountPath: '/etc/creds' },
        { name: 'info', mountPath: '/etc/info' },
        { name: 'proj', mountPath: '/var/run/proj' },
        { name: 'host', mountPath: '/host' },
      ],
    }],
    volumes: [
      { name: 'work', emptyDir: {} },
      { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
      { name: 'cfg', configMap: { name: 'cfg', items: [{ key: 'app.conf', path: 'app.conf' }] } },
      { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o444 } },
      { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }, { path: 'cpu', resourceFieldRef: { containerName: 'app', resource: 'limits.cpu', divisor: '1m' } }] } },
      { name: 'proj', projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'vault', expirationSeconds: 3600 } }, { configMap: { name: 'cfg', items: [{ key: 'level', path: 'level' }] } }] } },
      { name: 'host', hostPath: { path: hostDir, type: 'DirectoryOrCreate' } },
    ],
  }, { labels: { tier: 'front', app: 'shop' }, annotations: { 'example.com/owner': 'team-a' } }));

  pods.set('hostnet', pod('hostnet', { hostNetwork: true, containers: [{ name: 'app', ...sh('exec sleep 3600'), securityContext: { privileged: true } }] }));

  pods.set('missing', pod('missing', {
    containers: [
      { name: 'waits', ...sh('echo "late=$LATE"; exec sleep 3600'), env: [{ name: 'LATE', valueFrom: { configMapKeyRef: { name: 'late', key: 'k' } } }] },
      { name: 'runs', ...sh('exec sleep 3600') },
    ],
  }));

  pods.set('nonroot', pod('nonroot', { containers: [{ name: 'app', ...sh('exec sleep 3600'), securityContext: { runAsNonRoot: true } }] }));

  // fsGroup: a non-root user reads a 0400 Secret through the volume's group; emptyDir files inherit it
  pods.set('fsgroup', pod('fsgroup', {
    securityContext: { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000 },
    containers: [{
      name: 'app', ...sh('exec sleep 3600'),
      volumeMounts: [{ name: 'creds', mountPath: '/etc/creds' }, { name: 'scratch', mountPath: '/scratch' }],
    }],
    volumes: [{ name: 'creds', secret: { secretName: 'creds', defaultMode: 0o400 } }, { name: 'scratch', emptyDir: {} }],
  }));

  pods.set('initfail', pod('initfail', {
    restartPolicy: 'Never',
    initContainers: [{ name: 'broken', ...sh('exit 3') }],
    containers: [{ name: 'app', ...sh('exec sleep 3600') }],
  }));
  return [...pods.values()];
}

itest.serial('init containers run in order, the sidecar keeps running beside the app; the pod is Running and Initialized', async (t) => {
  // generous: under a loaded CI machine five pods start at once
  await waitFor('features running', () => statusOf('features')?.phase === 'Running' && statusOf('features')?.containerStatuses?.[0].state?.running, 90_000);
  // the exact order is checked once the app wrote its line (a wrong order shows as a diff, not a timeout)
  let order = '';
  await waitFor('app wrote its line', async () => (order = await exec('features', 'app', 'cat /work/order')).includes('app\n'))
    .catch((err: Error) => Promise.reject(new Error(`${err.message}; /work/order: ${JSON.stringify(order)}`)));
  t.is(order, 'one\nsidecar\ntwo\napp\n');
  const status = statusOf('features')!;
  t.deepEqual(status.initContainerStatuses!.map((s) => [s.name, Object.keys(s.state!)[0]]), [['init-one', 'terminated'], ['sidecar', 'running'], ['init-two', 'terminated']]);
  t.like(status.initContainerStatuses![1], { started: true, ready: true });
  t.is(status.conditions!.find((c) => c.type === 'Initialized')!.status, 'True');
  t.is(await exec('features', 'sidecar', 'echo alive'), 'alive\n');
});

itest.serial('fsGroup: a non-root container user reads a 0400 Secret via the group; new emptyDir files get the group', async (t) => {
  t.is(await exec('fsgroup', 'app', 'id -u; id -G'), '1000\n3000 2000\n');
  t.is(await exec('fsgroup', 'app', 'stat -L -c %a:%g /etc/creds/PASSWORD; cat /etc/creds/PASSWORD'), '440:2000\ns3cret');
  t.is(await exec('fsgroup', 'app', 'touch /scratch/f && stat -c %g /scratch/f; stat -c %a:%g /scratch'), '2000\n2777:2000\n');
});

itest.serial('env: literal with $(VAR), downward API, resources, ConfigMap/Secret keys, envFrom prefix, service links; command expanded', async (t) => {
  const env = Object.fromEntries((await exec('features', 'app', 'env')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const podIP = statusOf('features')!.podIP!;
  t.regex(podIP, /^10\.88\.9\.\d+$/);
  t.like(env, {
    POD_NAME: 'features', GREETING: 'hello-features', POD_IP: podIP, HOST_IP: NODE_IP, TIER: 'front', MEM_MI: '64', MODE: 'fast', PASSWORD: 's3cret',
    CFG_MODE: 'fast', CFG_level: '3', WEB_API_SERVICE_HOST: '10.96.0.20', WEB_API_SERVICE_PORT_HTTP: '80', WEB_API_PORT: 'tcp://10.96.0.20:80',
    KUBERNETES_SERVICE_HOST: '10.96.0.1',
  });
  t.false('MAYBE' in env);
  t.is(await exec('features', 'app', 'cat /work/greeting; pwd'), 'hello-features\n/work\n');
});

itest.serial('volumes inside the container: configMap, secret (tmpfs, mode), downwardAPI, projected token, emptyDir Memory size, hostPath created', async (t) => {
  t.is(await exec('features', 'app', 'cat /etc/cfg/app.conf'), 'version=1');
  t.is(await exec('features', 'app', 'cat /etc/creds/..data/PASSWORD; stat -L -c %a /etc/creds/PASSWORD'), 's3cret444\n');
  t.is(await exec('features', 'app', 'cat /etc/info/labels; echo; cat /etc/info/cpu'), 'app="shop"\ntier="front"\n500');
  t.regex(await exec('features', 'app', 'cat /var/run/proj/token; echo; cat /var/run/proj/level'), /^token-\d+\n3$/);
  t.deepEqual(data.tokenRequests[0].options, { audiences: ['vault'], expirationSeconds: 3600, boundPod: { name: 'features', uid: node.uid('features') } });
  const mounts = await exec('features', 'app', 'cat /proc/mounts');
  t.regex(mounts, /^tmpfs \/mem tmpfs \S*size=8192k/m);
  t.regex(mounts, /^tmpfs \/etc\/creds tmpfs ro/m);
  t.regex(mounts, /^\S+ \/etc\/cfg \S+ ro/m);
  t.true((await stat(hostDir)).isDirectory());
  t.is(await exec('features', 'app', 'touch /work/ok && touch /etc/cfg/x 2>/dev/null || echo cfg-ro'), 'cfg-ro\n');
});

itest.serial('DNS, hostname, /etc/hosts, port mapping, labels and annotations', async (t) => {
  const resolv = await exec('features', 'app', 'cat /etc/resolv.conf');
  t.regex(resolv, /^nameserver 10\.96\.0\.10$/m);
  t.regex(resolv, /^search ns1\.svc\.cluster\.local svc\.cluster\.local cluster\.local (\S+ )*extra\.example$/m);
  t.regex(resolv, /^options (?=.*ndots:5)(?=.*timeout:2)/m);
  t.is(await exec('features', 'app', 'hostname'), 'web\n');
  const podIP = statusOf('features')!.podIP!;
  t.regex(await exec('features', 'app', 'cat /etc/hosts'), new RegExp(`^${podIP.replace(/\./g, '\\.')}\\tweb\\.sub\\.ns1\\.svc\\.cluster\\.local\\tweb$`, 'm'));
  const nat = execFileSync('nsenter', [`--net=/var/run/netns/${node.containerd.netns}`, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' });
  t.regex(nat, /--dport 18080 .*-j DNAT --to-destination 10\.88\.9\.\d+:8080|18080/);
  const { items } = await node.cri.listPodSandbox({ filter: { label_selector: { 'io.kubernetes.pod.uid': node.uid('features') } } });
  t.is(items[0].labels.tier, 'front');
  t.is(items[0].annotations['example.com/owner'], 'team-a');
});

itest.serial('security context and resources: uid/gid, read-only root, capabilities, no_new_privs, masked /proc; cgroup limits', async (t) => {
  t.is(await exec('features', 'app', 'id -u; id -g'), '1000\n3000\n');
  t.is(await exec('features', 'app', 'touch /rootfs-write 2>/dev/null || echo ro'), 'ro\n');
  const status = await exec('features', 'app', 'cat /proc/self/status');
  // NET_BIND_SERVICE (bit 10) only in the bounding set
  t.regex(status, /^CapBnd:\s+0000000000000400$/m);
  t.regex(status, /^NoNewPrivs:\s+1$/m);
  const cgroup = await exec('features', 'app', 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max');
  t.true(['50000\n256\n67108864\n', '50000 100000\n67108864\n'].includes(cgroup), cgroup);
  // privileged on the host network: full capabilities, host resolver (ClusterFirst falls back to Default)
  const privileged = await exec('hostnet', 'app', 'grep CapEff /proc/self/status; cat /etc/resolv.conf');
  t.notRegex(privileged, /CapEff:\s+0000000000000000/);
  t.notRegex(privileged, /10\.96\.0\.10/);
});

itest.serial('a missing ConfigMap: CreateContainerConfigError with the upstream message, sibling runs; created later → the container starts', async (t) => {
  const waiting = await waitFor('waits reports the config error', () => statusOf('missing')?.containerStatuses?.find((c) => c.name === 'waits')?.state?.waiting?.reason === 'CreateContainerConfigError' && statusOf('missing'));
  t.is(waiting.containerStatuses!.find((c) => c.name === 'waits')!.state!.waiting!.message, 'configmap "late" not found');
  t.truthy(waiting.containerStatuses!.find((c) => c.name === 'runs')!.state!.running);
  data.configMaps.push({ metadata: { namespace: 'ns1', name: 'late' }, data: { k: 'arrived' } });
  await waitFor('waits running', () => statusOf('missing')?.containerStatuses?.find((c) => c.name === 'waits')?.state?.running);
  t.is(await exec('missing', 'waits', 'echo $LATE'), 'arrived\n');
});

itest.serial('runAsNonRoot with a root image is refused; a failed init container under restartPolicy Never fails the pod', async (t) => {
  const nonroot = await waitFor('nonroot error', () => statusOf('nonroot')?.containerStatuses?.[0].state?.waiting?.reason === 'CreateContainerConfigError' && statusOf('nonroot'));
  t.regex(nonroot.containerStatuses![0].state!.waiting!.message!, /container has runAsNonRoot and image will run as root/);
  const failed = await waitFor('initfail Failed', () => statusOf('initfail')?.phase === 'Failed' && statusOf('initfail'));
  t.is(failed.initContainerStatuses![0].state!.terminated!.exitCode, 3);
  t.falsy(failed.containerStatuses![0].state!.running);
  const { containers } = await node.cri.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': node.uid('initfail'), 'io.kubernetes.container.name': 'app' } } });
  t.is(containers.length, 0, 'the app container never ran');
});

itest.serial('ConfigMap and Secret changes reach the mounted files through the ..data swap; env stays as started', async (t) => {
  data.configMaps.find((c) => c.metadata!.name === 'cfg')!.data!['app.conf'] = 'version=2';
  data.secrets.find((s) => s.metadata!.name === 'creds')!.data!.PASSWORD = b64('rotated');
  await waitFor('configmap update visible', async () => (await exec('features', 'app', 'cat /etc/cfg/app.conf')) === 'version=2', 15_000);
  await waitFor('secret update visible', async () => (await exec('features', 'app', 'cat /etc/creds/PASSWORD')) === 'rotated', 15_000);
  t.is(await exec('features', 'app', 'echo $PASSWORD'), 's3cret\n');
});

itest.serial('a removed pod: containers gone, tmpfs volumes unmounted, its folder deleted; hostPath kept', async (t) => {
  const uid = node.uid('features');
  const podDir = path.join(node.rootDir, 'pods', uid);
  t.true((await readFile('/proc/self/mountinfo', 'utf8')).includes(podDir));
  node.remove('features');
  await waitFor('pod folder removed', async () => !(await stat(podDir).catch(() => undefined)));
  t.false((await readFile('/proc/self/mountinfo', 'utf8')).includes(podDir));
  const { containers } = await node.cri.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });
  t.is(containers.length, 0);
  t.true((await stat(hostDir)).isDirectory());
});
