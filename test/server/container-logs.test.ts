import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { fixedNanoTime, parseCriLogLine, writeContainerLog, type LogOptions } from '../../agent/pods/container-logs';

const LOG = [
  '2030-01-01T00:00:01.5Z stdout F first line',
  '2030-01-01T00:00:02.123456789Z stderr F an error',
  '2030-01-01T00:00:03Z stdout P part one, ',
  '2030-01-01T00:00:03.1Z stdout F part two',
  'not a cri line',
  '2030-01-01T00:00:04.000001Z stdout F ',
  '2030-01-01T00:00:05+02:00 stdout F last line',
  '',
].join('\n');

function logFile(t: { teardown(fn: () => void): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-logs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, '0.log');
  writeFileSync(file, text);
  return file;
}

async function read(file: string, options: Partial<LogOptions>, running?: () => Promise<boolean>): Promise<string> {
  const chunks: Buffer[] = [];
  await writeContainerLog(
    file,
    { follow: false, timestamps: false, ...options },
    { write: (c) => (chunks.push(Buffer.from(c)), true), drain: async () => {}, closed: () => false },
    running ? { running, pollMs: 20, stateCheckMs: 100 } : undefined,
  );
  return Buffer.concat(chunks).toString();
}

test('CRI log lines parse into time, stream, partial flag and content', (t) => {
  const line = parseCriLogLine(Buffer.from('2030-01-01T00:00:03Z stderr P a b  c'))!;
  t.is(line.time, '2030-01-01T00:00:03Z');
  t.is(line.stream, 'stderr');
  t.true(line.partial);
  t.is(line.content.toString(), 'a b  c');
  t.is(parseCriLogLine(Buffer.from('2030-01-01T00:00:03Z stdout F'))!.content.length, 0);
  t.is(parseCriLogLine(Buffer.from('garbage here')), undefined);
  t.is(parseCriLogLine(Buffer.from('2030 stdout X y')), undefined);
  t.is(fixedNanoTime('2030-01-01T00:00:01.5Z'), '2030-01-01T00:00:01.500000000Z');
  t.is(fixedNanoTime('2030-01-01T00:00:05+02:00'), '2030-01-01T00:00:05.000000000+02:00');
});

test('the whole log: prefixes stripped, partial lines joined, foreign lines skipped', async (t) => {
  const file = logFile(t, LOG);
  t.is(await read(file, {}), 'first line\nan error\npart one, part two\n\nlast line\n');
});

test('tailLines counts file lines from the end; timestamps use 9 fractional digits', async (t) => {
  const file = logFile(t, LOG);
  t.is(await read(file, { tailLines: 2 }), '\nlast line\n');
  t.is(await read(file, { tailLines: 0 }), '');
  t.is(await read(file, { tailLines: 100 }), 'first line\nan error\npart one, part two\n\nlast line\n');
  t.is(await read(file, { tailLines: 1, timestamps: true }), '2030-01-01T00:00:05.000000000+02:00 last line\n');
  t.is(await read(file, { tailLines: 6, timestamps: true }).then((s) => s.split('\n')[0]), '2030-01-01T00:00:02.123456789Z an error');
});

test('sinceMs skips older lines; limitBytes cuts the output', async (t) => {
  const file = logFile(t, LOG);
  t.is(await read(file, { sinceMs: Date.parse('2030-01-01T00:00:03.05Z') }), 'part two\n\n');
  t.is(await read(file, { limitBytes: 15 }), 'first line\nan e');
});

test('follow returns lines written later and ends once the container stopped', async (t) => {
  const file = logFile(t, '2030-01-01T00:00:01Z stdout F one\n');
  let running = true;
  const chunks: string[] = [];
  const done = writeContainerLog(
    file,
    { follow: true, timestamps: false },
    { write: (c) => (chunks.push(c.toString()), true), drain: async () => {}, closed: () => false },
    { running: async () => running, pollMs: 20, stateCheckMs: 100 },
  );
  await new Promise((r) => setTimeout(r, 150));
  t.deepEqual(chunks, ['one\n']);
  appendFileSync(file, '2030-01-01T00:00:02Z stdout F two\n2030-01-01T00:00:03Z stdout P thr');
  await new Promise((r) => setTimeout(r, 150));
  t.is(chunks.join(''), 'one\ntwo\n');
  appendFileSync(file, '\n2030-01-01T00:00:04Z stdout F four\n');
  running = false;
  await done;
  t.is(chunks.join(''), 'one\ntwo\nthrfour\n');
});
