import test from 'ava';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigMap, Pod } from 'kubernetes-types/core/v1';
import { ErrorCodes, KeelsonError } from '../../agent/errors';
import { ApiStatusError, isAlreadyExists, isConflict, isNotFound } from '../../agent/kube/api-error';
import { createKubeClient } from '../../agent/kube/client';
import type { WatchEvent } from '../../agent/kube/client';
import { kubeconfigFromValues } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import { createLogger } from '../../agent/log';
import { createTlsFixtures } from './tls-fixtures';

const logger = createLogger({ level: 'silent', format: 'json' });

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Route = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void;

async function serve(t: import('ava').ExecutionContext, route: Route, server: http.Server = http.createServer()) {
  const seen: Seen[] = [];
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(s);
      route(req, res, s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections?.();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return { seen, port, url: `${server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${port}` };
}

function json(res: http.ServerResponse, code: number, body: unknown) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name: 'web', resourceVersion: '7' } };

test('CRUD calls use upstream paths, verbs, content types and headers', async (t) => {
  const srv = await serve(t, (req, res, s) => json(res, req.method === 'POST' ? 201 : 200, s.url.includes('?') && req.method === 'GET' ? { items: [{ metadata: { name: 'a' } }], metadata: { resourceVersion: '42', continue: 'c2' } } : pod));
  const client = createKubeClient(kubeconfigFromValues({ server: srv.url, token: 'secret-token' }), { logger, userAgent: 'keelson/test' });
  t.teardown(() => client.close());
  await client.get(Resources.pods, 'web', { namespace: 'default' });
  const list = await client.list(Resources.endpointslices, { namespace: 'kube-system', labelSelector: 'a=b', limit: 10, continue: 'c1' });
  t.deepEqual(list.items, [{ metadata: { name: 'a' }, kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' }]);
  t.is(list.metadata.resourceVersion, '42');
  await client.create(Resources.pods, { metadata: { namespace: 'default', name: 'web' } });
  await client.update(Resources.pods, pod);
  await client.updateStatus(Resources.pods, pod);
  await client.patch(Resources.nodes, 'n1', { metadata: { labels: { a: 'b' } } }, { type: 'strategic', subresource: 'status' });
  await client.patch(Resources.pods, 'web', { metadata: { labels: { a: 'b' } } }, { type: 'merge', namespace: 'default' });
  await client.patch(Resources.leases, 'n1', [{ op: 'replace', path: '/spec/renewTime', value: 'x' }], { type: 'json', namespace: 'kube-node-lease' });
  await client.delete(Resources.pods, 'web', { namespace: 'default', options: { gracePeriodSeconds: 0, preconditions: { uid: 'u1' } } });
  await client.create(Resources.selfsubjectaccessreviews, { spec: { resourceAttributes: { verb: 'get', resource: 'pods' } } });
  const rows = srv.seen.map((s) => `${s.method} ${s.url} ${s.headers['content-type'] ?? ''}`);
  t.deepEqual(rows, [
    'GET /api/v1/namespaces/default/pods/web ',
    'GET /apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?labelSelector=a%3Db&limit=10&continue=c1 ',
    'POST /api/v1/namespaces/default/pods application/json',
    'PUT /api/v1/namespaces/default/pods/web application/json',
    'PUT /api/v1/namespaces/default/pods/web/status application/json',
    'PATCH /api/v1/nodes/n1/status application/strategic-merge-patch+json',
    'PATCH /api/v1/namespaces/default/pods/web application/merge-patch+json',
    'PATCH /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1 application/json-patch+json',
    'DELETE /api/v1/namespaces/default/pods/web application/json',
    'POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews application/json',
  ]);
  t.is(srv.seen[0]!.headers.authorization, 'Bearer secret-token');
  t.is(srv.seen[0]!.headers['user-agent'], 'keelson/test');
  t.is(srv.seen[0]!.headers.accept, 'application/json');
  t.deepEqual(JSON.parse(srv.seen[2]!.body), { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name: 'web' } });
  t.deepEqual(JSON.parse(srv.seen[8]!.body), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: 'u1' } });
  t.like(JSON.parse(srv.seen[9]!.body), { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1' });
  const agentSockets = new Set(srv.seen.map((s) => s.headers.connection));
  t.deepEqual([...agentSockets], ['keep-alive']);
});

test('Status error bodies become KEELSON_ERR_API_STATUS with code, reason and the object', async (t) => {
  const srv = await serve(t, (req, res) => {
    if (req.url!.includes('/pods/missing')) return json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'pods "missing" not found', details: { name: 'missing', kind: 'pods' } });
    if (req.method === 'PUT') return json(res, 409, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Conflict', code: 409, message: 'the object has been modified' });
    if (req.method === 'POST') return json(res, 409, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'AlreadyExists', code: 409, message: 'exists' });
    res.writeHead(503, { 'Content-Type': 'text/plain' });
    res.end('upstream connect error\n');
  });
  const client = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger });
  t.teardown(() => client.close());
  const notFound = await t.throwsAsync(client.get(Resources.pods, 'missing', { namespace: 'default' }));
  t.true(notFound instanceof ApiStatusError);
  t.is((notFound as ApiStatusError).code, ErrorCodes.API_STATUS);
  t.like((notFound as ApiStatusError).status, { code: 404, reason: 'NotFound', message: 'pods "missing" not found' });
  t.is((notFound as ApiStatusError).object, 'Pod default/missing');
  t.true(isNotFound(notFound));
  const conflict = await t.throwsAsync(client.update(Resources.pods, pod));
  t.true(isConflict(conflict));
  t.false(isAlreadyExists(conflict));
  t.true(isAlreadyExists(await t.throwsAsync(client.create(Resources.nodes, { metadata: { name: 'n1' } }))));
  const unavailable = (await t.throwsAsync(client.get(Resources.nodes, 'n1'))) as ApiStatusError;
  t.like(unavailable.status, { code: 503, reason: '', message: 'upstream connect error' });
  t.is(unavailable.object, 'Node n1');
});

