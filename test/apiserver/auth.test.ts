import { X509Certificate, createHmac } from 'node:crypto';
import test from 'ava';
import { defaultPolicy, startTestApiserver } from '../harness/apiserver';
import type { TestApiserver } from '../harness/apiserver';
import { call } from './helpers';

let api: TestApiserver;

test.before(async () => {
  api = await startTestApiserver({ tokens: { 'viewer-token': { username: 'viewer', groups: ['viewers'] } } });
});

test.after.always(async () => {
  await api?.stop();
});

const TOKEN_ID = 'abcdef';
const TOKEN_SECRET = '0123456789abcdef';

function bootstrapSecret(id: string, secret: string, extra: Record<string, string> = {}) {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    data: Object.fromEntries(
      Object.entries({ 'token-id': id, 'token-secret': secret, 'usage-bootstrap-authentication': 'true', 'usage-bootstrap-signing': 'true', ...extra }).map(([k, v]) => [k, b64(v)]),
    ),
  };
}

test.serial('bearer tokens: admin allowed, unknown token 401, policy decides for other users', async (t) => {
  t.is((await call(api, 'GET', '/api/v1/pods')).status, 200);
  const bad = await call(api, 'GET', '/api/v1/pods', { token: 'nope' });
  t.is(bad.status, 401);
  t.like(bad.body, { kind: 'Status', reason: 'Unauthorized', code: 401 });
  const denied = await call(api, 'GET', '/api/v1/namespaces/default/pods', { token: 'viewer-token' });
  t.is(denied.status, 403);
  t.is(denied.body.reason, 'Forbidden');
  t.regex(denied.body.message, /User "viewer" cannot list resource "pods" in API group "" in the namespace "default"/);
  api.setPolicy([...defaultPolicy(), { groups: ['viewers'], verbs: ['get', 'list', 'watch'], resources: ['pods'], namespaces: ['default'] }]);
  t.is((await call(api, 'GET', '/api/v1/namespaces/default/pods', { token: 'viewer-token' })).status, 200);
  t.is((await call(api, 'GET', '/api/v1/namespaces/kube-system/pods', { token: 'viewer-token' })).status, 403);
  t.is((await call(api, 'GET', '/api/v1/pods', { token: 'viewer-token' })).status, 403, 'cluster-wide list not covered');
  t.is((await call(api, 'POST', '/api/v1/namespaces/default/pods', { token: 'viewer-token', body: {} })).status, 403);
  // Taking permissions away.
  api.setPolicy(defaultPolicy());
  t.is((await call(api, 'GET', '/api/v1/namespaces/default/pods', { token: 'viewer-token' })).status, 403);
});

test('client certificates: CN is the user, O the groups; a foreign CA is refused', async (t) => {
  const node = await api.clientCertFor('system:node:n1', ['system:nodes']);
  const asNode = await call(api, 'GET', '/api/v1/nodes', { cert: node });
  t.is(asNode.status, 200);
  const ssar = await call(api, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
    cert: node,
    body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb: 'update', resource: 'nodes', subresource: 'status', name: 'n1' } } },
  });
  t.is(ssar.status, 201);
  t.true(ssar.body.status.allowed);
  const plain = await api.clientCertFor('someone', ['team-a', 'team-b']);
  const denied = await call(api, 'GET', '/api/v1/nodes', { cert: plain });
  t.is(denied.status, 403);
  t.regex(denied.body.message, /User "someone"/);
  api.addToken('x', { username: 'x', groups: [] });
  const sar = await call(api, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    body: { spec: { user: 'someone', groups: ['team-a'], resourceAttributes: { verb: 'get', resource: 'pods', namespace: 'default' } } },
  });
  t.is(sar.status, 201);
  t.false(sar.body.status.allowed);
  const other = await startTestApiserver();
  t.teardown(() => other.stop());
  const foreign = await other.clientCertFor('admin', ['system:masters']);
  const refused = await call(api, 'GET', '/api/v1/nodes', { cert: foreign });
  t.is(refused.status, 401);
});

