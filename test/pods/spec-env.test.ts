import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { expandCommandAndArgs, expandVars, makeEnvironmentVariables, serviceEnvVars } from '../../agent/pods/env';
import { ContainerStartError } from '../../agent/pods/images';
import { standalonePodData } from '../../agent/pods/pod-data';
import { b64, memoryPodData } from './spec-helpers';

const DATA = memoryPodData({
  configMaps: [{ metadata: { namespace: 'ns1', name: 'cfg' }, data: { MODE: 'fast', 'bad key': 'x', level: '3' } }],
  secrets: [{ metadata: { namespace: 'ns1', name: 'creds' }, data: { PASSWORD: b64('s3cret'), token: b64('tok') } }],
  services: [
    { metadata: { namespace: 'ns1', name: 'web-api' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] } },
    { metadata: { namespace: 'ns1', name: 'headless' }, spec: { clusterIP: 'None', ports: [{ port: 1 }] } },
    { metadata: { namespace: 'default', name: 'kubernetes' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] } },
    { metadata: { namespace: 'default', name: 'other' }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 9 }] } },
  ],
});

const CTX = { podIPs: ['10.1.0.5'], hostIPs: ['192.0.2.1'], nodeAllocatable: { cpuMilli: 4000, memoryBytes: 8 * 2 ** 30, ephemeralStorageBytes: 0 }, data: DATA };

function pod(container: object, spec: object = {}): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns1', uid: 'u-1', labels: { app: 'web' }, annotations: { note: 'hi' } },
    spec: { nodeName: 'edge1', serviceAccountName: 'sa1', ...spec, containers: [{ name: 'c', image: 'i', ...container }] },
  };
}

const asMap = (envs: { key: string; value: string }[]) => Object.fromEntries(envs.map((e) => [e.key, e.value]));

test('$(VAR) expansion: defined replaced, undefined kept, $$ escapes, lone $ literal', (t) => {
  const m = (n: string) => ({ A: 'x', B: 'y' })[n];
  t.is(expandVars('$(A)-$(B)', m), 'x-y');
  t.is(expandVars('$(NOPE)', m), '$(NOPE)');
  t.is(expandVars('$$(A)', m), '$(A)');
  t.is(expandVars('cost $5 $', m), 'cost $5 $');
  t.is(expandVars('$(A', m), '$(A');
});

