/**
 * Splits a watch response body into newline-delimited JSON values. Chunks end anywhere (inside
 * an event, inside a multi-byte character); a line is decoded only once it is complete, and the
 * pieces of a long line are joined once, so a multi-megabyte object costs O(size).
 */
export interface JsonLineDecoder {
  push(chunk: Buffer): void;
  /** Call at end of stream; a trailing line without a newline is still decoded. */
  end(): void;
}

export interface JsonLineDecoderOptions {
  /** Refuse lines longer than this (a broken or hostile stream); default 64 MiB. */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;

export function createJsonLineDecoder(
  onValue: (value: unknown) => void,
  options: JsonLineDecoderOptions = {},
): JsonLineDecoder {
  const maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024;
  let pending: Buffer[] = [];
  let pendingBytes = 0;

  const emit = (line: Buffer) => {
    const text = line.toString('utf8').trim();
    if (text === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new SyntaxError(`watch stream: malformed JSON line of ${line.length} bytes: ${(err as Error).message}`);
    }
    onValue(value);
  };

  return {
    push(chunk) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NEWLINE, start);
        if (nl === -1) break;
        const piece = chunk.subarray(start, nl);
        if (pending.length > 0) {
          pending.push(piece);
          const line = Buffer.concat(pending, pendingBytes + piece.length);
          pending = [];
          pendingBytes = 0;
          emit(line);
        } else {
          emit(piece);
        }
        start = nl + 1;
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        pendingBytes += rest.length;
        if (pendingBytes > maxLineBytes) {
          pending = [];
          pendingBytes = 0;
          throw new RangeError(`watch stream: line longer than ${maxLineBytes} bytes`);
        }
        // A view, not a copy: http response chunks are fresh buffers that nobody reuses.
        pending.push(rest);
      }
    },
    end() {
      if (pending.length === 0) return;
      const line = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      emit(line);
    },
  };
}