test('anonymous: only cluster-info and health/version; everything else 403', async (t) => {
  const info = await call(api, 'GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info', { token: null });
  t.is(info.status, 200);
  t.truthy(info.body.data.kubeconfig);
  t.is((await call(api, 'GET', '/healthz', { token: null })).status, 200);
  t.is((await call(api, 'GET', '/version', { token: null })).status, 200);
  const pods = await call(api, 'GET', '/api/v1/pods', { token: null });
  t.is(pods.status, 403);
  t.regex(pods.body.message, /User "system:anonymous"/);
  t.is((await call(api, 'GET', '/api/v1/namespaces/kube-public/configmaps', { token: null })).status, 403);
  t.is((await call(api, 'GET', '/api/v1/namespaces/kube-public/configmaps/other', { token: null })).status, 403);
  t.is((await call(api, 'GET', '/api', { token: null })).status, 403, 'discovery needs authentication, as with RBAC defaults');
});

test.serial('bootstrap tokens authenticate as system:bootstrap:<id> and may create CSRs', async (t) => {
  api.store.create(bootstrapSecret(TOKEN_ID, TOKEN_SECRET));
  const token = `${TOKEN_ID}.${TOKEN_SECRET}`;
  const review = await call(api, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
  t.is(review.status, 201);
  t.true(review.body.status.authenticated);
  t.is(review.body.status.user.username, `system:bootstrap:${TOKEN_ID}`);
  t.true(review.body.status.user.groups.includes('system:bootstrappers'));
  const badReview = await call(api, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: { spec: { token: `${TOKEN_ID}.ffffffffffffffff` } } });
  t.falsy(badReview.body.status.authenticated);
  t.is((await call(api, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests', { token })).status, 200);
  t.is((await call(api, 'GET', '/api/v1/pods', { token })).status, 403);
  t.is((await call(api, 'GET', '/api/v1/pods', { token: `${TOKEN_ID}.aaaaaaaaaaaaaaaa` })).status, 401);
  api.store.create(bootstrapSecret('zzzzzz', 'zzzzzzzzzzzzzzzz', { expiration: '2000-01-01T00:00:00Z' }));
  t.is((await call(api, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests', { token: 'zzzzzz.zzzzzzzzzzzzzzzz' })).status, 401, 'expired token');
});

test.serial('cluster-info carries a kubeconfig with the test CA and a JWS per signing bootstrap token', async (t) => {
  api.store.create(bootstrapSecret('qwerty', '1234567890qwerty'));
  const id = 'qwerty';
  let cm: any;
  for (let i = 0; i < 50; i++) {
    cm = (await call(api, 'GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info', { token: null })).body;
    if (cm.data[`jws-kubeconfig-${id}`]) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const kubeconfig: string = cm.data.kubeconfig;
  t.true(kubeconfig.includes(Buffer.from(api.caPem).toString('base64')));
  t.true(kubeconfig.includes(api.url));
  const jws: string = cm.data[`jws-kubeconfig-${id}`];
  t.truthy(jws, JSON.stringify(Object.keys(cm.data)));
  const [header, payload, signature] = jws.split('.');
  t.is(payload, '', 'detached payload');
  t.deepEqual(JSON.parse(Buffer.from(header!, 'base64url').toString()), { alg: 'HS256', kid: id });
  const expected = createHmac('sha256', `${id}.1234567890qwerty`)
    .update(`${header}.${Buffer.from(kubeconfig).toString('base64url')}`)
    .digest('base64url');
  t.is(signature, expected);
  // Deleting the token removes its signature.
  api.store.delete('Secret', 'kube-system', `bootstrap-token-${id}`);
  for (let i = 0; i < 50; i++) {
    cm = (await call(api, 'GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info')).body;
    if (!cm.data[`jws-kubeconfig-${id}`]) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.is(cm.data[`jws-kubeconfig-${id}`], undefined);
  t.truthy(cm.data[`jws-kubeconfig-${TOKEN_ID}`], 'other tokens keep theirs');
});

test.serial('CSR: approval → signed by the built-in signer with the CA, subject and duration honoured', async (t) => {
  const { csrPem } = await api.pki.createCsr('system:node:edge-1', ['system:nodes']);
  const token = `${TOKEN_ID}.${TOKEN_SECRET}`;
  const created = await call(api, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
    token,
    body: {
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest',
      metadata: { generateName: 'node-csr-' },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'], expirationSeconds: 3600 },
    },
  });
  t.is(created.status, 201, JSON.stringify(created.body));
  t.is(created.body.spec.username, `system:bootstrap:${TOKEN_ID}`);
  const name = created.body.metadata.name;
  const approve = await call(api, 'PUT', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}/approval`, {
    body: { ...created.body, status: { conditions: [{ type: 'Approved', status: 'True', reason: 'Test', message: 'ok' }] } },
  });
  t.is(approve.status, 200);
  await api.csrSignerIdle();
  let csr: any;
  for (let i = 0; i < 100; i++) {
    csr = (await call(api, 'GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`, { token })).body;
    if (csr.status.certificate) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.truthy(csr.status.certificate);
  const cert = new X509Certificate(Buffer.from(csr.status.certificate, 'base64').toString());
  t.true(cert.verify(new X509Certificate(api.caPem).publicKey));
  t.true(cert.checkIssued(new X509Certificate(api.caPem)));
  t.regex(cert.subject, /CN=system:node:edge-1/);
  t.regex(cert.subject, /O=system:nodes/);
  const lifetime = (Date.parse(cert.validTo) - Date.now()) / 1000;
  t.true(lifetime > 3500 && lifetime <= 3600, `lifetime ${lifetime}`);
});

test.serial('CSR: denied is never signed; a bad kubelet subject fails; auto-approve signs kubelet CSRs', async (t) => {
  const { csrPem, keyPem } = await api.pki.createCsr('system:node:edge-2', ['system:nodes']);
  const request = Buffer.from(csrPem).toString('base64');
  const mk = (name: string, req = request) =>
    call(api, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
      body: { metadata: { name }, spec: { request: req, signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] } },
    });
  const denied = await mk('denied');
  await call(api, 'PATCH', '/apis/certificates.k8s.io/v1/certificatesigningrequests/denied/approval', {
    contentType: 'application/merge-patch+json',
    body: { status: { conditions: [{ type: 'Denied', status: 'True', reason: 'No' }] } },
  });
  t.is(denied.status, 201);
  const bad = await api.pki.createCsr('someone-else', ['system:nodes']);
  await mk('bad-subject', Buffer.from(bad.csrPem).toString('base64'));
  await call(api, 'PATCH', '/apis/certificates.k8s.io/v1/certificatesigningrequests/bad-subject/approval', {
    contentType: 'application/merge-patch+json',
    body: { status: { conditions: [{ type: 'Approved', status: 'True', reason: 'Yes' }] } },
  });
  api.setAutoApproveCsrs(true);
  t.teardown(() => api.setAutoApproveCsrs(false));
  await mk('auto');
  let auto: any;
  for (let i = 0; i < 100; i++) {
    await api.csrSignerIdle();
    auto = api.store.get('CertificateSigningRequest', undefined, 'auto');
    if (auto?.status?.certificate) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.truthy(auto.status.certificate);
  t.true(auto.status.conditions.some((c: any) => c.type === 'Approved' && c.reason === 'AutoApproved'));
  const certPem = Buffer.from(auto.status.certificate, 'base64').toString();
  const asNode = await call(api, 'GET', '/api/v1/nodes', { cert: { certPem, keyPem } });
  t.is(asNode.status, 200, 'the signed certificate authenticates as the node');
  const failed = api.store.get('CertificateSigningRequest', undefined, 'bad-subject');
  t.true(failed!.status.conditions.some((c: any) => c.type === 'Failed'));
  t.falsy(failed!.status.certificate);
  t.falsy(api.store.get('CertificateSigningRequest', undefined, 'denied')!.status.certificate);
});

test('ServiceAccount TokenRequest issues a token that authenticates as the service account', async (t) => {
  await call(api, 'POST', '/api/v1/namespaces/default/serviceaccounts', { body: { metadata: { name: 'sa1' } } });
  const tr = await call(api, 'POST', '/api/v1/namespaces/default/serviceaccounts/sa1/token', { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } } });
  t.is(tr.status, 201);
  const review = await call(api, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: { spec: { token: tr.body.status.token } } });
  t.is(review.body.status.user.username, 'system:serviceaccount:default:sa1');
  t.is((await call(api, 'POST', '/api/v1/namespaces/default/serviceaccounts/none/token', { body: {} })).status, 404);
});
