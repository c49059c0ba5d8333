/**
 * Shared set-up of the kubelet unit tests (kubelet.test.ts, health-*.test.ts, gc-*.test.ts, …):
 * a kubelet on the fake runtime and fake clock, fed by an in-memory pod source.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Pod } from 'kubernetes-types/core/v1';
import { createFakeClock, type FakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime, type FakeRuntime } from '../../agent/pods/fake-runtime';
import { createKubelet, type KubeletComponent, type KubeletConfig } from '../../agent/pods/kubelet';
import { applyDefaults } from '../../agent/pods/manifest';
import type { PodSource } from '../../agent/pods/pod-source';
import { toStaticPod } from '../../agent/pods/static-pod';

export const IMAGE = 'busybox:1';

export function makePod(name: string, spec: object = {}, containers: object[] = [{ name: 'app', image: IMAGE }]): Pod {
  const raw = { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers, ...spec } };
  return toStaticPod(applyDefaults(raw as Pod), raw, `/manifests/${name}.yaml`, 'node1');
}

export function memorySource(initial: Pod[] = []) {
  let deliver: (pods: Pod[]) => void = () => {};
  let current = initial;
  const source: PodSource & { set(pods: Pod[]): void } = {
    name: 'memory',
    async start(onPods) {
      deliver = onPods;
      onPods(current);
    },
    stop() {},
    problems: () => [],
    set(pods) {
      current = pods;
      deliver(pods);
    },
  };
  return source;
}

export interface Env {
  clock: FakeClock;
  runtime: FakeRuntime;
  source: ReturnType<typeof memorySource>;
  kubelet: KubeletComponent;
  logs: Record<string, unknown>[];
  /** Lets promises run, then moves the fake clock by ms (relists fire every 1000 ms). */
  tick(ms?: number): Promise<void>;
  /** Lets ms of fake time pass in steps of stepMs (so async work started by a timer can set its next timer). */
  pass(ms: number, stepMs?: number): Promise<void>;
  /** Ticks in steps of stepMs until fn is true or maxMs of fake time passed; returns fake ms waited. */
  until(fn: () => boolean, maxMs?: number, stepMs?: number): Promise<number>;
}

/** File system requests in flight (the workers' log folders, pod files, termination messages). */
const fsBusy = () => process.getActiveResourcesInfo().some((r) => r.startsWith('FSReq'));

/** Lets the workers run until the runtime sees no new calls and no file I/O is pending for a few turns. */
export async function flush(runtime?: FakeRuntime) {
  let quiet = 0;
  let seen = -1;
  while (quiet < 4) {
    await new Promise((r) => setTimeout(r, 2));
    const n = runtime?.calls.length ?? 0;
    quiet = n === seen && !fsBusy() ? quiet + 1 : 0;
    seen = n;
  }
}

let rootDir: string | undefined;

/** One temp rootDir per test process (pod folders, termination message files), removed at exit. */
export function unitRootDir(): string {
  if (!rootDir) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keelson-unit-root-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    rootDir = dir;
  }
  return rootDir;
}

/** A kubelet on the fake runtime; `initial` is what its source holds at start (as a folder scan would). */
export async function setup(options: { runtime?: FakeRuntime; clock?: FakeClock; config?: Partial<KubeletConfig>; initial?: Pod[] } = {}): Promise<Env> {
  const clock = options.clock ?? createFakeClock();
  const runtime = options.runtime ?? createFakeRuntime(clock, { images: [IMAGE] });
  const source = memorySource(options.initial);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const kubelet = createKubelet(
    {
      runtime, clock, logger,
      config: { staticPodPath: '/manifests', podLogsDir: '/tmp/keelson-test-pod-logs', rootDir: unitRootDir(), nodeName: 'node1', resolvConf: '/nonexistent', ...options.config },
    },
    { sources: [source] },
  );
  await kubelet.start();
  await flush(runtime);
  const env: Env = {
    clock, runtime, source, kubelet, logs,
    async tick(ms = 1000) {
      await flush(runtime);
      clock.advance(ms);
      await flush(runtime);
    },
    async pass(ms, stepMs = 500) {
      for (let left = ms; left > 0; left -= stepMs) await env.tick(Math.min(stepMs, left));
    },
    async until(fn, maxMs = 120_000, stepMs = 500) {
      let waited = 0;
      while (!fn()) {
        if (waited >= maxMs) throw new Error(`condition not met after ${maxMs} ms of fake time`);
        await env.tick(stepMs);
        waited += stepMs;
      }
      return waited;
    },
  };
  return env;
}

export const running = (rt: FakeRuntime) => [...rt.containers.values()].filter((c) => c.state === 'running');
