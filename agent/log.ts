import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };
export type LogFormat = 'journald' | 'pretty' | 'json';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** sd-daemon(3) priority prefixes for pino's numeric levels. */
function journalPriority(level: number): number {
  if (level >= 60) return 2; // fatal → crit
  if (level >= 50) return 3; // error → err
  if (level >= 40) return 4; // warn → warning
  if (level >= 30) return 6; // info → info
  return 7; // debug, trace → debug
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const RESERVED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'component', 'v']);

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

function formatFields(record: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (RESERVED.has(key) || value === undefined) continue;
    if (key === 'err' && value && typeof value === 'object') {
      const err = value as { message?: string; code?: string; object?: string; cause?: string };
      parts.push(`err=${formatValue(err.message ?? '')}`);
      if (err.cause) parts.push(`cause=${formatValue(err.cause)}`);
      if (err.code) parts.push(`code=${formatValue(err.code)}`);
      if (err.object) parts.push(`object=${formatValue(err.object)}`);
      continue;
    }
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.length ? ' ' + parts.join(' ') : '';
}

/** Formats one pino JSON record as a text line (without the trailing newline). */
export function formatRecord(record: Record<string, unknown>, format: 'journald' | 'pretty'): string {
  const level = typeof record.level === 'number' ? record.level : 30;
  const component = typeof record.component === 'string' ? `[${record.component}] ` : '';
  const body = `${component}${String(record.msg ?? '')}${formatFields(record)}`;
  if (format === 'journald') return `<${journalPriority(level)}>${body.replace(/\n/g, ' ')}`;
  const time = new Date(typeof record.time === 'number' ? record.time : Date.now()).toISOString().slice(11, 23);
  return `${time} ${(LEVEL_NAMES[level] ?? 'INFO').padEnd(5)} ${body}`;
}

interface LineSink {
  write(line: string): void;
}

function textDestination(format: 'journald' | 'pretty', sink: LineSink): pino.DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          sink.write(line + '\n');
          continue;
        }
        sink.write(formatRecord(record, format) + '\n');
      }
    },
  };
}

export function detectLogFormat(env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stderr): LogFormat {
  if (env.JOURNAL_STREAM) return 'journald';
  if (stream.isTTY) return 'pretty';
  return 'json';
}

/**
 * Errors as one line can carry them: the error's own message (pino's default serializer appends
 * every cause's message to it, which made journald lines repeat themselves), its stable code and
 * object, the first cause's message apart, and the stack for JSON consumers.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const e = err as Error & { code?: unknown; object?: unknown };
  const out: Record<string, unknown> = { type: e.name, message: e.message };
  if (e.code !== undefined) out.code = e.code;
  if (e.object !== undefined) out.object = e.object;
  if (e.cause instanceof Error && e.cause.message && !e.message.includes(e.cause.message)) out.cause = e.cause.message;
  if (e.stack) out.stack = e.stack;
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; defaults to stderr (journald captures it under systemd). */
  sink?: LineSink;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? detectLogFormat();
  const sink: LineSink = options.sink ?? { write: (line) => void process.stderr.write(line) };
  const base = { level: options.level ?? 'info', base: undefined, errorKey: 'err', serializers: { err: serializeError } };
  if (format === 'json') {
    return pino(base, { write: (chunk: string) => sink.write(chunk) });
  }
  return pino(base, textDestination(format, sink));
}
