import test from 'ava';
import { defaultPullPolicy, parseManifest } from '../../agent/pods/manifest';
import { staticPodName, staticPodUid, toStaticPod } from '../../agent/pods/static-pod';

const GOOD = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: app
      image: busybox:1.36
      command: [sh, -c, 'echo hi']
`;

test('a valid YAML pod is parsed and defaulted', (t) => {
  const { documents, fileError } = parseManifest(GOOD);
  t.is(fileError, undefined);
  t.is(documents.length, 1);
  const pod = documents[0].pod!;
  t.deepEqual(documents[0].errors, []);
  t.is(pod.metadata!.namespace, 'default');
  t.is(pod.spec!.restartPolicy, 'Always');
  t.is(pod.spec!.terminationGracePeriodSeconds, 30);
  t.is(pod.spec!.containers[0].imagePullPolicy, 'IfNotPresent');
});

test('JSON, several YAML documents and v1 Lists all give several pods', (t) => {
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'j' }, spec: { containers: [{ name: 'a', image: 'x:1' }] } });
  t.is(parseManifest(json).documents[0].pod?.metadata?.name, 'j');
  const multi = `${GOOD}---\n${GOOD.replace('name: web', 'name: web2')}---\n`;
  t.deepEqual(parseManifest(multi).documents.map((d) => d.pod?.metadata?.name), ['web', 'web2']);
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [JSON.parse(json), { ...JSON.parse(json), metadata: { name: 'k' } }] });
  t.deepEqual(parseManifest(list).documents.map((d) => d.pod?.metadata?.name), ['j', 'k']);
});

test('YAML syntax errors name the line', (t) => {
  const { documents, fileError } = parseManifest('apiVersion: v1\nkind: Pod\nmetadata: {name: [\n');
  t.is(documents.length, 0);
  t.regex(fileError!.field, /^line \d+, column \d+$/);
  t.regex(fileError!.message, /YAML syntax error/);
});

const BAD: [string, string, string, RegExp][] = [
  ['no containers', GOOD.replace(/ {2}containers:[\s\S]*$/, '  containers: []\n'), 'spec.containers', /Required value/],
  ['no image', GOOD.replace('      image: busybox:1.36\n', ''), 'spec.containers[0].image', /Required value/],
  ['bad restartPolicy', GOOD.replace('spec:\n', 'spec:\n  restartPolicy: Sometimes\n'), 'spec.restartPolicy', /Unsupported value: "Sometimes"/],
  ['unknown field', GOOD.replace('      image:', '      imagePolicy: Always\n      image:'), 'spec.containers[0].imagePolicy', /unknown field/],
  ['unknown top-level field', GOOD + 'extra: 1\n', 'extra', /unknown field/],
  ['wrong kind', GOOD.replace('kind: Pod', 'kind: Deployment'), 'kind', /Unsupported value: "Deployment"/],
  ['wrong apiVersion', GOOD.replace('apiVersion: v1', 'apiVersion: apps/v1'), 'apiVersion', /Unsupported value/],
  ['missing name', GOOD.replace('  name: web\n', '  labels: {a: b}\n'), 'metadata.name', /Required value/],
  ['duplicate container', GOOD + '    - name: app\n      image: busybox:1.36\n', 'spec.containers[1].name', /Duplicate value: "app"/],
  ['bad pull policy', GOOD.replace('      command:', '      imagePullPolicy: Sometimes\n      command:'), 'spec.containers[0].imagePullPolicy', /Unsupported value/],
  ['wrong type', GOOD.replace("command: [sh, -c, 'echo hi']", 'command: echo'), 'spec.containers[0].command', /expected array/],
  ['bad quantity', GOOD + '      resources: {limits: {memory: lots}}\n', 'spec.containers[0].resources.limits.memory', /must be a quantity/],
  ['unsupported volume type', GOOD + '  volumes: [{name: v, nfs: {server: s, path: /x}}]\n', 'spec.volumes[0].nfs', /Unsupported/],
  ['bad port', GOOD + '      ports: [{containerPort: 70000}]\n', 'spec.containers[0].ports[0].containerPort', /between 1 and 65535/],
];

for (const [title, text, field, message] of BAD) {
  test(`bad manifest is reported with its field: ${title}`, (t) => {
    const { documents } = parseManifest(text);
    t.is(documents.length, 1);
    t.is(documents[0].pod, undefined);
    const problem = documents[0].errors.find((e) => e.field === field);
    t.truthy(problem, JSON.stringify(documents[0].errors));
    t.regex(problem!.message, message);
  });
}

test('a bad document does not hide the good one beside it', (t) => {
  const { documents } = parseManifest(`${GOOD}---\n${GOOD.replace('name: web', 'name: bad').replace('      image: busybox:1.36\n', '')}`);
  t.truthy(documents[0].pod);
  t.is(documents[1].pod, undefined);
  t.is(documents[1].errors[0].field, 'spec.containers[0].image');
});

test('known but unhandled fields are warnings, not errors', (t) => {
  const { documents } = parseManifest(GOOD + '      tty: true\n      livenessProbe: {exec: {command: [true]}}\n');
  t.truthy(documents[0].pod);
  // probes and lifecycle hooks are acted upon (probes/, hooks.ts): no warning
  t.deepEqual(documents[0].warnings.map((w) => w.field), ['spec.containers[0].tty']);
});

test('default pull policy: Always for latest or no tag, else IfNotPresent', (t) => {
  t.is(defaultPullPolicy('busybox'), 'Always');
  t.is(defaultPullPolicy('busybox:latest'), 'Always');
  t.is(defaultPullPolicy('localhost:5000/busybox'), 'Always');
  t.is(defaultPullPolicy('localhost:5000/busybox:1.2'), 'IfNotPresent');
  t.is(defaultPullPolicy('busybox@sha256:abcd'), 'IfNotPresent');
});

test('static pod UID is stable for the same content and changes with content, file or node', (t) => {
  const raw = parseManifest(GOOD).documents[0].raw;
  const sameContentOtherLayout = parseManifest(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web"},"spec":{"containers":[{"command":["sh","-c","echo hi"],"name":"app","image":"busybox:1.36"}]}}`).documents[0].raw;
  const uid = staticPodUid(raw, 'file:/m/a.yaml', 'node1');
  t.regex(uid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.is(staticPodUid(sameContentOtherLayout, 'file:/m/a.yaml', 'node1'), uid);
  t.not(staticPodUid(parseManifest(GOOD.replace('hi', 'ho')).documents[0].raw, 'file:/m/a.yaml', 'node1'), uid);
  t.not(staticPodUid(raw, 'file:/m/b.yaml', 'node1'), uid);
  t.not(staticPodUid(raw, 'file:/m/a.yaml', 'node2'), uid);
});

test('static pod gets the node name suffix, node binding and source annotations', (t) => {
  const doc = parseManifest(GOOD).documents[0];
  const pod = toStaticPod(doc.pod!, doc.raw, '/m/a.yaml', 'Edge-1');
  t.is(pod.metadata!.name, 'web-edge-1');
  t.is(staticPodName('web', 'Edge-1'), 'web-edge-1');
  t.is(pod.spec!.nodeName, 'Edge-1');
  t.is(pod.metadata!.annotations!['kubernetes.io/config.source'], 'file');
  t.is(pod.metadata!.annotations!['kubernetes.io/config.hash'], pod.metadata!.uid!);
});
