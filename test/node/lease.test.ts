import test from 'ava';
import { createLeaseHeartbeat, microTime } from '../../agent/node/lease';
import { createFakeClock } from '../kube/fake-clock';
import { createFakeApi } from './fake-api';
import { captureLogger } from './helpers';

function setup(options: { uid?: () => string | undefined } = {}) {
  const clock = createFakeClock({ random: () => 0 }); // no jitter: exact cadence
  const api = createFakeApi(clock.now);
  const { logger, records } = captureLogger();
  const lease = createLeaseHeartbeat({ client: api.client, nodeName: 'edge-1', clock, logger, nodeUid: options.uid ?? (() => 'uid-edge-1') });
  return { clock, api, lease, records };
}

const leaseCalls = (api: ReturnType<typeof createFakeApi>) => api.calls.filter((c) => c.resource === 'leases');

test('renews every 10 s with one PUT, leaseDurationSeconds 40, holder and owner reference set', async (t) => {
  const { clock, api, lease } = setup();
  const start = clock.now();
  lease.start();
  await clock.advance(0);
  t.deepEqual(leaseCalls(api).map((c) => c.verb), ['get', 'create']);
  const created = leaseCalls(api)[1]!.body;
  t.is(created.metadata.namespace, 'kube-node-lease');
  t.deepEqual(created.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'edge-1', uid: 'uid-edge-1' }]);
  t.is(created.spec.leaseDurationSeconds, 40);
  t.is(created.spec.holderIdentity, 'edge-1');
  t.is(created.spec.renewTime, microTime(start));
  t.regex(created.spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

  api.calls.length = 0;
  await clock.advance(60_000);
  const updates = leaseCalls(api);
  t.true(updates.every((c) => c.verb === 'update'), 'steady state is PUTs only');
  t.deepEqual(updates.map((c) => c.at - start), [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
  t.deepEqual(updates.map((c) => c.body.spec.renewTime), updates.map((c) => microTime(c.at)));
  t.true(lease.health().healthy);
  await lease.stop();
});

test('5xx answers are retried with backoff from 200 ms, then the 10 s cadence resumes', async (t) => {
  const { clock, api, lease, records } = setup();
  lease.start();
  await clock.advance(0);
  const base = clock.now();
  api.calls.length = 0;
  api.failNext(4, { code: 503 });
  await clock.advance(10_000 + 200 + 400 + 800 + 1600 + 10_000);
  const times = leaseCalls(api).map((c) => c.at - base);
  // attempt at 10 s fails, retries after 200, 400, 800, 1600 ms (× 0.9: the ±10 % jitter at random() = 0);
  // the fifth attempt succeeds, the next is 10 s later
  t.deepEqual(times, [10_000, 10_180, 10_540, 11_260, 12_700, 22_700]);
  t.true(lease.health().healthy);
  const warns = records.filter((r) => r.level === 40);
  t.is(warns.length, 1, 'one warning for the whole failure streak');
  t.is(records.filter((r) => r.msg === 'node lease renewed again').length, 1);
  await lease.stop();
});

test('a 409 conflict re-reads the Lease and renews it', async (t) => {
  const { clock, api, lease } = setup();
  lease.start();
  await clock.advance(0);
  api.touch('leases', 'kube-node-lease', 'edge-1'); // someone else wrote it
  api.calls.length = 0;
  await clock.advance(10_000 + 200);
  const calls = leaseCalls(api);
  t.deepEqual(calls.map((c) => c.verb), ['update', 'get', 'update']);
  t.is(api.objects.get('leases/kube-node-lease/edge-1').spec.renewTime, microTime(calls[2]!.at));
  await lease.stop();
});

test('the owner reference is added once the Node uid is known', async (t) => {
  let uid: string | undefined;
  const { clock, api, lease } = setup({ uid: () => uid });
  lease.start();
  await clock.advance(0);
  t.is(leaseCalls(api)[1]!.body.metadata.ownerReferences, undefined);
  uid = 'uid-later';
  await clock.advance(10_000);
  t.deepEqual(api.objects.get('leases/kube-node-lease/edge-1').metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'edge-1', uid: 'uid-later' }]);
  await lease.stop();
});

test('a 2-minute outage: backoff capped at 7 s, one warning, renewed within 7 s of recovery', async (t) => {
  const { clock, api, lease, records } = setup();
  lease.start();
  await clock.advance(0);
  api.setDown(true);
  const downAt = clock.now();
  api.calls.length = 0;
  await clock.advance(120_000);
  const attempts = leaseCalls(api).map((c) => c.at);
  const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
  t.true(Math.max(...gaps) <= 7000, `largest gap ${Math.max(...gaps)}`);
  t.true(attempts.length >= 15 && attempts.length <= 30, `${attempts.length} attempts`);
  t.false(lease.health().healthy, 'unhealthy once the lease has lapsed');
  t.regex(lease.health().message!, /renewal failing for \d+s/);
  api.setDown(false);
  const upAt = clock.now();
  await clock.advance(7000);
  t.true(lease.lastRenewed()! > upAt && lease.lastRenewed()! - upAt <= 7000);
  t.true(lease.health().healthy);
  t.is(records.filter((r) => r.level >= 40).length, 1);
  const recovered = records.find((r) => r.msg === 'node lease renewed again');
  t.truthy(recovered);
  // counted from the first failed renewal, which came up to 10 s after the link dropped
  t.true(recovered!.downSeconds >= 110 && recovered!.downSeconds <= (upAt - downAt) / 1000 + 7, String(recovered!.downSeconds));
  await lease.stop();
});

test('stop() cancels the timer: no request afterwards', async (t) => {
  const { clock, api, lease } = setup();
  lease.start();
  await clock.advance(10_000);
  await lease.stop();
  t.is(clock.pendingTimers(), 0);
  const n = api.calls.length;
  await clock.advance(120_000);
  t.is(api.calls.length, n);
});
