/**
 * Runs the real `keelson` CLI (dist/agent/cli.js on the pinned Node.js runtime) for feature tests,
 * optionally inside a simulated node's network namespace, keeping its output for assertions.
 *
 *   const k = startKeelson(['run', '--root-dir', dir, ...], { netns: node.netns });
 *   await k.waitForLine(/keelson running/);
 *   const state = await keelsonStatus(dir);   // `keelson status --json`
 *   await k.stop();                          // SIGTERM, wait for exit
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { nsenterArgs } from './netns';

const execFileAsync = promisify(execFile);

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(REPO_ROOT, 'dist', 'agent', 'cli.js');
/** The pinned runtime: tests already run on it. */
export const NODE = process.execPath;

export interface KeelsonProcess {
  child: ChildProcess;
  output(): string;
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited(): Promise<number | null>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** V8 flags keelson runs with in production (scripts/node-flags, read by every launcher). */
export const KEELSON_NODE_FLAGS = (process.env.KEELSON_NODE_FLAGS ?? readFileSync(path.join(REPO_ROOT, 'scripts', 'node-flags'), 'utf8')).split(/\s+/).filter(Boolean);

export function startKeelson(args: string[], options: { netns?: string; env?: NodeJS.ProcessEnv } = {}): KeelsonProcess {
  const command = options.netns ? 'nsenter' : NODE;
  const node = [NODE, ...KEELSON_NODE_FLAGS, CLI, ...args];
  const argv = options.netns ? [...nsenterArgs(options.netns), ...node] : node.slice(1);
  // As the launchers (scripts/keelson, the packaged wrapper) run it.
  const child = spawn(command, argv, { env: { MALLOC_ARENA_MAX: '2', ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    live.delete(child);
    for (const w of waiters) w();
    resolve(code);
  }));
  return {
    child,
    output: () => text,
    waitForLine(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = text.split('\n').find((l) => pattern.test(l));
          if (line !== undefined) {
            cleanup();
            resolve(line);
          } else if (child.exitCode !== null) {
            cleanup();
            reject(new Error(`keelson exited (${child.exitCode}) before printing ${pattern}:\n${text}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}:\n${text}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

export async function runKeelson(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(NODE, [CLI, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `keelson status --json` for a root dir (the daemon's state as the operator sees it). */
export async function keelsonStatus(rootDir: string): Promise<{ code: number; state: Record<string, any> | undefined; stderr: string }> {
  const r = await runKeelson(['status', '--root-dir', rootDir, '--json']);
  let state: Record<string, any> | undefined;
  try {
    state = r.stdout ? (JSON.parse(r.stdout) as Record<string, any>) : undefined;
  } catch {
    state = undefined;
  }
  return { code: r.code, state, stderr: r.stderr };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
