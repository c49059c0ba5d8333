import test from 'ava';
import pino from 'pino';
import type { KubeClient } from '../../agent/kube/client';
import { createApiReviewer, requestAttributes } from '../../agent/server/auth';

test('verbs from the HTTP method and subresources from the path, as kubelet maps them', (t) => {
  t.deepEqual(requestAttributes('GET', '/stats/summary', 'n1'), { verb: 'get', resource: 'nodes', subresource: 'stats', name: 'n1' });
  t.is(requestAttributes('GET', '/metrics', 'n1').subresource, 'metrics');
  t.is(requestAttributes('GET', '/metrics/cadvisor', 'n1').subresource, 'metrics');
  t.is(requestAttributes('GET', '/logs/messages', 'n1').subresource, 'log');
  t.is(requestAttributes('GET', '/containerLogs/ns/p/c', 'n1').subresource, 'proxy');
  t.is(requestAttributes('GET', '/statsfoo', 'n1').subresource, 'proxy');
  t.deepEqual(
    ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => requestAttributes(m, '/exec/ns/p/c', 'n1').verb),
    ['get', 'get', 'create', 'update', 'patch', 'delete'],
  );
});

test('reviews are cached: tokens for 2 minutes, allowed decisions for 5, denied ones for 30 s', async (t) => {
  let now = 0;
  const calls: string[] = [];
  const client = {
    async create(res: { kind: string }, obj: { spec: { token?: string; user?: string } }) {
      calls.push(res.kind);
      if (res.kind === 'TokenReview') {
        return obj.spec.token === 'good' ? { status: { authenticated: true, user: { username: 'alice', groups: ['g'] } } } : { status: { authenticated: false } };
      }
      return { status: { allowed: obj.spec.user === 'alice' } };
    },
  } as unknown as KubeClient;
  const reviewer = createApiReviewer(client, { logger: pino({ level: 'silent' }), now: () => now });
  t.deepEqual(await reviewer.reviewToken('good'), { username: 'alice', groups: ['g'] });
  t.is(await reviewer.reviewToken('bad'), undefined);
  await reviewer.reviewToken('good');
  await reviewer.reviewToken('bad');
  t.deepEqual(calls, ['TokenReview', 'TokenReview']);
  const attrs = requestAttributes('GET', '/pods', 'n1');
  t.true((await reviewer.authorize({ username: 'alice', groups: [] }, attrs)).allowed);
  t.false((await reviewer.authorize({ username: 'bob', groups: [] }, attrs)).allowed);
  now = 29_000;
  await reviewer.authorize({ username: 'alice', groups: [] }, attrs);
  await reviewer.authorize({ username: 'bob', groups: [] }, attrs);
  t.is(calls.filter((c) => c === 'SubjectAccessReview').length, 2);
  now = 31_000; // the denial expired, the allowance did not
  await reviewer.authorize({ username: 'alice', groups: [] }, attrs);
  await reviewer.authorize({ username: 'bob', groups: [] }, attrs);
  t.is(calls.filter((c) => c === 'SubjectAccessReview').length, 3);
  now = 121_000; // tokens reviewed again
  await reviewer.reviewToken('good');
  t.is(calls.filter((c) => c === 'TokenReview').length, 3);
});