test('connection refused and a silent server give KEELSON_ERR_API_UNREACHABLE within the deadline', async (t) => {
  const srv = await serve(t, () => {
    /* never answers */
  });
  const silent = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger, timeoutMs: 200 });
  t.teardown(() => silent.close());
  const started = Date.now();
  const err = (await t.throwsAsync(silent.get(Resources.nodes, 'n1'))) as KeelsonError;
  t.is(err.code, ErrorCodes.API_UNREACHABLE);
  t.true(Date.now() - started < 2000);
  t.true(err.message.includes('200 ms'), err.message);

  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const freePort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const refused = createKubeClient(kubeconfigFromValues({ server: `http://127.0.0.1:${freePort}` }), { logger });
  t.teardown(() => refused.close());
  const err2 = (await t.throwsAsync(refused.list(Resources.pods))) as KeelsonError;
  t.is(err2.code, ErrorCodes.API_UNREACHABLE);
  t.true(err2.message.includes('ECONNREFUSED'), err2.message);
  const watchErr = (await t.throwsAsync(refused.watch(Resources.pods, {}, () => {}).done)) as KeelsonError;
  t.is(watchErr.code, ErrorCodes.API_UNREACHABLE);
});

test('watch streams events split across writes, ends "closed" when the server ends it', async (t) => {
  const big = 'y'.repeat(3 * 1024 * 1024);
  const srv = await serve(t, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const lines = [
      { type: 'ADDED', object: { metadata: { name: 'a', namespace: 'd', resourceVersion: '2' }, data: { v: 'ünïcødé' } } },
      { type: 'MODIFIED', object: { metadata: { name: 'big', namespace: 'd', resourceVersion: '3' }, data: { v: big } } },
      { type: 'BOOKMARK', object: { metadata: { resourceVersion: '4' } } },
      { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' } },
    ]
      .map((l) => JSON.stringify(l) + '\n')
      .join('');
    const bytes = Buffer.from(lines);
    // write in odd-sized pieces, cutting inside the multi-byte characters too
    let i = 0;
    const step = () => {
      if (i >= bytes.length) return res.end();
      const n = i < 200 ? 7 : 65521;
      res.write(bytes.subarray(i, i + n));
      i += n;
      setImmediate(step);
    };
    step();
  });
  const client = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger });
  t.teardown(() => client.close());
  const events: WatchEvent<ConfigMap>[] = [];
  let opened = 0;
  let bytes = 0;
  const handle = client.watch(Resources.configmaps, { namespace: 'd', resourceVersion: '1', timeoutSeconds: 333, fieldSelector: 'metadata.name=a', onOpen: () => opened++, onProgress: (n) => (bytes += n) }, (e) => events.push(e));
  t.is(await handle.done, 'closed');
  t.is(opened, 1);
  t.true(bytes > big.length);
  t.deepEqual(events.map((e) => e.type), ['ADDED', 'MODIFIED', 'BOOKMARK', 'ERROR']);
  t.is((events[0]!.object as ConfigMap).data!.v, 'ünïcødé');
  t.is((events[1]!.object as ConfigMap).data!.v!.length, big.length);
  t.is(srv.seen[0]!.url, '/api/v1/namespaces/d/configmaps?watch=true&fieldSelector=metadata.name%3Da&resourceVersion=1&timeoutSeconds=333&allowWatchBookmarks=true');
});

