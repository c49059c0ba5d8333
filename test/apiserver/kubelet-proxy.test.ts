import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { startTestApiserver } from '../harness/apiserver';
import { call } from './helpers';

test('pods/log is forwarded to the kubelet of the pod node with the apiserver kubelet client certificate', async (t) => {
  const api = await startTestApiserver();
  t.teardown(() => api.stop());
  const seen: { path: string; user?: string }[] = [];
  // The kubelet's side of the exchange, standing in for keelson's kubelet API here.
  const kubelet = createServer({ key: api.pki.server.keyPem, cert: api.pki.server.certPem, ca: api.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    seen.push({ path: req.url ?? '', user: peer.subject?.CN as string | undefined });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('line 1\nline 2\n');
  });
  await new Promise<void>((r) => kubelet.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => kubelet.close());
  const port = (kubelet.address() as { port: number }).port;
  api.store.create({
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' },
    status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: port } } },
  });
  api.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }, { name: 'd', image: 'i' }] } });
  const log = await call(api, 'GET', '/api/v1/namespaces/default/pods/p/log?container=d&tailLines=10&follow=false');
  t.is(log.status, 200);
  t.is(log.body, 'line 1\nline 2\n');
  t.deepEqual(seen, [{ path: '/containerLogs/default/p/d?follow=false&tailLines=10', user: 'kube-apiserver-kubelet-client' }]);
  const ambiguous = await call(api, 'GET', '/api/v1/namespaces/default/pods/p/log');
  t.is(ambiguous.status, 400);
  t.regex(ambiguous.body.message, /a container name must be specified/);
  api.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unbound', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
  t.is((await call(api, 'GET', '/api/v1/namespaces/default/pods/unbound/log')).status, 400);
  kubelet.close();
  kubelet.closeAllConnections();
  const down = await call(api, 'GET', '/api/v1/namespaces/default/pods/p/log?container=c');
  t.is(down.status, 500);
  t.regex(down.body.message, /containerLogs/);
});
