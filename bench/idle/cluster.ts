/**
 * keelson's RSS idle in cluster mode with all three components (kubelet, proxy in nftables mode,
 * dns) against the test apiserver holding N Services with one EndpointSlice each, beside a bare
 * Node.js process measured in the same run. Target (issue 2): keelson idle, all components ≤ 80 MB.
 *
 * Everything runs inside one network namespace made for the simulated node (the apiserver, the
 * private containerd, keelson), so the proxy's rules and the DNS address never touch the host.
 * Run: bench/idle/run.sh [SERVICES]   (root)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd } from '../../test/harness/containerd';
import { keelsonStatus, startKeelson, waitFor, NODE, REPO_ROOT } from '../../test/harness/keelson';
import { nsenterArgs } from '../../test/harness/netns';

const SERVICES = Number(process.argv[2] ?? 100);
const IDLE_MS = Number(process.env.KEELSON_BENCH_IDLE_MS ?? 30_000);

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

function childPid(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children[0] ?? pid;
}

async function maxRss(pid: number, samples = 10): Promise<number> {
  let max = 0;
  for (let i = 0; i < samples; i++) {
    max = Math.max(max, rssKiB(pid));
    await new Promise((r) => setTimeout(r, 500));
  }
  return max;
}

function fixtures(count: number): string {
  const docs: string[] = ['apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}'];
  for (let i = 0; i < count; i++) {
    const ip = `10.96.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`;
    docs.push(`apiVersion: v1
kind: Service
metadata: {name: svc-${i}, namespace: bench}
spec:
  clusterIP: ${ip}
  clusterIPs: [${ip}]
  ipFamilies: [IPv4]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
  selector: {app: svc-${i}}`);
    docs.push(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-${i}-abcde, namespace: bench, labels: {kubernetes.io/service-name: svc-${i}}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [10.244.${Math.floor(i / 250)}.${(i % 250) + 2}]
    conditions: {ready: true}`);
  }
  return docs.join('\n---\n') + '\n';
}

async function main(): Promise<void> {
  const node = await startContainerd({ podSubnet: '10.88.11.0/24' });
  const dir = mkdtempSync(join(tmpdir(), 'keelson-bench-idle-'));
  const fixtureFile = join(dir, 'fixtures.yaml');
  writeFileSync(fixtureFile, fixtures(SERVICES));
  const kubeconfig = join(dir, 'admin.kubeconfig');
  const apiserver: ChildProcess = spawn(
    'nsenter',
    [...nsenterArgs(node.netns), NODE, join(REPO_ROOT, 'dist/test/harness/apiserver/cli.js'), '--port', '6443', '--fixtures', fixtureFile, '--kubeconfig-out', kubeconfig],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    apiserver.stdout!.once('data', () => resolve());
    apiserver.once('exit', (code) => reject(new Error(`test apiserver exited ${code}`)));
  });
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
clusterDNS: [169.254.20.10]
proxy:
  mode: nftables
  clusterCIDR: 10.244.0.0/16
dns:
  listen: [169.254.20.10]
  upstreams: [127.0.0.1:5399]
`);
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  const rootDir = join(dir, 'root');
  const keelson = startKeelson(
    ['run', '--config', config, '--kubeconfig', kubeconfig, '--root-dir', rootDir, '--pod-manifest-path', manifests, '--pod-logs-dir', join(dir, 'pods'),
      '--container-runtime-endpoint', node.endpoint, '--hostname-override', 'bench-node', '--node-ip', '10.0.0.10', '--log-level', 'warn'],
    { netns: node.netns },
  );
  const bare = spawn(NODE, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  try {
    const state = await waitFor('all components healthy', async () => {
      const { state: s } = await keelsonStatus(rootDir);
      const names = (s?.components ?? []).filter((c: any) => ['kubelet', 'proxy', 'dns', 'node'].includes(c.name));
      return names.length >= 3 && names.every((c: any) => c.healthy) ? s : undefined;
    }, 90_000);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const [k, b] = await Promise.all([maxRss(childPid(keelson.child.pid!)), maxRss(bare.pid!)]);
    const components = state.components.map((c: any) => `${c.name}${c.healthy ? '' : '(unhealthy)'}`).join(', ');
    console.log(`runtime node ${process.version} ${process.arch}; ${SERVICES} services x 1 endpoint; idle ${IDLE_MS / 1000} s; components: ${components}`);
    console.log(`keelson run (cluster, all components)  max RSS ${(k / 1024).toFixed(1)} MB`);
    console.log(`bare node -e setInterval                max RSS ${(b / 1024).toFixed(1)} MB`);
    console.log(`target keelson <= 80 MB: ${k / 1024 <= 80 ? 'met' : 'NOT met'}`);
  } finally {
    bare.kill();
    await keelson.stop();
    apiserver.kill('SIGTERM');
    await node.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
