/**
 * Shared set-up of the pod spec feature tests on a real containerd (spec-features, spec-termination,
 * spec-seccomp, spec-subpathexpr): a private containerd in its own network namespace, keelson's
 * kubelet driven through createKubelet with an in-memory pod source and PodDataLookup, and helpers
 * to add pods, wait for a status and run a command in a container (CRI ExecSync).
 *
 *   const itest = integrationTest({ root: true, commands: SPEC_NODE_COMMANDS });
 *   const node = specNode(itest, { podSubnet: '10.88.21.0/24' });
 *   itest.serial('…', async (t) => { node.add(node.pod('p', { containers: [...] })); … });
 *
 * Registers its own before / afterEach / after hooks on `itest`; `after` removes every pod through
 * the kubelet (so volumes are unmounted), stops it and containerd, and deletes the root folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestFn } from 'ava';
import type { Pod, PodStatus } from 'kubernetes-types/core/v1';
import pino from 'pino';
import { createCriClient, type CriClient } from '../../cri/client';
import { createKubelet, type KubeletComponent, type KubeletConfig } from '../../agent/pods';
import { applyDefaults } from '../../agent/pods/manifest';
import type { PodSource } from '../../agent/pods/pod-source';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { BUSYBOX_IMAGE } from '../harness/images';
import { memoryPodData, type MemoryPodData } from './spec-helpers';

export const SPEC_NODE_COMMANDS = ['containerd', 'runc', 'nsenter', 'ip', 'mount', 'umount'];
export const SPEC_NODE_IP = '192.0.2.10';

export interface SpecNodeOptions {
  podSubnet: string;
  /** More kubelet config (rootDir and podLogsDir are the node's own). */
  config?: Partial<KubeletConfig>;
  /** ConfigMaps, Secrets and Services the pods may reference (node.data, changeable later). */
  objects?: Parameters<typeof memoryPodData>[0];
  /** Called once the root folder exists, before the kubelet starts (seccomp profiles, the first pods). */
  prepare?(rootDir: string): Promise<void>;
}

export interface SpecNode {
  readonly cri: CriClient;
  readonly kubelet: KubeletComponent;
  readonly containerd: ContainerdNode;
  readonly rootDir: string;
  readonly data: MemoryPodData;
  /** Every log record of the kubelet (debug and up). */
  readonly logs: Record<string, unknown>[];
  /** A defaulted pod in namespace ns1 with a unique UID, grace period 0. */
  pod(name: string, spec: Record<string, unknown>, meta?: Record<string, unknown>): Pod;
  /** Runs the pods beside the ones already given (same name: replaced). */
  add(...pods: Pod[]): void;
  remove(name: string): void;
  /** The UID of a pod given to add(). */
  uid(name: string): string;
  statusOf(name: string): PodStatus | undefined;
  waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
  /** The ID of the container's running instance (waits for one). */
  containerId(podName: string, container: string): Promise<string>;
  /** stdout + stderr of `sh -c script` in the running container. */
  exec(podName: string, container: string, script: string): Promise<string>;
}

/** A busybox container running `sh -c script`, image never pulled. */
export const sh = (script: string) => ({ image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', script] });

export function specNode(itest: TestFn, options: SpecNodeOptions): SpecNode {
  const pods = new Map<string, Pod>();
  const logs: Record<string, unknown>[] = [];
  let deliver: (pods: Pod[]) => void = () => undefined;
  const setPods = () => deliver([...pods.values()]);
  let containerd: ContainerdNode | undefined;
  let cri: CriClient | undefined;
  let kubelet: KubeletComponent | undefined;
  let rootDir = '';
  const data = memoryPodData(options.objects ?? {});

  const node: SpecNode = {
    get cri() { return cri!; },
    get kubelet() { return kubelet!; },
    get containerd() { return containerd!; },
    get rootDir() { return rootDir; },
    data,
    logs,
    pod(name, spec, meta = {}) {
      return applyDefaults({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, namespace: 'ns1', uid: `uid-${name}-${process.pid}`, ...meta },
        spec: { nodeName: 'edge1', terminationGracePeriodSeconds: 0, ...spec },
      } as Pod);
    },
    add(...more) {
      for (const p of more) pods.set(p.metadata!.name!, p);
      setPods();
    },
    remove(name) {
      pods.delete(name);
      setPods();
    },
    uid: (name) => pods.get(name)!.metadata!.uid!,
    statusOf: (name) => (pods.has(name) ? kubelet!.statusManager.getPodStatus(pods.get(name)!.metadata!.uid!) : undefined),
    async waitFor(what, fn, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await fn();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pods: ${JSON.stringify(kubelet?.pods())}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async containerId(podName, container) {
      return node.waitFor(`${podName}/${container} running`, async () => {
        const { containers } = await cri!.listContainers({ filter: { label_selector: { 'io.kubernetes.pod.uid': pods.get(podName)!.metadata!.uid!, 'io.kubernetes.container.name': container } } });
        return containers.find((c) => c.state === 'CONTAINER_RUNNING')?.id;
      });
    },
    async exec(podName, container, script) {
      const res = await cri!.execSync({ container_id: await node.containerId(podName, container), cmd: ['sh', '-c', script], timeout: 10 });
      return res.stdout.toString('utf8') + res.stderr.toString('utf8');
    },
  };

  itest.before(async () => {
    containerd = await startContainerd({ podSubnet: options.podSubnet });
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'keelson-spec-root-'));
    await options.prepare?.(rootDir);
    cri = createCriClient({ endpoint: containerd.endpoint });
    const source: PodSource = {
      name: 'test',
      async start(onPods) {
        deliver = onPods;
        setPods();
      },
      stop() {},
      problems: () => [],
    };
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    kubelet = createKubelet({
      cri, logger, podData: data,
      config: {
        staticPodPath: '/nonexistent', podLogsDir: containerd.podLogDir, rootDir, nodeName: 'edge1', nodeIP: SPEC_NODE_IP,
        resyncMs: 1500, backoff: { initialMs: 500, maxMs: 1000 }, ...options.config,
      },
    }, { sources: [source] });
    await kubelet.start();
  });

  itest.afterEach.always((t) => {
    if (!t.passed) containerd?.markFailed();
  });

  itest.after.always(async () => {
    if (process.env.KT_DEBUG) for (const l of logs) if ((l.level as number) >= (process.env.KT_DEBUG === 'all' ? 0 : 40)) console.log(JSON.stringify(l));
    pods.clear();
    setPods();
    if (kubelet) await node.waitFor('pods removed', () => kubelet!.pods().length === 0, 10_000).catch(() => undefined);
    await Promise.race([kubelet?.stop(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    cri?.close();
    await containerd?.stop();
    if (rootDir) {
      try {
        execFileSync('sh', ['-c', `grep -o " ${rootDir}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`]);
      } catch {
        // nothing mounted
      }
      await rm(rootDir, { recursive: true, force: true });
    }
  });

  return node;
}
