/**
 * The command runner every backend uses. Injected so that tests prefix
 * `nsenter --net=/var/run/netns/NAME` and unit tests can record commands.
 */
import { spawn } from 'node:child_process';
import { ProxyError, ProxyErrorCodes } from './errors';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface CommandOptions {
  input?: string;
  /**
   * Stdin written piece by piece, as the tool reads it (instead of `input`): a large transaction
   * (a full nftables sync at 10 000 Services is 13 MB) never exists as one string or buffer.
   */
  inputChunks?: Iterable<string>;
}

/** Runs `argv` with optional stdin; resolves with the exit code (never rejects on non-zero). */
export type CommandRunner = (argv: string[], options?: CommandOptions) => Promise<ExecResult>;

async function writeChunks(stdin: NodeJS.WritableStream, chunks: Iterable<string>): Promise<void> {
  let failed = false;
  stdin.once('error', () => (failed = true));
  for (const chunk of chunks) {
    if (failed) break;
    if (!stdin.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stdin.off('drain', done);
          stdin.off('close', done);
          resolve();
        };
        stdin.on('drain', done);
        stdin.on('close', done);
      });
    }
  }
  stdin.end();
}

export function createCommandRunner(prefix: string[] = []): CommandRunner {
  return (argv, options = {}) =>
    new Promise((resolve, reject) => {
      const full = [...prefix, ...argv];
      const child = spawn(full[0]!, full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new ProxyError(ProxyErrorCodes.COMMAND_FAILED, `cannot run ${full[0]}: ${e.message}`, { object: full[0], cause: e })));
      child.on('close', (code) =>
        resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? -1 }),
      );
      child.stdin.on('error', () => {}); // the tool may exit before reading everything; its exit code tells
      if (options.inputChunks) {
        // Closing early (the tool exited) ends the writing; the exit code tells what happened.
        writeChunks(child.stdin, options.inputChunks).catch(() => child.stdin.destroy());
      } else child.stdin.end(options.input ?? '');
    });
}

/** Runs a command and throws a ProxyError naming it when it fails. */
export async function run(exec: CommandRunner, argv: string[], input?: string | { chunks: Iterable<string> }): Promise<string> {
  const res = await exec(argv, input === undefined ? {} : typeof input === 'string' ? { input } : { inputChunks: input.chunks });
  if (res.code !== 0) {
    throw new ProxyError(ProxyErrorCodes.COMMAND_FAILED, `${argv.join(' ')} exited ${res.code}: ${res.stderr.trim().slice(0, 2000)}`, {
      object: argv[0],
    });
  }
  return res.stdout;
}
