/**
 * sd_notify for keelson under `Type=notify`: READY=1 once serving, STATUS= lines while starting and
 * running, STOPPING=1 on shutdown, and WATCHDOG=1 from the main event loop.
 *
 * Why the `systemd-notify` tool: the protocol is one datagram on the AF_UNIX socket named by
 * $NOTIFY_SOCKET, and Node.js has no unix datagram sockets (dgram is UDP only, net is stream only);
 * a native addon is ruled out (one build for arm64 and amd64, no compiler on the target), and socat
 * or python are not on every host. `systemd-notify` ships with systemd itself, so it is on every
 * host that has a NOTIFY_SOCKET to talk to, on every architecture. Three details make it reliable:
 *  - the datagram's sender is the short-lived systemd-notify process, not keelson's main PID, so the
 *    unit needs `NotifyAccess=all` (any process of the unit's cgroup may notify; keelson's children
 *    are only its own tools, and containers live in the runtime's cgroups, not ours);
 *  - systemd ≥ 246 (Debian 12 has 252) makes systemd-notify wait until the manager has processed the
 *    message (a BARRIER=1 round trip), so systemd still finds the sender in our cgroup: the old race
 *    that lost notifications from exited helpers is gone (we never pass --no-block);
 *  - `--pid=<keelson's pid>` adds MAINPID=, so systemd tracks (watches, signals with KillMode=process)
 *    the Node.js process itself even if a wrapper script in ExecStart forked instead of exec'ing.
 * Each call is one fork+exec of a small binary (a few ms); the watchdog sends one every
 * WATCHDOG_USEC/2 (30 s with WatchdogSec=60). The pings are timers on the main event loop: a loop
 * that is blocked or frozen stops pinging, and systemd then aborts and restarts keelson.
 * Everything is a no-op when NOTIFY_SOCKET is unset (not started by systemd, or Type=simple).
 */
import { execFile } from 'node:child_process';

export const SYSTEMD_NOTIFY_BINARY = 'systemd-notify';
/** systemd truncates nothing this short; longer STATUS= text is cut here. */
const MAX_STATUS_LENGTH = 200;
const NOTIFY_TIMEOUT_MS = 10_000;

/** Runs systemd-notify with these arguments and this environment; rejects on failure. */
export type NotifyRunner = (args: string[], env: NodeJS.ProcessEnv) => Promise<void>;

export interface NotifyLogger {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface NotifierOptions {
  /** Default process.env. NOTIFY_SOCKET and WATCHDOG_* are removed from it so children do not inherit them. */
  env?: NodeJS.ProcessEnv;
  /** The main PID reported to systemd (default process.pid). */
  pid?: number;
  /** Parent pid: a wrapper script that systemd still sees as the main PID (default process.ppid). */
  ppid?: number;
  run?: NotifyRunner;
  logger?: NotifyLogger;
  setInterval?: (fn: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
}

export interface Notifier {
  /** True when started by systemd with a notification socket. */
  readonly enabled: boolean;
  /** Watchdog interval systemd expects (µs from WATCHDOG_USEC), or undefined when not enabled for us. */
  readonly watchdogUsec: number | undefined;
  status(text: string): Promise<void>;
  ready(status?: string): Promise<void>;
  stopping(status?: string): Promise<void>;
  /** Sends WATCHDOG=1 now and then every watchdogUsec/2 from the event loop; returns a stop function. */
  startWatchdog(): () => void;
}

const defaultRunner: NotifyRunner = (args, env) =>
  new Promise((resolve, reject) => {
    execFile(SYSTEMD_NOTIFY_BINARY, args, { env, timeout: NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${SYSTEMD_NOTIFY_BINARY} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });

/** One line, printable, bounded: systemd shows STATUS= in `systemctl status`. */
export function statusText(text: string): string {
  const line = text.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e\u00a0-\uffff]/g, '').trim();
  return line.length > MAX_STATUS_LENGTH ? `${line.slice(0, MAX_STATUS_LENGTH - 1)}…` : line;
}

/** WATCHDOG_USEC when the watchdog is meant for us (WATCHDOG_PID unset, ours or our wrapper's). */
export function watchdogUsecFrom(env: NodeJS.ProcessEnv, pid: number, ppid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  const owner = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : undefined;
  if (owner !== undefined && owner !== pid && owner !== ppid) return undefined;
  return usec;
}

export function createNotifier(options: NotifierOptions = {}): Notifier {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const ppid = options.ppid ?? process.ppid;
  const socket = env.NOTIFY_SOCKET;
  const watchdogUsec = socket ? watchdogUsecFrom(env, pid, ppid) : undefined;
  // Only our own systemd-notify calls get the socket: a tool keelson runs must not notify for it.
  const notifyEnv: NodeJS.ProcessEnv = { ...env };
  for (const key of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[key];
  const run = options.run ?? defaultRunner;
  const setTimer = options.setInterval ?? setInterval;
  const clearTimer = options.clearInterval ?? ((h: unknown) => clearInterval(h as NodeJS.Timeout));
  let failing = false;
  // Serialised so STATUS/READY/STOPPING reach systemd in the order they were sent.
  let queue: Promise<void> = Promise.resolve();

  function send(args: string[]): Promise<void> {
    if (!socket) return Promise.resolve();
    const argv = [`--pid=${pid}`, ...args];
    queue = queue.then(
      () =>
        run(argv, notifyEnv).then(
          () => {
            if (failing) options.logger?.warn({ socket }, 'systemd notifications work again');
            failing = false;
          },
          (err: unknown) => {
            // One warning per outage, not one per watchdog ping.
            if (!failing) options.logger?.warn({ err, socket }, 'cannot notify systemd (systemd-notify failed); the watchdog may restart keelson');
            failing = true;
          },
        ),
    );
    return queue;
  }

  return {
    enabled: Boolean(socket),
    watchdogUsec,
    status: (text) => send([`STATUS=${statusText(text)}`]),
    ready: (status) => send(['READY=1', ...(status ? [`STATUS=${statusText(status)}`] : [])]),
    stopping: (status) => send(['STOPPING=1', ...(status ? [`STATUS=${statusText(status)}`] : [])]),
    startWatchdog() {
      if (!socket || !watchdogUsec) return () => {};
      const intervalMs = Math.max(100, Math.floor(watchdogUsec / 2000));
      void send(['WATCHDOG=1']);
      const handle = setTimer(() => void send(['WATCHDOG=1']), intervalMs);
      (handle as { unref?: () => void }).unref?.();
      options.logger?.debug({ intervalMs }, 'systemd watchdog pings started');
      return () => clearTimer(handle);
    },
  };
}