test('watch: abort resolves or rejects with the reason; a dropped stream and a non-200 answer reject', async (t) => {
  let mode = 'hold';
  const srv = await serve(t, (_req, res) => {
    if (mode === 'gone') return json(res, 410, { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '2' } } }) + '\n');
    if (mode === 'drop') setTimeout(() => res.socket?.destroy(), 20);
    if (mode === 'garbage') res.write('this is not json\n');
  });
  const client = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger });
  t.teardown(() => client.close());
  const seen: string[] = [];
  const h1 = client.watch(Resources.configmaps, { onOpen: () => h1.abort() }, (e) => seen.push(e.type));
  t.is(await h1.done, 'aborted');
  const h2 = client.watch(Resources.configmaps, {}, () => h2.abort(new Error('stalled')));
  await t.throwsAsync(h2.done, { message: 'stalled' });
  mode = 'drop';
  const dropped = (await t.throwsAsync(client.watch(Resources.configmaps, {}, () => {}).done)) as KeelsonError;
  t.is(dropped.code, ErrorCodes.API_UNREACHABLE);
  mode = 'garbage';
  const garbage = (await t.throwsAsync(client.watch(Resources.configmaps, {}, () => {}).done)) as KeelsonError;
  t.true(garbage.message.includes('malformed JSON'), garbage.message);
  mode = 'gone';
  const gone = (await t.throwsAsync(client.watch(Resources.configmaps, { resourceVersion: '1' }, () => {}).done)) as ApiStatusError;
  t.like(gone.status, { code: 410, reason: 'Expired' });
});

test('token files are read again after the refresh interval', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), 'one\n');
  const srv = await serve(t, (_req, res) => json(res, 200, {}));
  const config = kubeconfigFromValues({ server: srv.url });
  const client = createKubeClient({ ...config, credentials: { tokenFile: join(dir, 'token') } }, { logger, tokenFileRefreshMs: 0 });
  t.teardown(() => client.close());
  await client.get(Resources.nodes, 'n');
  writeFileSync(join(dir, 'token'), 'two\n');
  await client.get(Resources.nodes, 'n');
  t.deepEqual(srv.seen.map((s) => s.headers.authorization), ['Bearer one', 'Bearer two']);
});

