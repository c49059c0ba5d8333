import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { integrationTest } from '../harness/requirements';
import { startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { loadFixtures, parseArgs } from '../harness/apiserver/cli';
import { call, watch } from './helpers';

const run = promisify(execFile);
const kubectlTest = integrationTest({ commands: ['kubectl'] });

const FIXTURES = `
apiVersion: v1
kind: Node
metadata:
  name: edge-1
  labels:
    node-role.kubernetes.io/edge: ""
status:
  conditions:
    - type: Ready
      status: "True"
  nodeInfo:
    kubeletVersion: v1.32.0-keelson
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata:
      name: web-1
      namespace: shop
    spec:
      nodeName: edge-1
      containers:
        - name: web
          image: busybox:1.36
    status:
      phase: Running
      containerStatuses:
        - name: web
          ready: true
          restartCount: 3
          state:
            running: {}
  - apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
    spec:
      ports:
        - port: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: api-0
spec:
  containers:
    - name: api
      image: busybox:1.36
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
  - addresses: ["10.244.0.5"]
ports:
  - port: 8080
`;

test('loadFixtures flattens Lists; parseArgs reads the flags', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-fixtures-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'f.yaml');
  writeFileSync(file, FIXTURES);
  t.deepEqual(loadFixtures(file).map((o) => `${o.kind}/${o.metadata.name}`), ['Node/edge-1', 'Pod/web-1', 'Service/web', 'Pod/api-0', 'EndpointSlice/web-abc']);
  writeFileSync(file, 'kind: [');
  t.throws(() => loadFixtures(file));
  t.like(parseArgs(['--port', '7000', '--fixtures=a.yaml', '--fixtures', 'b.yaml', '--kubeconfig-out', 'k']), { port: 7000, fixtures: ['a.yaml', 'b.yaml'], kubeconfigOut: 'k' });
});

kubectlTest('CLI starts from a YAML fixture and kubectl get nodes,pods prints its rows', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-cli-'));
  const fixtures = join(dir, 'fixtures.yaml');
  writeFileSync(fixtures, FIXTURES);
  const kubeconfig = join(dir, 'admin.kubeconfig');
  const child = spawn(process.execPath, [join(__dirname, '../harness/apiserver/cli.js'), '--port', '0', '--fixtures', fixtures, '--kubeconfig-out', kubeconfig], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const printed = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.on('exit', () => reject(new Error(`cli exited: ${stderr}`)));
  });
  t.is(printed, kubeconfig);
  const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 20000 });
  const plain = await kubectl('get', 'nodes,pods');
  t.regex(plain.stdout, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\nnode\/edge-1\s+Ready\s+edge\s+\d+s\s+v1\.32\.0-keelson\n/);
  t.regex(plain.stdout, /\nNAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\npod\/api-0\s+0\/1\s+Pending\s+0\s+\d+s\n/);
  const { stdout } = await kubectl('get', 'nodes,pods', '-A');
  const lines = stdout.split('\n').map((l) => l.trim().split(/\s+/));
  t.true(lines.some((cols) => cols[0] === 'node/edge-1' && cols[1] === 'Ready' && cols[2] === 'edge' && cols[4] === 'v1.32.0-keelson'), stdout);
  t.true(lines.some((cols) => cols[0] === 'shop' && cols[1] === 'pod/web-1' && cols[2] === '1/1' && cols[3] === 'Running' && cols[4] === '3'), stdout);
  const svc = await kubectl('get', 'svc,endpointslices', '-A');
  t.regex(svc.stdout, /shop\s+service\/web\s+ClusterIP\s+10\.\d+\.\d+\.\d+\s+<none>\s+80\/TCP/);
  t.regex(svc.stdout, /shop\s+endpointslice.discovery.k8s.io\/web-abc\s+IPv4\s+8080\s+10\.244\.0\.5/);
  const json = await kubectl('get', 'pod', '-n', 'shop', 'web-1', '-o', 'jsonpath={.spec.nodeName}');
  t.is(json.stdout, 'edge-1');
  await kubectl('label', 'node', 'edge-1', 'zone=a');
  const labelled = await kubectl('get', 'nodes', '-l', 'zone=a', '-o', 'name');
  t.is(labelled.stdout.trim(), 'node/edge-1');
  await kubectl('delete', 'pod', '-n', 'shop', 'web-1', '--wait=false');
  const terminating = await kubectl('get', 'pod', '-n', 'shop', 'web-1');
  t.regex(terminating.stdout, /Terminating/);
});

let api: TestApiserver;
test.before(async () => {
  api = await startTestApiserver();
});
test.after.always(async () => {
  await api?.stop();
});