test('env: literal with expansion, downward API fields, resources, ConfigMap and Secret keys, envFrom with prefix, service links', async (t) => {
  const p = pod({
    envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }, { secretRef: { name: 'creds' } }],
    env: [
      { name: 'GREETING', value: 'hello $(POD_NAME)' }, // POD_NAME is defined later: stays literal, as in kubelet
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'WHO', value: '$(POD_NAME)@$(NODE)' },
      { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
      { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
      { name: 'NOTE', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['note']" } } },
      { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
      { name: 'IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
      { name: 'HOST', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
      { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
      { name: 'CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
      { name: 'CPU_REQ_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
      { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } },
      { name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } },
      { name: 'OPT', valueFrom: { secretKeyRef: { name: 'creds', key: 'missing', optional: true } } },
      { name: 'SVC', value: '$(WEB_API_SERVICE_HOST):$(WEB_API_SERVICE_PORT)' },
    ],
    resources: { limits: { memory: '64Mi' }, requests: { cpu: '250m' } },
  });
  const env = asMap(await makeEnvironmentVariables(p, p.spec!.containers[0], CTX));
  t.like(env, {
    GREETING: 'hello $(POD_NAME)', POD_NAME: 'p', WHO: 'p@$(NODE)', NODE: 'edge1', NS: 'ns1', UID: 'u-1', APP: 'web', NOTE: 'hi', SA: 'sa1',
    IPS: '10.1.0.5', HOST: '192.0.2.1', MEM_MI: '64', CPU_LIMIT: '4', CPU_REQ_M: '250', MODE: 'fast', PW: 's3cret',
    CFG_MODE: 'fast', CFG_level: '3', PASSWORD: 's3cret', token: 'tok', SVC: '10.96.0.20:80',
    WEB_API_SERVICE_HOST: '10.96.0.20', WEB_API_SERVICE_PORT: '80', WEB_API_SERVICE_PORT_HTTP: '80', WEB_API_SERVICE_PORT_DNS: '53',
    WEB_API_PORT: 'tcp://10.96.0.20:80', WEB_API_PORT_53_UDP: 'udp://10.96.0.20:53', WEB_API_PORT_53_UDP_PROTO: 'udp',
    WEB_API_PORT_80_TCP_PORT: '80', WEB_API_PORT_80_TCP_ADDR: '10.96.0.20', KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_PORT_443_TCP: 'tcp://10.96.0.1:443',
  });
  t.false('OPT' in env);
  t.false('CFG_bad key' in env, 'keys that are not valid env names are skipped');
  t.false(Object.keys(env).some((k) => k.startsWith('HEADLESS_') || k.startsWith('OTHER_')), 'headless and other namespaces give no variables');
});

test('enableServiceLinks: false keeps only the kubernetes service; explicit env wins over service variables', async (t) => {
  const p = pod({ env: [{ name: 'KUBERNETES_SERVICE_HOST', value: 'mine' }] }, { enableServiceLinks: false });
  const env = asMap(await makeEnvironmentVariables(p, p.spec!.containers[0], CTX));
  t.is(env.KUBERNETES_SERVICE_HOST, 'mine');
  t.is(env.KUBERNETES_SERVICE_PORT, '443');
  t.false('WEB_API_SERVICE_HOST' in env);
});

test('missing ConfigMap, Secret or key → CreateContainerConfigError with the upstream message; optional ones are skipped', async (t) => {
  const cases: [object, string][] = [
    [{ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }] }, 'configmap "nope" not found'],
    [{ env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }] }, 'secret "nope" not found'],
    [{ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }] }, "couldn't find key k in ConfigMap ns1/cfg"],
    [{ env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }, "couldn't find key k in Secret ns1/creds"],
    [{ envFrom: [{ configMapRef: { name: 'nope' } }] }, 'configmap "nope" not found'],
  ];
  for (const [c, message] of cases) {
    const p = pod(c);
    const err = await t.throwsAsync(makeEnvironmentVariables(p, p.spec!.containers[0], CTX));
    t.true(err instanceof ContainerStartError);
    t.is((err as ContainerStartError).reason, 'CreateContainerConfigError');
    t.is(err!.message, message);
  }
  const optional = pod({ envFrom: [{ configMapRef: { name: 'nope', optional: true } }], env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } }] });
  t.false((await makeEnvironmentVariables(optional, optional.spec!.containers[0], CTX)).some((e) => e.key === 'X'));
});

test('standalone lookup: a reference fails with a clear reason; no service variables', async (t) => {
  const p = pod({ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }] });
  const err = await t.throwsAsync(makeEnvironmentVariables(p, p.spec!.containers[0], { ...CTX, data: standalonePodData() }));
  t.regex(err!.message, /configmap ns1\/cfg: keelson runs standalone \(no apiserver\)/);
  const plain = pod({ env: [{ name: 'A', value: '1' }] });
  t.deepEqual(await makeEnvironmentVariables(plain, plain.spec!.containers[0], { ...CTX, data: standalonePodData() }), [{ key: 'A', value: '1' }]);
});

test('command and args expand $(VAR) from the final environment', (t) => {
  const r = expandCommandAndArgs({ name: 'c', command: ['echo', '$(A)'], args: ['$(B)-$$(A)', '$(C)'] }, [{ key: 'A', value: '1' }, { key: 'B', value: '2' }]);
  t.deepEqual(r, { command: ['echo', '1'], args: ['2-$(A)', '$(C)'] });
});

test('service variables for a service without named ports', (t) => {
  const vars = serviceEnvVars([{ metadata: { name: 'db' }, spec: { clusterIP: '10.0.0.3', ports: [{ port: 5432 }] } }]);
  t.deepEqual(vars.map((v) => v.key), ['DB_SERVICE_HOST', 'DB_SERVICE_PORT', 'DB_PORT', 'DB_PORT_5432_TCP', 'DB_PORT_5432_TCP_PROTO', 'DB_PORT_5432_TCP_PORT', 'DB_PORT_5432_TCP_ADDR']);
});
