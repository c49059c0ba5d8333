/**
 * Probe and hook actions against real local servers on loopback: httpGet (status codes, headers,
 * same-host redirects, named ports), tcpSocket, gRPC health (a grpc-js server speaking the
 * hand-written grpc.health.v1 codec) and the resolution of specs (defaults, bad port names).
 */
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { Container } from 'kubernetes-types/core/v1';
import {
  decodeHealthCheckRequest, decodeHealthCheckResponse, encodeHealthCheckRequest, encodeHealthCheckResponse, grpcHealthCheck, HEALTH_CHECK_PATH,
} from '../../agent/pods/probes/grpc';
import { PROBE_DEFAULTS, probeTiming, ProbeSpecError, resolveAction } from '../../agent/pods/probes/handler';
import { httpGet } from '../../agent/pods/probes/http';
import { tcpConnect } from '../../agent/pods/probes/tcp';

function listen(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

test('probe defaults are upstream: period 10 s, timeout 1 s, success 1, failure 3, no initial delay', (t) => {
  t.deepEqual(PROBE_DEFAULTS, { periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, initialDelaySeconds: 0 });
  t.deepEqual(probeTiming({ exec: { command: ['true'] } }, 'readiness'), { initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3 });
  t.is(probeTiming({ successThreshold: 3 }, 'liveness').successThreshold, 1);
  t.is(probeTiming({ successThreshold: 3 }, 'readiness').successThreshold, 3);
});

test('resolveAction: host defaults to the pod IP, ports by number or name, scheme and path defaults; bad specs are ProbeSpecErrors', (t) => {
  const c: Container = { name: 'app', ports: [{ name: 'web', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] };
  t.deepEqual(resolveAction({ httpGet: { port: 'web', path: 'healthz', httpHeaders: [{ name: 'X-A', value: '1' }] } }, c, '10.0.0.5', 'readinessProbe'), {
    kind: 'httpGet', scheme: 'http', host: '10.0.0.5', port: 8080, path: '/healthz', headers: [{ name: 'X-A', value: '1' }],
  });
  t.like(resolveAction({ httpGet: { port: 443, scheme: 'HTTPS', host: '127.0.0.1' } }, c, '10.0.0.5', 'p'), { scheme: 'https', host: '127.0.0.1', port: 443, path: '/' });
  t.deepEqual(resolveAction({ tcpSocket: { port: '8080' } }, c, '10.0.0.5', 'p'), { kind: 'tcpSocket', host: '10.0.0.5', port: 8080 });
  t.deepEqual(resolveAction({ grpc: { port: 9090, service: 'svc' } }, c, '10.0.0.5', 'p'), { kind: 'grpc', host: '10.0.0.5', port: 9090, service: 'svc' });
  t.deepEqual(resolveAction({ exec: { command: ['cat', '/ok'] } }, c, '', 'p'), { kind: 'exec', command: ['cat', '/ok'] });
  const err = t.throws(() => resolveAction({ httpGet: { port: 'Not_A_Port!' } }, c, '10.0.0.5', 'livenessProbe'), { instanceOf: ProbeSpecError });
  t.is(err?.message, 'livenessProbe.httpGet.port: port name "Not_A_Port!" not found in the ports of container app');
  t.throws(() => resolveAction({ tcpSocket: { port: 70000 } }, c, '10.0.0.5', 'p'), { message: /invalid port number 70000/ });
  t.throws(() => resolveAction({}, c, '10.0.0.5', 'p'), { message: /exactly one handler/ });
  t.throws(() => resolveAction({ tcpSocket: { port: 80 } }, c, '', 'p'), { message: /no IP yet/ });
});

test('httpGet: 2xx/3xx succeed, 4xx/5xx fail, headers are sent, same-host redirects are followed, timeouts fail', async (t) => {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    if (req.url === '/ok') return void res.end('fine');
    if (req.url === '/moved') return void res.writeHead(302, { location: '/broken' }).end();
    if (req.url === '/away') return void res.writeHead(301, { location: 'http://192.0.2.1/' }).end();
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 1500);
    res.writeHead(500).end('boom');
  });
  const port = await listen(server);
  t.teardown(() => server.close());
  const target = (path: string) => ({ scheme: 'http' as const, host: '127.0.0.1', port, path, headers: [{ name: 'X-Probe', value: 'yes' }, { name: 'Host', value: 'example.test' }] });
  t.deepEqual(await httpGet(target('/ok'), 1000), { ok: true, output: 'fine' });
  t.is(seen[0]['x-probe'], 'yes');
  t.is(seen[0].host, 'example.test');
  t.regex(seen[0]['user-agent'] ?? '', /^kube-probe\//);
  t.deepEqual(await httpGet(target('/fail'), 1000), { ok: false, output: 'HTTP probe failed with statuscode: 500' });
  t.deepEqual(await httpGet(target('/moved'), 1000), { ok: false, output: 'HTTP probe failed with statuscode: 500' });
  t.like(await httpGet(target('/away'), 1000), { ok: true });
  const slow = await httpGet(target('/slow'), 300);
  t.false(slow.ok);
  t.regex(slow.output, /timeout/);
  const closed = await httpGet({ ...target('/'), port: 1 }, 1000);
  t.false(closed.ok);
  t.regex(closed.output, /ECONNREFUSED/);
});

