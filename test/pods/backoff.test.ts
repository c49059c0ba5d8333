import test from 'ava';
import { createBackoff } from '../../agent/pods/backoff';
import { createFakeClock } from '../../agent/pods/fake-clock';

test('crash-loop backoff: immediate first restart, then 10 s, 20 s, 40 s … capped at 5 min', (t) => {
  const clock = createFakeClock();
  const backoff = createBackoff(clock);
  const delays: number[] = [];
  for (let crash = 0; crash < 9; crash++) {
    const finishedAt = clock.now();
    const wait = backoff.remaining('uid/app', finishedAt);
    delays.push(wait);
    clock.advance(wait);
    t.is(backoff.remaining('uid/app', finishedAt), 0);
    backoff.next('uid/app', finishedAt);
    clock.advance(1000); // the container runs 1 s, then crashes again
  }
  t.deepEqual(delays.map((d) => d / 1000), [0, 10, 20, 40, 80, 160, 300, 300, 300]);
  t.is(backoff.current('uid/app'), 300_000);
});

test('delay is counted from the finish time', (t) => {
  const clock = createFakeClock();
  const backoff = createBackoff(clock);
  backoff.next('k', clock.now());
  clock.advance(1000);
  const finishedAt = clock.now();
  t.is(backoff.remaining('k', finishedAt), 10_000);
  clock.advance(4000);
  t.is(backoff.remaining('k', finishedAt), 6000);
  clock.advance(6000);
  t.is(backoff.remaining('k', finishedAt), 0);
});

test('backoff resets after a container ran for 10 minutes', (t) => {
  const clock = createFakeClock();
  const backoff = createBackoff(clock);
  backoff.next('k', clock.now());
  backoff.next('k', clock.now());
  backoff.next('k', clock.now());
  t.is(backoff.current('k'), 40_000);
  clock.advance(9 * 60_000); // ran 9 minutes: still backing off
  t.true(backoff.remaining('k', clock.now()) > 0);
  clock.advance(60_000 + 1); // ran just over 10 minutes
  t.is(backoff.remaining('k', clock.now()), 0);
  t.is(backoff.next('k', clock.now()), 10_000);
});

test('custom base and cap', (t) => {
  const clock = createFakeClock();
  const backoff = createBackoff(clock, { initialMs: 100, maxMs: 250 });
  t.deepEqual([backoff.next('k', 0), backoff.next('k', 0), backoff.next('k', 0)], [100, 200, 250]);
  backoff.forget('k');
  t.is(backoff.current('k'), 0);
});
