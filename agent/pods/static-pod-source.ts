/**
 * The static pod source: every file in staticPodPath (hidden files and folders skipped) is a pod
 * manifest. The folder is watched with fs.watch (debounced) and also rescanned periodically,
 * because fs.watch misses events on some filesystems and cannot watch a folder that does not exist
 * yet. Every scan rebuilds the full set of pods, and delivers it when it differs from the last one.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Clock, ClockTimer } from './clock';
import { parseManifest } from './manifest';
import type { ManifestProblem, PodSource } from './pod-source';
import { podKey, toStaticPod } from './static-pod';
import { ErrorCodes } from '../errors';

export interface StaticPodSourceOptions {
  staticPodPath: string;
  nodeName: string;
  logger: Logger;
  clock: Clock;
  /** Full rescan period (kubelet's fileCheckFrequency, 20 s). */
  rescanMs?: number;
  /** Delay between a file event and the scan, to coalesce bursts of writes. */
  debounceMs?: number;
}

function problemKey(p: ManifestProblem): string {
  return `${p.file}\0${p.document ?? ''}\0${p.field}\0${p.message}`;
}

export interface ScanResult {
  pods: Pod[];
  problems: ManifestProblem[];
  warnings: ManifestProblem[];
}

/** Reads and validates every manifest in dir. Missing dir → no pods. */
export async function scanStaticPods(dir: string, nodeName: string): Promise<ScanResult> {
  const result: ScanResult = { pods: [], problems: [], warnings: [] };
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw err;
  }
  const byKey = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    let text: string;
    try {
      if (!(await stat(file)).isFile()) continue;
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // removed between readdir and read
      result.problems.push({ file, field: '', message: `unreadable: ${code ?? String(err)}` });
      continue;
    }
    const parsed = parseManifest(text);
    if (parsed.fileError) {
      result.problems.push({ file, ...parsed.fileError });
      continue;
    }
    for (const doc of parsed.documents) {
      for (const e of doc.errors) result.problems.push({ file, document: doc.index, ...e });
      for (const w of doc.warnings) result.warnings.push({ file, document: doc.index, ...w });
      if (!doc.pod) continue;
      const pod = toStaticPod(doc.pod, doc.raw, file, nodeName);
      const key = podKey(pod);
      const first = byKey.get(key);
      if (first) {
        result.problems.push({ file, document: doc.index, field: 'metadata.name', message: `Duplicate value: pod ${key} is already defined in ${first}` });
        continue;
      }
      byKey.set(key, file);
      result.pods.push(pod);
    }
  }
  return result;
}

export function createStaticPodSource(options: StaticPodSourceOptions): PodSource {
  const { staticPodPath, nodeName, logger, clock } = options;
  const rescanMs = options.rescanMs ?? 20_000;
  const debounceMs = options.debounceMs ?? 100;
  let onPods: ((pods: Pod[]) => void) | undefined;
  let watcher: FSWatcher | undefined;
  let rescanTimer: ClockTimer | undefined;
  let debounceTimer: ClockTimer | undefined;
  let stopped = false;
  let scanning: Promise<void> | undefined;
  let again = false;
  let lastUids = '';
  let problems: ManifestProblem[] = [];
  let reported = new Set<string>();

  function ensureWatch() {
    if (watcher || stopped) return;
    try {
      watcher = watch(staticPodPath, { persistent: false }, () => schedule());
      watcher.on('error', () => {
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined; // folder missing: the periodic rescan retries
    }
  }

  function report(result: ScanResult) {
    const next = new Set<string>();
    for (const p of result.problems) {
      const key = problemKey(p);
      next.add(key);
      if (!reported.has(key)) {
        logger.error({ file: p.file, document: p.document, field: p.field, code: ErrorCodes.MANIFEST_INVALID }, `invalid static pod manifest: ${p.message}`);
      }
    }
    for (const w of result.warnings) {
      const key = 'w' + problemKey(w);
      next.add(key);
      if (!reported.has(key)) logger.warn({ file: w.file, document: w.document, field: w.field }, `static pod manifest: ${w.message}`);
    }
    for (const key of reported) {
      if (!next.has(key) && !key.startsWith('w')) logger.info({ file: key.split('\0')[0] }, 'static pod manifest problem resolved');
    }
    reported = next;
    problems = result.problems;
  }

  async function scanOnce() {
    let result: ScanResult;
    try {
      result = await scanStaticPods(staticPodPath, nodeName);
    } catch (err) {
      logger.error({ err, path: staticPodPath }, 'cannot read static pod folder');
      return;
    }
    if (stopped) return;
    report(result);
    const uids = result.pods.map((p) => p.metadata!.uid).sort().join(',');
    if (uids !== lastUids) {
      lastUids = uids;
      onPods?.(result.pods);
    }
  }

  function scan(): Promise<void> {
    if (scanning) {
      again = true;
      return scanning;
    }
    scanning = (async () => {
      do {
        again = false;
        await scanOnce();
      } while (again && !stopped);
      scanning = undefined;
    })();
    return scanning;
  }

  function schedule() {
    if (stopped || debounceTimer) return;
    debounceTimer = clock.setTimer(debounceMs, () => {
      debounceTimer = undefined;
      void scan();
    });
  }

  function periodic() {
    rescanTimer = clock.setTimer(rescanMs, () => {
      if (stopped) return;
      ensureWatch();
      void scan().finally(periodic);
    });
  }

  return {
    name: 'file',
    async start(handler) {
      onPods = handler;
      stopped = false;
      ensureWatch();
      lastUids = '\0'; // always deliver the first set, even when empty
      await scan();
      periodic();
    },
    stop() {
      stopped = true;
      watcher?.close();
      watcher = undefined;
      rescanTimer?.cancel();
      debounceTimer?.cancel();
    },
    problems: () => problems,
  };
}
