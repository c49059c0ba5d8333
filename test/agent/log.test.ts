import test from 'ava';
import { createLogger, detectLogFormat, formatRecord } from '../../agent/log';
import { KeelsonError } from '../../agent/errors';

function capture(format: 'journald' | 'pretty' | 'json') {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', format, sink: { write: (l) => void lines.push(...l.split('\n').filter(Boolean)) } });
  return { logger, lines };
}

test('under journald every line starts with the sd-daemon priority and names the object', (t) => {
  const { logger, lines } = capture('journald');
  const log = logger.child({ component: 'kubelet' });
  log.debug({ pod: 'default/web' }, 'probe ok');
  log.info({ pod: 'default/web' }, 'container started');
  log.warn({ pod: 'kube-system/dns' }, 'back-off restarting');
  log.error({ err: new KeelsonError('KEELSON_ERR_CRI_UNAVAILABLE', 'socket missing', { object: '/run/x.sock' }) }, 'runtime down');
  t.deepEqual(lines.map((l) => l.slice(0, 3)), ['<7>', '<6>', '<4>', '<3>']);
  t.is(lines[1], '<6>[kubelet] container started pod=default/web');
  t.regex(lines[3], /^<3>\[kubelet\] runtime down err="socket missing" code=KEELSON_ERR_CRI_UNAVAILABLE object=\/run\/x.sock$/);
});

test('json format is plain pino JSON', (t) => {
  const { logger, lines } = capture('json');
  logger.info({ service: 'default/kubernetes' }, 'synced');
  const record = JSON.parse(lines[0]);
  t.is(record.msg, 'synced');
  t.is(record.service, 'default/kubernetes');
  t.is(record.level, 30);
});

test('pretty format is readable text', (t) => {
  const line = formatRecord({ level: 40, time: Date.UTC(2026, 0, 1, 10, 0, 0), component: 'dns', msg: 'upstream down', upstream: '10.0.0.1:53' }, 'pretty');
  t.is(line, '10:00:00.000 WARN  [dns] upstream down upstream=10.0.0.1:53');
});

test('format detection: journald, then TTY, then JSON', (t) => {
  t.is(detectLogFormat({ JOURNAL_STREAM: '8:123' }, { isTTY: true }), 'journald');
  t.is(detectLogFormat({}, { isTTY: true }), 'pretty');
  t.is(detectLogFormat({}, { isTTY: false }), 'json');
});

test('an error is one line: its own message, the first cause apart, code and object', (t) => {
  const { logger, lines } = capture('journald');
  const cause = new Error('connect ENOENT /run/x.sock');
  const err = new KeelsonError('KEELSON_ERR_CRI_UNAVAILABLE', 'CRI runtime unavailable', { object: 'socket=/run/x.sock', cause });
  logger.error({ err }, 'relist failed');
  t.is(lines.length, 1);
  t.is(lines[0], '<3>relist failed err="CRI runtime unavailable" cause="connect ENOENT /run/x.sock" code=KEELSON_ERR_CRI_UNAVAILABLE object="socket=/run/x.sock"');
  const json = capture('json');
  json.logger.error({ err }, 'relist failed');
  const record = JSON.parse(json.lines[0]);
  t.is(record.err.message, 'CRI runtime unavailable');
  t.is(record.err.code, 'KEELSON_ERR_CRI_UNAVAILABLE');
  t.regex(record.err.stack, /KeelsonError: CRI runtime unavailable/);
});
