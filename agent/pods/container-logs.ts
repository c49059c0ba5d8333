/**
 * `kubectl logs`: reads a container's CRI log file (`<time> <stream> <P|F> <content>` per line, as
 * containerd writes it) and streams the content without that prefix, as kubelet does: a full line
 * (tag F) gets its newline back, a partial one (P) is joined with what follows. Options as the
 * PodLogOptions query: tailLines (counted on file lines, from the end), sinceSeconds/sinceTime
 * (by line time), timestamps (each line prefixed with its time in RFC 3339 with 9 fractional
 * digits), limitBytes, follow (new lines as they come, until the container stops or the client goes).
 */
import { open, stat, type FileHandle } from 'node:fs/promises';

export interface LogOptions {
  follow: boolean;
  tailLines?: number;
  /** Lines older than this (ms since epoch) are skipped. */
  sinceMs?: number;
  timestamps: boolean;
  limitBytes?: number;
}

export interface CriLogLine {
  /** The time as written (RFC 3339 with up to 9 fractional digits). */
  time: string;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  content: Buffer;
}

const SPACE = 0x20;
const NEWLINE = 0x0a;

/** Parses one CRI log line (without its newline); undefined when it is not in that format. */
export function parseCriLogLine(line: Buffer): CriLogLine | undefined {
  const a = line.indexOf(SPACE);
  if (a <= 0) return undefined;
  const b = line.indexOf(SPACE, a + 1);
  if (b < 0) return undefined;
  const stream = line.subarray(a + 1, b).toString('latin1');
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  let c = line.indexOf(SPACE, b + 1);
  if (c < 0) c = line.length; // an empty full line may lack the separator
  const tags = line.subarray(b + 1, c).toString('latin1').split(':');
  if (tags[0] !== 'P' && tags[0] !== 'F') return undefined;
  return { time: line.subarray(0, a).toString('latin1'), stream, partial: tags[0] === 'P', content: line.subarray(Math.min(c + 1, line.length)) };
}

/** `2024-05-01T10:00:00.12Z` → `2024-05-01T10:00:00.120000000Z` (kubelet's RFC3339NanoFixed). */
export function fixedNanoTime(time: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (!m) return time;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0').slice(0, 9)}${m[3]}`;
}

export function timeMs(time: string): number {
  return Date.parse(time);
}

/** The byte offset at which the last `lines` lines of the file begin. */
async function tailOffset(file: FileHandle, size: number, lines: number): Promise<number> {
  if (lines <= 0) return size;
  const chunk = Buffer.alloc(64 * 1024);
  let pos = size;
  let seen = 0;
  // a final newline ends the last line rather than starting an empty one
  let skipLast = true;
  while (pos > 0) {
    const len = Math.min(chunk.length, pos);
    pos -= len;
    const { bytesRead } = await file.read(chunk, 0, len, pos);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (chunk[i] !== NEWLINE) continue;
      if (skipLast && pos + i === size - 1) continue;
      seen++;
      if (seen === lines) return pos + i + 1;
    }
    skipLast = false;
  }
  return 0;
}

export interface LogSink {
  /** Returns false when the client is not reading (back-pressure): wait for drain(). */
  write(chunk: Buffer): boolean;
  drain(): Promise<void>;
  /** True once the client went away. */
  closed(): boolean;
}

export interface FollowControl {
  /** Is the container still running (more lines may come)? */
  running(): Promise<boolean>;
  /** How long to wait between reads at the end of the file (default 200 ms). */
  pollMs?: number;
  /** How often to ask running() while no line comes (default 1 s). */
  stateCheckMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes the log of `path` to `sink` per `options`. Resolves when done: at the end of the file, at
 * limitBytes, or — with follow — when the container stopped and its last lines are out, or the
 * client left.
 */
export async function writeContainerLog(path: string, options: LogOptions, sink: LogSink, follow?: FollowControl): Promise<void> {
  const file = await open(path, 'r');
  try {
    let { size } = await file.stat();
    let pos = options.tailLines !== undefined ? await tailOffset(file, size, options.tailLines) : 0;
    let rest = Buffer.alloc(0);
    let written = 0;
    const limit = options.limitBytes ?? Infinity;
    const chunk = Buffer.alloc(64 * 1024);
    let lastCheck = Date.now();
    let ino = (await file.stat()).ino;

    /** Emits the complete lines of `data`; false once limitBytes is reached or the client left. */
    const emit = async (data: Buffer): Promise<boolean> => {
      let start = 0;
      for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
        const parsed = parseCriLogLine(data.subarray(start, nl));
        start = nl + 1;
        if (!parsed) continue; // not a CRI log line: skipped, as kubelet does
        if (options.sinceMs !== undefined && timeMs(parsed.time) < options.sinceMs) continue;
        const parts: Buffer[] = [];
        if (options.timestamps) parts.push(Buffer.from(fixedNanoTime(parsed.time) + ' '));
        parts.push(parsed.content);
        if (!parsed.partial) parts.push(Buffer.from('\n'));
        let out = Buffer.concat(parts);
        if (written + out.length > limit) out = out.subarray(0, limit - written);
        written += out.length;
        if (sink.closed()) return false;
        if (!sink.write(out)) await sink.drain();
        if (written >= limit) return false;
      }
      rest = Buffer.from(data.subarray(start));
      return true;
    };

    for (;;) {
      if (sink.closed()) return;
      const { bytesRead } = await file.read(chunk, 0, chunk.length, pos);
      if (bytesRead > 0) {
        pos += bytesRead;
        lastCheck = Date.now();
        if (!(await emit(Buffer.concat([rest, chunk.subarray(0, bytesRead)])))) return;
        continue;
      }
      if (!options.follow || !follow) return;
      // at the end of the file: wait for more, unless the container is gone
      if (Date.now() - lastCheck >= (follow.stateCheckMs ?? 1000)) {
        lastCheck = Date.now();
        if (!(await follow.running())) {
          const again = await file.read(chunk, 0, chunk.length, pos);
          if (again.bytesRead === 0) return;
          pos += again.bytesRead;
          if (!(await emit(Buffer.concat([rest, chunk.subarray(0, again.bytesRead)])))) return;
          continue;
        }
      }
      await sleep(follow.pollMs ?? 200);
      // the runtime reopened the log (ReopenContainerLog after rotation): continue in the new file
      const now = await stat(path).catch(() => undefined);
      if (now && (now.ino !== ino || now.size < size)) {
        await file.close().catch(() => {});
        return await writeContainerLog(path, { ...options, tailLines: undefined, limitBytes: limit === Infinity ? undefined : limit - written }, sink, follow);
      }
      if (now) size = now.size;
      ino = now?.ino ?? ino;
    }
  } finally {
    await file.close().catch(() => {});
  }
}
