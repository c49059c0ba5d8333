import test from 'ava';
import { createJsonLineDecoder } from '../../agent/kube/watch-stream';

function decodeAll(chunks: Buffer[]): unknown[] {
  const out: unknown[] = [];
  const decoder = createJsonLineDecoder((v) => out.push(v));
  for (const chunk of chunks) decoder.push(chunk);
  decoder.end();
  return out;
}

const events = [
  { type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '1' }, data: { greeting: 'grüß dich — 你好 🚀' } } },
  { type: 'MODIFIED', object: { metadata: { name: 'b', resourceVersion: '2' } } },
  { type: 'BOOKMARK', object: { metadata: { resourceVersion: '3' } } },
];
const stream = Buffer.from(events.map((e) => JSON.stringify(e) + '\n').join(''));

test('events split at every possible byte boundary (inside keys, inside multi-byte characters)', (t) => {
  for (let cut = 1; cut < stream.length; cut++) {
    t.deepEqual(decodeAll([stream.subarray(0, cut), stream.subarray(cut)]), events, `cut at ${cut}`);
  }
});

test('one byte at a time, and three events in one chunk', (t) => {
  const bytes = [...stream].map((b) => Buffer.from([b]));
  t.deepEqual(decodeAll(bytes), events);
  t.deepEqual(decodeAll([stream]), events);
});

test('a multi-megabyte object arriving in 16 KiB chunks', (t) => {
  const big = { type: 'ADDED', object: { metadata: { name: 'big', resourceVersion: '9' }, data: { blob: 'x'.repeat(8 * 1024 * 1024) } } };
  const buf = Buffer.from(JSON.stringify(big) + '\n' + JSON.stringify(events[1]) + '\n');
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += 16384) chunks.push(buf.subarray(i, i + 16384));
  const start = process.hrtime.bigint();
  const out = decodeAll(chunks) as Array<typeof big>;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.is(out.length, 2);
  t.is(out[0]!.object.data.blob.length, 8 * 1024 * 1024);
  t.deepEqual(out[1], events[1]);
  t.true(ms < 2000, `decoding took ${ms} ms`);
});

test('blank lines and CRLF are tolerated; a trailing event without newline is decoded at end', (t) => {
  const text = '\n' + JSON.stringify(events[0]) + '\r\n\n' + JSON.stringify(events[1]);
  t.deepEqual(decodeAll([Buffer.from(text)]), [events[0], events[1]]);
});

test('a malformed line and an over-long line are errors, not crashes', (t) => {
  const decoder = createJsonLineDecoder(() => {});
  t.throws(() => decoder.push(Buffer.from('{"type":"ADDED",\n')), { instanceOf: SyntaxError });
  const small = createJsonLineDecoder(() => {}, { maxLineBytes: 10 });
  t.throws(() => small.push(Buffer.from('{"type":"ADDED","object":{}}')), { instanceOf: RangeError });
});
