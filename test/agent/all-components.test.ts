/**
 * `keelson run --components=kubelet,proxy,dns` in cluster mode, through the real CLI: the three
 * components run together in one process against the test apiserver and a private containerd, all
 * inside one network namespace made for the simulated node (the apiserver listens on its loopback;
 * the proxy's nftables table and the DNS address live there, never on this host). Checked as an
 * operator would: `keelson status`, `dig` at the node-local DNS address, `nft list`, the pod in the
 * runtime, and a SIGTERM that stops keelson and leaves the pod running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCriClient } from '../../cri/client';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { keelsonStatus, NODE, REPO_ROOT, startKeelson, waitFor, type KeelsonProcess } from '../harness/keelson';
import { execIn, nsenterArgs } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const test = integrationTest({ root: true, commands: ['containerd', 'runc', 'nsenter', 'nft', 'dig', 'ip'] });

const NODE_NAME = 'edge-all';
const CLUSTER_IP = '10.96.7.50';
const DNS_ADDRESS = '169.254.20.10';

const FIXTURES = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: ${CLUSTER_IP}
  clusterIPs: [${CLUSTER_IP}]
  ipFamilies: [IPv4]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
  selector: {app: web}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abcde, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [10.244.1.7]
    conditions: {ready: true}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, uid: 7d1c0f4e-3a52-4b8e-9d2a-5f0e6c1b2a30}
spec:
  nodeName: ${NODE_NAME}
  containers:
    - name: app
      image: ${BUSYBOX_IMAGE}
      imagePullPolicy: Never
      command: [sleep, '3600']
`;

let node: ContainerdNode | undefined;
let apiserver: ChildProcess | undefined;
let keelson: KeelsonProcess | undefined;
let dir: string | undefined;

test.after.always(async () => {
  await keelson?.stop();
  apiserver?.kill('SIGTERM');
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.serial('kubelet, proxy and dns run together in one keelson, and stop without touching the pod', async (t) => {
  node = await startContainerd({ podSubnet: '10.88.21.0/24' });
  dir = mkdtempSync(join(tmpdir(), 'keelson-all-'));
  const fixtures = join(dir, 'fixtures.yaml');
  writeFileSync(fixtures, FIXTURES);
  const kubeconfig = join(dir, 'admin.kubeconfig');
  apiserver = spawn('nsenter', [...nsenterArgs(node.netns), NODE, join(REPO_ROOT, 'dist/test/harness/apiserver/cli.js'), '--port', '6443', '--fixtures', fixtures, '--kubeconfig-out', kubeconfig], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    apiserver!.stdout!.once('data', () => resolve());
    apiserver!.once('exit', (code) => reject(new Error(`test apiserver exited ${code}`)));
  });
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
clusterDNS: [${DNS_ADDRESS}]
proxy:
  mode: nftables
  clusterCIDR: 10.244.0.0/16
dns:
  listen: [${DNS_ADDRESS}]
  forward: false
`);
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  const rootDir = join(dir, 'root');
  keelson = startKeelson(
    ['run', '--config', config, '--kubeconfig', kubeconfig, '--root-dir', rootDir, '--components', 'kubelet,proxy,dns', '--pod-manifest-path', manifests,
      '--pod-logs-dir', join(dir, 'pods'), '--container-runtime-endpoint', node.endpoint, '--hostname-override', NODE_NAME, '--node-ip', '10.0.0.21'],
    { netns: node.netns },
  );
  await keelson.waitForLine(/keelson running/, 30_000);

  // keelson status: every component healthy, and the pod bound to this node Running.
  const state = await waitFor('all components healthy and the pod running', async () => {
    const { state: s } = await keelsonStatus(rootDir);
    const components = (s?.components ?? []) as { name: string; healthy: boolean }[];
    const pod = ((s?.pods ?? []) as { name: string; phase: string }[]).find((p) => p.name === 'web-0');
    const wanted = ['kubelet', 'node', 'proxy', 'dns'];
    return wanted.every((n) => components.some((c) => c.name === n && c.healthy)) && pod?.phase === 'Running' ? s : undefined;
  }, 90_000, 500);
  t.deepEqual(state.extra.dnsAddresses, [`${DNS_ADDRESS}:53`]);

  // The DNS answers from the same informer caches, at the node-local address inside the node's netns.
  const dig = await execIn(node.netns, 'dig', ['+short', '+tries=1', '+time=2', `@${DNS_ADDRESS}`, 'web.shop.svc.cluster.local', 'A']);
  t.is(dig.stdout.trim(), CLUSTER_IP, dig.stderr);
  // The proxy programmed the Service into its own nftables table there.
  const nft = await execIn(node.netns, 'nft', ['list', 'table', 'ip', 'keelson-proxy']); // rejects if the table is missing
  t.true(nft.stdout.includes(CLUSTER_IP), 'the cluster IP is in the proxy table');
  t.true(nft.stdout.includes('10.244.1.7'), 'the endpoint is in the proxy table');

  const cri = createCriClient({ endpoint: node.endpoint });
  t.teardown(() => cri.close());
  const running = async () => (await cri.listContainers({})).containers.filter((c) => c.labels?.['io.kubernetes.pod.name'] === 'web-0' && c.state === 'CONTAINER_RUNNING');
  const before = await running();
  t.is(before.length, 1, 'the pod container runs in containerd');

  // The proxy's first full sync is followed by a memory release (--expose-gc from scripts/node-flags).
  const released = await keelson.waitForLine(/released memory to the OS/, 15_000);
  t.regex(released, /proxy full sync|start-up/);

  // SIGTERM: keelson stops, says so, and leaves the pod as it is.
  const code = await keelson.stop();
  t.is(code, 0, keelson.output().slice(-2000));
  t.regex(keelson.output(), /keelson stopped/);
  const after = await running();
  t.deepEqual(after.map((c) => c.id), before.map((c) => c.id), 'the same container still runs');
  const { state: stopped } = await keelsonStatus(rootDir);
  t.truthy(stopped?.stopped, 'the state file says keelson stopped');
});
