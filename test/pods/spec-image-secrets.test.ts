import test from 'ava';
import { dockerConfigOf, imageRegistry, matchCredentials, pullSecretConfigs } from '../../agent/pods/image-secrets';
import { b64, memoryPodData } from './spec-helpers';

test('image references → registry host and repository path', (t) => {
  t.deepEqual(imageRegistry('busybox'), { host: 'index.docker.io', port: '', path: 'library/busybox' });
  t.deepEqual(imageRegistry('docker.io/team/app:1.2'), { host: 'index.docker.io', port: '', path: 'team/app' });
  t.deepEqual(imageRegistry('registry.example.com:5000/team/app@sha256:abc'), { host: 'registry.example.com', port: '5000', path: 'team/app' });
  t.deepEqual(imageRegistry('localhost/app:dev'), { host: 'localhost', port: '', path: 'app' });
});

const CONFIG = {
  'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
  'registry.example.com:5000': { username: 'r5000', password: 'p' },
  'registry.example.com': { username: 'plain', password: 'p' },
  'registry.example.com/team': { username: 'team', password: 'p' },
  '*.mirror.example': { username: 'glob', password: 'p' },
};

const CASES: [string, string[]][] = [
  ['busybox:1.36', ['hubuser']],
  ['docker.io/library/nginx', ['hubuser']],
  ['registry.example.com/team/app:1', ['team', 'plain']],
  ['registry.example.com/other/app:1', ['plain']],
  ['registry.example.com/teamx/app', ['plain']],
  ['registry.example.com:5000/team/app', ['r5000']],
  ['eu.mirror.example/app', ['glob']],
  ['a.b.mirror.example/app', []],
  ['quay.io/x/y', []],
];

for (const [image, users] of CASES) {
  test(`pull secret matching: ${image} → ${users.join(', ') || 'anonymous'}`, (t) => {
    t.deepEqual(matchCredentials(image, [CONFIG]).map((a) => a.username), users);
  });
}

test('auth field is decoded into username/password; no server address (kubelet sends none, containerd would refuse host:port)', (t) => {
  const [auth] = matchCredentials('busybox', [CONFIG]);
  t.deepEqual(auth, { username: 'hubuser', password: 'hubpass' });
});

test('both secret types are read; unreadable or malformed pull secrets are skipped and reported', async (t) => {
  const data = memoryPodData({
    secrets: [
      { metadata: { namespace: 'ns', name: 'json' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64(JSON.stringify({ auths: { 'r.example': { username: 'u1', password: 'p' } } })) } },
      { metadata: { namespace: 'ns', name: 'cfg' }, type: 'kubernetes.io/dockercfg', data: { '.dockercfg': b64(JSON.stringify({ 'r.example': { username: 'u2', password: 'p' } })) } },
      { metadata: { namespace: 'ns', name: 'bad' }, data: { other: b64('x') } },
    ],
  });
  const problems: string[] = [];
  const configs = await pullSecretConfigs('ns', [{ name: 'json' }, { name: 'cfg' }, { name: 'bad' }, { name: 'missing' }], data, (s) => problems.push(s));
  t.deepEqual(problems, ['bad', 'missing']);
  t.deepEqual(matchCredentials('r.example/app', configs).map((a) => a.username), ['u1', 'u2']);
  t.throws(() => dockerConfigOf({ data: {} }));
});
