import test from 'ava';
import { canReleaseMemory, releaseMemory, scheduleMemoryRelease } from '../../agent/memory';

type Gc = (options: unknown) => void;
const global = globalThis as { gc?: Gc };

test.serial('releaseMemory does nothing without --expose-gc', (t) => {
  const saved = global.gc;
  delete global.gc;
  try {
    t.false(canReleaseMemory());
    t.notThrows(() => releaseMemory('test'));
  } finally {
    if (saved) global.gc = saved;
  }
});

test.serial('releaseMemory asks V8 for a synchronous last-resort collection', (t) => {
  const saved = global.gc;
  const calls: unknown[] = [];
  global.gc = (options) => void calls.push(options);
  try {
    t.true(canReleaseMemory());
    releaseMemory('test');
    t.deepEqual(calls, [{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
  } finally {
    if (saved) global.gc = saved;
    else delete global.gc;
  }
});

test.serial('scheduleMemoryRelease runs once after the delay, however often it is asked meanwhile', async (t) => {
  const saved = global.gc;
  let calls = 0;
  global.gc = () => void calls++;
  try {
    for (let i = 0; i < 5; i++) scheduleMemoryRelease('burst', undefined, 20);
    t.is(calls, 0, 'not at once: the work that asked may still hold its garbage');
    await new Promise((r) => setTimeout(r, 80));
    t.is(calls, 1);
    scheduleMemoryRelease('later', undefined, 10);
    await new Promise((r) => setTimeout(r, 50));
    t.is(calls, 2, 'a later ask schedules a new release');
  } finally {
    if (saved) global.gc = saved;
    else delete global.gc;
  }
});
