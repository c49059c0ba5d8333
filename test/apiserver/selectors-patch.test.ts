import test from 'ava';
import { jsonPatch, mergePatch, strategicMergePatch } from '../harness/apiserver/patch';
import { fieldValue, parseFieldSelector, parseLabelSelector } from '../harness/apiserver/selectors';
import { ApiError } from '../harness/apiserver/status';

const obj = (labels: Record<string, string>) => ({ metadata: { labels } });

test('label selector grammar', (t) => {
  const cases: [string, Record<string, string>, boolean][] = [
    ['a=b', { a: 'b' }, true],
    ['a = b', { a: 'b' }, true],
    ['a==b', { a: 'c' }, false],
    ['a!=b', {}, true],
    ['a=', { a: '' }, true],
    ['a=', {}, false],
    ['a in (x, y)', { a: 'y' }, true],
    ['a in (x,y)', {}, false],
    ['a notin (x,y)', {}, true],
    ['a notin (x,y)', { a: 'x' }, false],
    ['a,!b', { a: '1' }, true],
    ['a,!b', { a: '1', b: '2' }, false],
    ['example.com/role=edge', { 'example.com/role': 'edge' }, true],
    ['n>3', { n: '4' }, true],
    ['n<3', { n: '4' }, false],
    ['', { a: 'b' }, true],
  ];
  for (const [sel, labels, want] of cases) t.is(parseLabelSelector(sel)(obj(labels)), want, `${sel} on ${JSON.stringify(labels)}`);
  for (const bad of ['a in ()', 'a in (', '!', 'a b', 'n>x', 'a=b c']) {
    t.throws(() => parseLabelSelector(bad), { instanceOf: ApiError }, bad);
  }
});

test('field selectors and field values', (t) => {
  const pod = { metadata: { name: 'p', namespace: 'n' }, spec: { nodeName: 'a' }, status: { phase: 'Running' } };
  const opts = { supported: ['spec.nodeName', 'status.phase'], kind: 'Pod', apiVersion: 'v1' };
  t.true(parseFieldSelector('spec.nodeName=a,status.phase!=Pending', opts)(pod));
  t.false(parseFieldSelector('spec.nodeName==b', opts)(pod));
  t.true(parseFieldSelector('metadata.namespace=n', opts)(pod));
  t.throws(() => parseFieldSelector('spec.other=a', opts), { message: 'field label not supported: spec.other' });
  t.throws(() => parseFieldSelector('nonsense', opts), { instanceOf: ApiError });
  t.is(fieldValue({}, 'spec.nodeName'), '');
  t.is(fieldValue({}, 'spec.unschedulable'), 'false');
  t.is(fieldValue({ source: { component: 'kubelet' } }, 'source'), 'kubelet');
});

test('merge patch follows RFC 7386 examples', (t) => {
  t.deepEqual(mergePatch({ a: 'b' }, { a: 'c' }), { a: 'c' });
  t.deepEqual(mergePatch({ a: 'b' }, { b: 'c' }), { a: 'b', b: 'c' });
  t.deepEqual(mergePatch({ a: 'b' }, { a: null }), {});
  t.deepEqual(mergePatch({ a: ['b'] }, { a: 'c' }), { a: 'c' });
  t.deepEqual(mergePatch({ a: [{ b: 'c' }] }, { a: [1] }), { a: [1] });
  t.deepEqual(mergePatch({ e: null }, { a: 1 }), { e: null, a: 1 });
  t.deepEqual(mergePatch({}, { a: { bb: { ccc: null } } }), { a: { bb: {} } });
  t.deepEqual(mergePatch({ a: 'foo' }, 'bar'), 'bar');
});

test('strategic merge: merge keys, atomic lists, $patch directives, $retainKeys', (t) => {
  const pod = { spec: { containers: [{ name: 'a', image: '1', env: [{ name: 'X', value: '1' }] }], tolerations: [{ key: 't' }] } };
  const r = strategicMergePatch('Pod', pod, { spec: { containers: [{ name: 'a', env: [{ name: 'Y', value: '2' }] }], tolerations: [{ key: 'u' }] } }) as any;
  t.deepEqual(r.spec.containers[0].env, [{ name: 'X', value: '1' }, { name: 'Y', value: '2' }]);
  t.deepEqual(r.spec.tolerations, [{ key: 'u' }], 'lists without a merge key are replaced');
  const replacedMap = strategicMergePatch('Pod', { spec: { a: 1, b: 2 } }, { spec: { $patch: 'replace', c: 3 } }) as any;
  t.deepEqual(replacedMap.spec, { c: 3 });
  const deletedMap = strategicMergePatch('Pod', { spec: { a: 1 }, x: 1 }, { spec: { $patch: 'delete' } }) as any;
  t.deepEqual(deletedMap, { x: 1 });
  const retained = strategicMergePatch('Pod', { spec: { strategy: { type: 'A', rolling: { x: 1 } } } }, { spec: { strategy: { $retainKeys: ['type'], type: 'B' } } }) as any;
  t.deepEqual(retained.spec.strategy, { type: 'B' });
  const svc = strategicMergePatch('Service', { spec: { ports: [{ port: 80, name: 'a' }, { port: 443, name: 'b' }] } }, { spec: { ports: [{ port: 443, name: 'tls' }] } }) as any;
  t.deepEqual(svc.spec.ports, [{ port: 80, name: 'a' }, { port: 443, name: 'tls' }], 'Service ports merge by port');
  t.throws(() => strategicMergePatch('Pod', { status: { conditions: [] } }, { status: { conditions: [{ status: 'True' }] } }), { message: /merge key: type/ });
});

test('JSON patch: pointers, escapes, array indices, errors', (t) => {
  const doc = { a: { 'b/c': 1, 'd~e': 2 }, l: [1, 2, 3] };
  t.deepEqual(jsonPatch(doc, [{ op: 'remove', path: '/a/b~1c' }, { op: 'replace', path: '/a/d~0e', value: 3 }]), { a: { 'd~e': 3 }, l: [1, 2, 3] });
  t.deepEqual(jsonPatch(doc, [{ op: 'add', path: '/l/1', value: 9 }, { op: 'add', path: '/l/-', value: 7 }]), { a: doc.a, l: [1, 9, 2, 3, 7] });
  t.deepEqual(jsonPatch(doc, [{ op: 'test', path: '/a', value: { 'd~e': 2, 'b/c': 1 } }]), doc, 'test compares objects regardless of key order');
  t.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }]));
  t.throws(() => jsonPatch(doc, [{ op: 'add', path: '/l/9', value: 1 }]));
  t.throws(() => jsonPatch(doc, [{ op: 'replace', path: '/missing', value: 1 }]));
  t.throws(() => jsonPatch(doc, [{ op: 'frobnicate', path: '/a' }]), { instanceOf: ApiError });
  t.deepEqual(doc, { a: { 'b/c': 1, 'd~e': 2 }, l: [1, 2, 3] }, 'input untouched');
});
