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

/** Runs `argv` with optional stdin; resolves with the exit code (never rejects on non-zero). */
export type CommandRunner = (argv: string[], options?: { input?: string }) => Promise<ExecResult>;

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
      child.stdin.end(options.input ?? '');
    });
}

/** Runs a command and throws a ProxyError naming it when it fails. */
export async function run(exec: CommandRunner, argv: string[], input?: string): Promise<string> {
  const res = await exec(argv, input === undefined ? {} : { input });
  if (res.code !== 0) {
    throw new ProxyError(ProxyErrorCodes.COMMAND_FAILED, `${argv.join(' ')} exited ${res.code}: ${res.stderr.trim().slice(0, 2000)}`, {
      object: argv[0],
    });
  }
  return res.stdout;
}