test('TLS: verifies the server against the CA, presents the client certificate, and setCredentials swaps it without dropping an open watch', async (t) => {
  const pki = createTlsFixtures();
  t.teardown(() => pki.cleanup());
  const first = pki.client('system:node:edge-1');
  const second = pki.client('system:node:edge-1-rotated');
  const server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true });
  const srv = await serve(
    t,
    (req, res) => {
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      if (req.url!.includes('watch=true')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: String(cn), resourceVersion: '1' } } }) + '\n');
        return; // held open
      }
      json(res, 200, { metadata: { name: cn } });
    },
    server,
  );
  const config = kubeconfigFromValues({ server: srv.url, certificateAuthority: pki.ca.certPem, clientCertificate: first.certPem, clientKey: first.keyPem });
  const client = createKubeClient(config, { logger });
  t.teardown(() => client.close());
  t.is((await client.get(Resources.nodes, 'x')).metadata?.name, 'system:node:edge-1');
  const watched: string[] = [];
  const watch = client.watch(Resources.nodes, {}, (e) => watched.push((e.object as { metadata: { name: string } }).metadata.name));
  let ended = false;
  void watch.done.then(() => (ended = true), () => (ended = true));
  while (watched.length === 0) await new Promise((r) => setTimeout(r, 5));
  client.setCredentials({ clientCertificate: Buffer.from(second.certPem), clientKey: Buffer.from(second.keyPem) });
  t.is((await client.get(Resources.nodes, 'x')).metadata?.name, 'system:node:edge-1-rotated');
  t.false(ended, 'the open watch survives the credential swap');
  t.deepEqual(watched, ['system:node:edge-1']);
  watch.abort();

  // a client without the CA refuses the server
  const noCa = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger });
  t.teardown(() => noCa.close());
  const err = (await t.throwsAsync(noCa.get(Resources.nodes, 'x'))) as KeelsonError;
  t.is(err.code, ErrorCodes.API_UNREACHABLE);
  t.regex(err.message, /certificate/i);
  // insecure-skip-tls-verify connects anyway (the server still wants a client certificate)
  const insecure = createKubeClient(kubeconfigFromValues({ server: srv.url, insecureSkipTLSVerify: true, clientCertificate: first.certPem, clientKey: first.keyPem }), { logger });
  t.teardown(() => insecure.close());
  t.is((await insecure.get(Resources.nodes, 'x')).metadata?.name, 'system:node:edge-1');
});

test('a GET or watch sent on a keep-alive connection the server just closed is retried once on a new one', async (t) => {
  const perSocket = new Map<unknown, number>();
  let connections = 0;
  const server = http.createServer();
  server.on('connection', () => connections++);
  const srv = await serve(
    t,
    (req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      // The second request on any connection finds it closed, as when an idle timeout races it.
      if (n === 2) return void req.socket.destroy();
      if (req.url!.includes('watch=true')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'w', resourceVersion: '1' } } }) + '\n');
        return;
      }
      json(res, 200, { metadata: { name: 'ok' } });
    },
    server,
  );
  const client = createKubeClient(kubeconfigFromValues({ server: srv.url }), { logger });
  t.teardown(() => client.close());
  t.is((await client.get(Resources.nodes, 'a')).metadata?.name, 'ok');
  t.is((await client.get(Resources.nodes, 'b')).metadata?.name, 'ok', 'retried on a fresh connection');
  t.is(connections, 2);
  const events: string[] = [];
  t.is(await client.watch(Resources.nodes, {}, (e) => events.push(e.type)).done, 'closed');
  t.deepEqual(events, ['ADDED']);
  t.is(connections, 3);
  // not retried: a POST may have reached the server
  const err = (await t.throwsAsync(client.create(Resources.nodes, { metadata: { name: 'x' } }))) as KeelsonError;
  t.is(err.code, ErrorCodes.API_UNREACHABLE);
});

test('an IPv6 literal server URL works, and an unreadable token file keeps the last token with one warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-token6-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), 'first\n');
  const server = http.createServer((req, res) => json(res, 200, { metadata: { name: String(req.headers.authorization) } }));
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const records: Array<Record<string, unknown>> = [];
  const capture = createLogger({ format: 'json', level: 'info', sink: { write: (line) => void records.push(JSON.parse(line)) } });
  const config = kubeconfigFromValues({ server: `http://[::1]:${port}` });
  const client = createKubeClient({ ...config, credentials: { tokenFile: join(dir, 'token') } }, { logger: capture, tokenFileRefreshMs: 0 });
  t.teardown(() => client.close());
  t.is((await client.get(Resources.nodes, 'n')).metadata?.name, 'Bearer first');
  rmSync(join(dir, 'token'));
  t.is((await client.get(Resources.nodes, 'n')).metadata?.name, 'Bearer first');
  t.is((await client.get(Resources.nodes, 'n')).metadata?.name, 'Bearer first');
  t.is(records.filter((r) => r.msg === 'token file unreadable, using the last token read').length, 1);
  writeFileSync(join(dir, 'token'), 'second\n');
  t.is((await client.get(Resources.nodes, 'n')).metadata?.name, 'Bearer second');
});
