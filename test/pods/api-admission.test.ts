/**
 * Admission and status patches as pure functions, table-driven: which pods a node refuses and why
 * (kubelet's reasons and messages), and the strategic merge patch between two pod statuses.
 */
import test from 'ava';
import type { Node, Pod, PodStatus } from 'kubernetes-types/core/v1';
import { admitPod, podRequests, tolerates } from '../../agent/pods/admission';
import { desiredStatus, statusPatch } from '../../agent/pods/status-patcher';
import { strategicMergePatch } from '../harness/apiserver/patch';

const node: Node = {
  metadata: { name: 'n1', labels: { zone: 'a', tier: '3' } },
  spec: { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoExecute' }, { key: 'soft', effect: 'NoSchedule' }] },
  status: { allocatable: { cpu: '2', memory: '1Gi', pods: '3' } },
};

function pod(name: string, spec: Partial<NonNullable<Pod['spec']>> = {}, container: Record<string, unknown> = {}): Pod {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}` },
    spec: { nodeName: 'n1', tolerations: [{ key: 'dedicated', operator: 'Exists' }], containers: [{ name: 'c', image: 'i', ...container }], ...spec },
  };
}

const cases: { name: string; pod: Pod; others?: Pod[]; reason?: string; message?: string }[] = [
  { name: 'fits', pod: pod('a', {}, { resources: { requests: { cpu: '500m', memory: '100Mi' } } }) },
  { name: 'cpu', pod: pod('b', {}, { resources: { requests: { cpu: '1500m' } } }), others: [pod('x', {}, { resources: { requests: { cpu: '1' } } })], reason: 'OutOfcpu', message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000" },
  { name: 'memory from limits', pod: pod('c', {}, { resources: { limits: { memory: '2Gi' } } }), reason: 'OutOfmemory', message: "Node didn't have enough resource: memory, requested: 2147483648, used: 0, capacity: 1073741824" },
  { name: 'pods', pod: pod('d'), others: [pod('x'), pod('y'), pod('z')], reason: 'OutOfpods', message: "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3" },
  { name: 'nodeSelector', pod: pod('e', { nodeSelector: { zone: 'b' } }), reason: 'NodeAffinity', message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector" },
  {
    name: 'affinity Gt',
    pod: pod('f', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'tier', operator: 'Gt', values: ['5'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n2'] }] }] } } } }),
    reason: 'NodeAffinity',
  },
  { name: 'affinity one term matches', pod: pod('g', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'tier', operator: 'Gt', values: ['5'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }] } } } }) },
  { name: 'node name', pod: pod('h', { nodeName: 'n2' }), reason: 'NodeName', message: "Predicate NodeName failed: node(s) didn't match the requested node name" },
  { name: 'host port taken', pod: pod('i', {}, { ports: [{ containerPort: 80, hostPort: 8080 }] }), others: [pod('x', {}, { ports: [{ containerPort: 1, hostPort: 8080, hostIP: '10.0.0.1' }] })], reason: 'NodePorts' },
  { name: 'host port other protocol', pod: pod('j', {}, { ports: [{ containerPort: 80, hostPort: 8080, protocol: 'UDP' }] }), others: [pod('x', {}, { ports: [{ containerPort: 1, hostPort: 8080 }] })] },
  { name: 'NoExecute taint', pod: pod('k', { tolerations: [] }), reason: 'TaintToleration', message: 'Predicate TaintToleration failed: node(s) had untolerated taint' },
  { name: 'static pods ignore taints', pod: { ...pod('l', { tolerations: [] }), metadata: { name: 'l', uid: 'l', annotations: { 'kubernetes.io/config.source': 'file' } } } },
];

for (const c of cases) {
  test(`admission: ${c.name}`, (t) => {
    const r = admitPod(c.pod, node, c.others ?? []);
    if (!c.reason) {
      t.deepEqual(r, { admit: true });
      return;
    }
    t.false(r.admit);
    if (r.admit) return;
    t.is(r.reason, c.reason);
    if (c.message) t.is(r.message, c.message);
  });
}

test('pod requests: max of the sum of containers and the largest init container, plus overhead', (t) => {
  const p = pod('r', {
    initContainers: [{ name: 'i', image: 'i', resources: { requests: { cpu: '3' } } }],
    overhead: { memory: '10Mi' },
  }, { resources: { requests: { cpu: '1', memory: '1Mi' } } });
  t.deepEqual(Object.fromEntries(podRequests(p)), { cpu: 3000, memory: 11 * 2 ** 20 });
});

test('tolerations: Exists with an empty key tolerates everything; Equal compares values', (t) => {
  const taint = { key: 'k', value: 'v', effect: 'NoExecute' };
  t.true(tolerates({ operator: 'Exists' }, taint));
  t.true(tolerates({ key: 'k', value: 'v' }, taint));
  t.false(tolerates({ key: 'k', value: 'w' }, taint));
  t.false(tolerates({ key: 'k', operator: 'Exists', effect: 'NoSchedule' }, taint));
});

const base: PodStatus = {
  phase: 'Running',
  nominatedNodeName: 'keep-me',
  conditions: [
    { type: 'Ready', status: 'True', lastTransitionTime: '2024-01-01T00:00:00Z' },
    { type: 'example.com/gate', status: 'True' },
  ],
  containerStatuses: [{ name: 'app', image: 'i', imageID: 'x', ready: true, restartCount: 0, state: { running: { startedAt: '2024-01-01T00:00:00Z' } } }],
};

test('status patch: none when nothing the kubelet owns changed', (t) => {
  const mine: PodStatus = { phase: 'Running', conditions: [base.conditions![0]], containerStatuses: base.containerStatuses };
  t.is(statusPatch(base, desiredStatus(base, mine)), undefined);
});

test('status patch: a state change removes the old state, foreign conditions and fields are kept', (t) => {
  const mine: PodStatus = {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: '2024-01-01T00:01:00Z' }],
    containerStatuses: [{
      name: 'app', image: 'i', imageID: 'x', ready: false, restartCount: 1,
      state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1 } },
    }],
  };
  const patch = statusPatch(base, desiredStatus(base, mine));
  t.truthy(patch);
  const result = strategicMergePatch('Pod', { status: base } as never, { status: patch } as never) as unknown as { status: PodStatus };
  t.deepEqual(result.status.containerStatuses, mine.containerStatuses);
  t.deepEqual(result.status.conditions, [mine.conditions![0], base.conditions![1]]);
  t.is(result.status.nominatedNodeName, 'keep-me');
  t.is(result.status.phase, 'Running');
});