test('tcpSocket: an open port succeeds, a closed one fails', async (t) => {
  const server = net.createServer((s) => s.end());
  const port = await listen(server);
  t.teardown(() => server.close());
  t.deepEqual(await tcpConnect('127.0.0.1', port, 1000), { ok: true, output: '' });
  const closed = await tcpConnect('127.0.0.1', 1, 1000);
  t.false(closed.ok);
  t.regex(closed.output, /ECONNREFUSED/);
});

test('grpc health codec round-trips and skips unknown fields', (t) => {
  t.deepEqual(encodeHealthCheckRequest(''), Buffer.alloc(0));
  t.is(decodeHealthCheckRequest(encodeHealthCheckRequest('my.Service')), 'my.Service');
  t.is(decodeHealthCheckResponse(encodeHealthCheckResponse(1)), 1);
  t.is(decodeHealthCheckResponse(Buffer.alloc(0)), 0);
  // field 2 (string "x") before field 1 = 2
  t.is(decodeHealthCheckResponse(Buffer.from([0x12, 0x01, 0x78, 0x08, 0x02])), 2);
  t.throws(() => decodeHealthCheckResponse(Buffer.from([0x08])), { message: /truncated/ });
});

test('grpc: SERVING succeeds; NOT_SERVING, unknown service, no health service and a closed port fail', async (t) => {
  const statuses: Record<string, number> = { '': 1, down: 2 };
  const server = new grpc.Server();
  server.register(
    HEALTH_CHECK_PATH,
    (call: grpc.ServerUnaryCall<{ service: string }, number>, callback: grpc.sendUnaryData<number>) => {
      const status = statuses[call.request.service];
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else callback(null, status);
    },
    encodeHealthCheckResponse,
    (b: Buffer) => ({ service: decodeHealthCheckRequest(b) }), // an object: grpc-js treats a falsy message as none
    'unary',
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  t.deepEqual(await grpcHealthCheck('127.0.0.1', port, '', 1000), { ok: true, output: '' });
  t.deepEqual(await grpcHealthCheck('127.0.0.1', port, 'down', 1000), { ok: false, output: 'service unhealthy (responded with "NOT_SERVING")' });
  t.like(await grpcHealthCheck('127.0.0.1', port, 'other', 1000), { ok: false });
  const plain = http.createServer((_req, res) => res.end());
  const plainPort = await listen(plain);
  t.teardown(() => plain.close());
  t.like(await grpcHealthCheck('127.0.0.1', plainPort, '', 1000), { ok: false });
  t.like(await grpcHealthCheck('127.0.0.1', 1, '', 1000), { ok: false });
});
