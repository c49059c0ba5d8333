/**
 * Tells a SIGTERM that restarts or stops keelson alone from one that is part of the host going down
 * (kubelet's graceful node shutdown has to know the difference: pods stay on a restart of keelson
 * and are stopped in priority order on a host shutdown). Checked when the signal arrives:
 *  - a shutdown or reboot job queued in systemd (`systemctl list-jobs`), which is how `systemctl
 *    poweroff|reboot`, `shutdown -h now` and logind's power key start;
 *  - the manager already in state `stopping` (`systemctl is-system-running`);
 *  - a `shutdown +N` due within a minute (/run/systemd/shutdown/scheduled, USEC=): earlier than
 *    that, a SIGTERM is an operator restarting keelson, not the shutdown.
 * Without systemd as init (/run/systemd/system missing) the answer is always no.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export interface ShutdownCheck {
  shuttingDown: boolean;
  /** What showed it, for the log line. */
  reason?: string;
}

export interface ShutdownProbeDeps {
  exists?: (path: string) => boolean;
  /** Reads a file, or undefined when it cannot be read. */
  readFile?: (path: string) => string | undefined;
  now?: () => number;
  /** Runs systemctl with these arguments; resolves stdout whatever the exit code. */
  systemctl?: (args: string[]) => Promise<string>;
}

const SCHEDULED = '/run/systemd/shutdown/scheduled';
const SCHEDULED_SOON_MS = 60_000;
const TARGETS = /^\s*\d+\s+(poweroff|reboot|halt|kexec|shutdown|soft-reboot)\.target\s+start\b/gm;

const runSystemctl = (args: string[]): Promise<string> =>
  new Promise((resolve) => {
    execFile('systemctl', args, { timeout: 3000, encoding: 'utf8' }, (_err, stdout) => resolve(stdout ?? ''));
  });

export async function hostShuttingDown(deps: ShutdownProbeDeps = {}): Promise<ShutdownCheck> {
  const exists = deps.exists ?? existsSync;
  const readFile = deps.readFile ?? ((p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  });
  const now = deps.now ?? Date.now;
  const systemctl = deps.systemctl ?? runSystemctl;
  if (!exists('/run/systemd/system')) return { shuttingDown: false };
  const [jobs, state] = await Promise.all([systemctl(['list-jobs', '--no-legend', '--no-pager']), systemctl(['is-system-running'])]);
  // shutdown.target is queued alongside the one that says what happens next: name that one.
  const targets = [...jobs.matchAll(TARGETS)].map((m) => m[1]!);
  const target = targets.find((name) => name !== 'shutdown') ?? targets[0];
  if (target) return { shuttingDown: true, reason: `${target}.target job queued` };
  if (state.trim() === 'stopping') return { shuttingDown: true, reason: 'system state stopping' };
  const usec = Number(readFile(SCHEDULED)?.match(/^USEC=(\d+)$/m)?.[1]);
  if (Number.isFinite(usec) && usec / 1000 - now() <= SCHEDULED_SOON_MS) return { shuttingDown: true, reason: 'scheduled shutdown due' };
  return { shuttingDown: false };
}
