import pino from 'pino';
import type { Logger } from 'pino';

/** A pino logger whose records the test can read. */
export function captureLogger(level: pino.LevelWithSilent = 'debug'): { logger: Logger; records: Array<Record<string, any>> } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const records: Array<Record<string, any>> = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const logger = pino({ level, base: undefined }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { logger, records };
}
