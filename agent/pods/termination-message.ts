/**
 * Termination messages, as kubelet handles them: every container with a terminationMessagePath gets
 * an empty file of its own (`<podDir>/containers/<name>/<random id>`, mode 0666) bind-mounted at
 * that path. When the container has exited, the last 4 KiB of the file become its
 * `terminated.message`; with `FallbackToLogsOnError`, an empty (or missing) file and a non-zero
 * exit, the tail of its log is used instead (last 80 lines, at most 2 KiB). The path and the
 * policy travel as container annotations and the file is found through the runtime's mounts, so a
 * restarted keelson reads the messages of containers it did not start itself. All messages of a
 * pod together stay within 12 KiB (split evenly over its containers).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Container, Pod, PodStatus } from 'kubernetes-types/core/v1';
import { ANNOTATION_TERMINATION_MESSAGE_PATH, ANNOTATION_TERMINATION_MESSAGE_POLICY } from './labels';
import type { ContainerStatus, Mount } from './runtime';
import { writeContainerLog } from './container-logs';
import { errorMessage } from '../errors';

export const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';
export const TERMINATION_MESSAGE_POLICIES = ['File', 'FallbackToLogsOnError'];
/** Bytes read from the end of a termination message file. */
export const MAX_CONTAINER_MESSAGE_BYTES = 4096;
/** Bytes and lines taken from the end of the log for FallbackToLogsOnError. */
export const MAX_LOG_MESSAGE_BYTES = 2048;
export const MAX_LOG_MESSAGE_LINES = 80;
/** All terminated messages of one pod's statuses together. */
export const MAX_POD_MESSAGE_BYTES = 12 * 1024;

/** The path as the container sees it: relative paths are taken from the root, as kubelet does. */
export function terminationMessagePath(c: Container): string {
  const p = c.terminationMessagePath ?? '';
  return p && !p.startsWith('/') ? `/${p}` : p;
}

/** The annotations that let the message be found again once the container exited. */
export function terminationMessageAnnotations(c: Container): Record<string, string> {
  const p = terminationMessagePath(c);
  if (!p) return {};
  return { [ANNOTATION_TERMINATION_MESSAGE_PATH]: p, [ANNOTATION_TERMINATION_MESSAGE_POLICY]: c.terminationMessagePolicy || 'File' };
}

/**
 * Creates a fresh, empty message file for one instance of the container under the pod's folder and
 * returns its mount; undefined when the container has no terminationMessagePath.
 */
export async function terminationMessageMount(podDir: string, c: Container): Promise<Mount | undefined> {
  const containerPath = terminationMessagePath(c);
  if (!containerPath) return undefined;
  const dir = path.join(podDir, 'containers', c.name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const hostPath = path.join(dir, randomBytes(4).toString('hex'));
  await writeFile(hostPath, '', { flag: 'wx' });
  // any container user may write it, whatever the umask
  await chmod(hostPath, 0o666);
  return { containerPath, hostPath, readonly: false };
}

/** The last `max` bytes of a file. */
async function readTail(file: string, max: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, max);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, size - length);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The content of the last lines of a CRI log file, at most `maxBytes` from its end. */
export async function logTail(logPath: string, lines = MAX_LOG_MESSAGE_LINES, maxBytes = MAX_LOG_MESSAGE_BYTES): Promise<string> {
  const chunks: Buffer[] = [];
  await writeContainerLog(logPath, { follow: false, tailLines: lines, timestamps: false }, {
    write: (chunk) => chunks.push(chunk) > 0,
    drain: async () => {},
    closed: () => false,
  });
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - maxBytes)).toString('utf8');
}

/**
 * The message of an exited container: the runtime's own message, then (after ": ") what the
 * container wrote to its termination message file or, per its policy, the tail of its log.
 */
export async function exitedContainerMessage(status: ContainerStatus): Promise<string> {
  const containerPath = status.annotations[ANNOTATION_TERMINATION_MESSAGE_PATH] ?? '';
  const policy = status.annotations[ANNOTATION_TERMINATION_MESSAGE_POLICY] ?? 'File';
  // a container that could not even start has no log worth showing
  let fallback = policy === 'FallbackToLogsOnError' && status.exitCode !== 0 && status.reason !== 'ContainerCannotRun' && status.reason !== 'StartError';
  let message = '';
  const hostPath = containerPath ? status.mounts?.find((m) => m.containerPath === containerPath)?.hostPath : undefined;
  if (hostPath) {
    try {
      message = (await readTail(hostPath, MAX_CONTAINER_MESSAGE_BYTES)).toString('utf8');
      fallback &&= message.length === 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        message = `Error on reading termination log ${hostPath}: ${errorMessage(err)}`;
        fallback = false;
      }
    }
  }
  if (fallback && status.logPath) {
    try {
      message = await logTail(status.logPath);
    } catch (err) {
      message = `Error on reading termination message from logs: ${errorMessage(err)}`;
    }
  }
  if (!message) return status.message;
  return status.message ? `${status.message}: ${message}` : message;
}

/** The first `max` bytes of s, cut at a character boundary. */
function truncateBytes(s: string, max: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= max) return s;
  let end = max;
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** Keeps every terminated message of the status within the pod's share (12 KiB over all its containers). */
export function capTerminationMessages(pod: Pod, status: PodStatus): void {
  const containers = (pod.spec?.containers.length ?? 0) + (pod.spec?.initContainers?.length ?? 0);
  const perContainer = Math.floor(MAX_POD_MESSAGE_BYTES / Math.max(1, containers));
  for (const s of [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])]) {
    for (const state of [s.state, s.lastState]) {
      const t = state?.terminated;
      if (t?.message) t.message = truncateBytes(t.message, perContainer);
    }
  }
}