test('discovery documents list every kind; version and health endpoints answer', async (t) => {
  const core = await call(api, 'GET', '/api');
  t.deepEqual(core.body.versions, ['v1']);
  const v1 = await call(api, 'GET', '/api/v1');
  const names = v1.body.resources.map((r: any) => r.name);
  for (const n of ['pods', 'pods/status', 'pods/eviction', 'nodes', 'nodes/status', 'services', 'configmaps', 'secrets', 'events', 'namespaces', 'serviceaccounts/token']) t.true(names.includes(n), n);
  t.like(v1.body.resources.find((r: any) => r.name === 'pods'), { kind: 'Pod', namespaced: true, shortNames: ['po'] });
  const groups = await call(api, 'GET', '/apis');
  const groupNames = groups.body.groups.map((g: any) => g.name);
  for (const g of ['discovery.k8s.io', 'coordination.k8s.io', 'certificates.k8s.io', 'events.k8s.io', 'authentication.k8s.io', 'authorization.k8s.io']) t.true(groupNames.includes(g), g);
  const slices = await call(api, 'GET', '/apis/discovery.k8s.io/v1');
  t.is(slices.body.groupVersion, 'discovery.k8s.io/v1');
  t.is((await call(api, 'GET', '/apis/nope.example.com/v1')).status, 404);
  t.is((await call(api, 'GET', '/api/v1/widgets')).status, 404);
  t.is((await call(api, 'GET', '/version')).body.major, '1');
  for (const p of ['/healthz', '/livez', '/readyz']) t.is((await call(api, 'GET', p)).body, 'ok');
  t.is((await call(api, 'GET', '/openapi/v2')).status, 404);
});

test('Table output for as=Table requests', async (t) => {
  const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
  const r = await call(api, 'GET', '/api/v1/namespaces/default/services', { headers: { Accept: accept } });
  t.is(r.body.kind, 'Table');
  t.is(r.body.apiVersion, 'meta.k8s.io/v1');
  t.deepEqual(r.body.columnDefinitions.map((c: any) => c.name), ['Name', 'Type', 'Cluster-IP', 'External-IP', 'Port(s)', 'Age']);
  t.deepEqual(r.body.rows[0].cells.slice(0, 5), ['kubernetes', 'ClusterIP', '10.96.0.1', '<none>', '443/TCP']);
  t.is(r.body.rows[0].object.kind, 'PartialObjectMetadata');
  const plain = await call(api, 'GET', '/api/v1/namespaces/default/services');
  t.is(plain.body.kind, 'ServiceList');
  // kubectl get -w: every event object is a one-row Table, headers in the first only.
  const w = watch(api, `/api/v1/namespaces/default/services?watch=1&resourceVersion=0`, { headers: { Accept: accept } });
  t.teardown(() => w.close());
  await w.waitFor(1);
  api.store.patch('Service', 'default', 'kubernetes', { metadata: { labels: { watched: 'yes' } } });
  const events = await w.waitFor(2);
  t.is(events[0]!.object.kind, 'Table');
  t.is(events[0]!.object.columnDefinitions.length, 6);
  t.is(events[0]!.object.rows[0].cells[0], 'kubernetes');
  t.is(events[1]!.type, 'MODIFIED');
  t.deepEqual(events[1]!.object.columnDefinitions, []);
  t.is(events[1]!.object.rows.length, 1);
});

kubectlTest('writeKubeconfig: client-certificate and token kubeconfigs work with kubectl', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const kubectl = (kubeconfig: string, ...args: string[]) =>
    run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 20000 });
  const nodeKc = await api.writeKubeconfig({ user: 'system:node:edge-9', groups: ['system:nodes'] });
  const manifest = join(dir, 'cm.yaml');
  writeFileSync(manifest, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-node\n  namespace: default\ndata:\n  a: b\n');
  const created = await kubectl(nodeKc, 'create', '--validate=false', '-f', manifest); // no OpenAPI here
  t.regex(created.stdout, /configmap\/from-node created/);
  // Typed kubectl generators send protobuf, which the test apiserver does not speak: 415.
  const proto = await t.throwsAsync(kubectl(nodeKc, 'create', 'configmap', 'proto', '-n', 'default', '--from-literal=a=b'));
  t.regex(String((proto as { stderr?: string }).stderr), /unknown format|Unsupported/i);
  const viewerKc = await api.writeKubeconfig({ user: 'nobody', groups: [] });
  const denied = await t.throwsAsync(kubectl(viewerKc, 'get', 'pods', '-n', 'default'));
  t.regex(String((denied as { stderr?: string }).stderr), /pods is forbidden: User "nobody" cannot list resource "pods"/);
  const tokenKc = await api.writeKubeconfig({ token: api.adminToken, path: join(dir, 'token.kubeconfig') });
  const whoami = await kubectl(tokenKc, 'get', 'configmap', 'from-node', '-n', 'default', '-o', 'name');
  t.is(whoami.stdout.trim(), 'configmap/from-node');
  const admin = await kubectl(api.kubeconfigPath, 'get', 'ns', '-o', 'name');
  t.true(admin.stdout.includes('namespace/kube-system'));
});
