/**
 * What the runtime holds for one pod (kubelet's runtime PodStatus): its sandboxes and every
 * container instance with its exit code and times, newest first. A sync reads the pod's sandboxes
 * and containers from the PLEG's last relist (RelistCache) unless it asks for a fresh list after
 * changing the runtime; container statuses are cached while the listed state is unchanged, and
 * sandbox IPs per sandbox, so a steady pod costs no CRI call per sync.
 */
import { ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_UID } from './labels';
import type { Container, ContainerStatus, PodRuntime, PodSandbox } from './runtime';
import { exitedContainerMessage } from './termination-message';

export interface SandboxInstance extends PodSandbox {
  /** Pod IP, read for the newest ready sandbox only ('' otherwise). */
  ip: string;
}

export interface ContainerInstance extends ContainerStatus {
  /** The container's name in the pod spec (label io.kubernetes.container.name). */
  name: string;
  restartCount: number;
}

export interface RuntimePodState {
  uid: string;
  sandboxes: SandboxInstance[];
  containers: ContainerInstance[];
}

export function restartCountOf(c: Pick<Container, 'annotations' | 'metadata'>): number {
  const n = Number(c.annotations[ANNOTATION_RESTART_COUNT]);
  return Number.isInteger(n) && n >= 0 ? n : c.metadata.attempt;
}

export interface ReadOptions {
  /**
   * List the runtime for this pod now instead of using the last relist (after the worker changed
   * the runtime). Later cached reads then wait for a relist that started after this read.
   */
  fresh?: boolean;
}

export interface RuntimeStateReader {
  read(uid: string, options?: ReadOptions): Promise<RuntimePodState>;
  /** Drops cached statuses of containers that are gone. */
  forget(containerIds: string[]): void;
}

/**
 * The PLEG's view of the whole runtime, shared with the reader so that a pod's sync reads its
 * sandboxes and containers from the last relist instead of listing the runtime once per pod.
 */
export interface RelistCache {
  /** Called when a relist starts; returns its sequence number. */
  begin(): number;
  /** The lists of relist `seq` (keelson-managed objects only). */
  store(seq: number, sandboxes: PodSandbox[], containers: Container[]): void;
}

export interface CachingRuntimeStateReader extends RuntimeStateReader, RelistCache {}

type Lists = { sandboxes: PodSandbox[]; containers: Container[] };

export function createRuntimeStateReader(runtime: PodRuntime): CachingRuntimeStateReader {
  /** Container statuses by pod UID, then container ID; reused while the listed state is unchanged. */
  const statuses = new Map<string, Map<string, ContainerStatus>>();
  const sandboxIPs = new Map<string, string>();
  let started = 0;
  let snapshot: { seq: number; byUid: Map<string, Lists> } | undefined;
  /** Per pod, the oldest relist its cached reads may use. */
  const needSeq = new Map<string, number>();

  async function list(uid: string, fresh: boolean): Promise<Lists> {
    const need = needSeq.get(uid) ?? 0;
    if (!fresh && snapshot && snapshot.seq >= need) {
      const lists = snapshot.byUid.get(uid);
      return { sandboxes: [...(lists?.sandboxes ?? [])], containers: [...(lists?.containers ?? [])] };
    }
    needSeq.set(uid, started + 1);
    const selector = { labels: { [LABEL_POD_UID]: uid } };
    const [sandboxes, containers] = await Promise.all([runtime.listPodSandboxes(selector), runtime.listContainers(selector)]);
    return { sandboxes, containers };
  }

  return {
    begin: () => ++started,
    store(seq, sandboxes, containers) {
      if (snapshot && snapshot.seq > seq) return;
      const byUid = new Map<string, Lists>();
      const entry = (uid: string) => {
        let e = byUid.get(uid);
        if (!e) byUid.set(uid, (e = { sandboxes: [], containers: [] }));
        return e;
      };
      for (const s of sandboxes) if (s.labels[LABEL_POD_UID]) entry(s.labels[LABEL_POD_UID]).sandboxes.push(s);
      for (const c of containers) if (c.labels[LABEL_POD_UID]) entry(c.labels[LABEL_POD_UID]).containers.push(c);
      snapshot = { seq, byUid };
      for (const uid of [...needSeq.keys()]) if (!byUid.has(uid) && (needSeq.get(uid) ?? 0) <= seq) needSeq.delete(uid);
      for (const uid of [...statuses.keys()]) if (!byUid.has(uid)) statuses.delete(uid);
      const live = new Set(sandboxes.map((s) => s.id));
      for (const id of [...sandboxIPs.keys()]) if (!live.has(id)) sandboxIPs.delete(id);
    },
    async read(uid, options = {}) {
      const { sandboxes, containers } = await list(uid, options.fresh === true);
      sandboxes.sort((a, b) => b.createdAt - a.createdAt || b.metadata.attempt - a.metadata.attempt);
      const sbs: SandboxInstance[] = sandboxes.map((s) => ({ ...s, ip: '' }));
      const newest = sbs[0];
      if (newest && newest.state === 'ready') {
        let ip = sandboxIPs.get(newest.id);
        if (ip === undefined) {
          ip = (await runtime.podSandboxStatus(newest.id)).ip;
          sandboxIPs.set(newest.id, ip);
        }
        newest.ip = ip;
      }
      const known = statuses.get(uid) ?? new Map<string, ContainerStatus>();
      const next = new Map<string, ContainerStatus>();
      const instances: ContainerInstance[] = [];
      await Promise.all(
        containers.map(async (c) => {
          let status = known.get(c.id);
          // an exited container never changes; a running one only changes by leaving `running`
          if (!status || status.state !== c.state || (c.state !== 'exited' && c.state !== 'running')) {
            try {
              status = await runtime.containerStatus(c.id);
            } catch {
              return; // removed since the list
            }
            // read once per exit (the status is cached from here on): the termination message file or log tail
            if (status.state === 'exited') status = { ...status, message: await exitedContainerMessage(status) };
          }
          next.set(c.id, status);
          instances.push({
            ...status,
            podSandboxId: c.podSandboxId,
            name: c.labels[LABEL_CONTAINER_NAME] ?? c.metadata.name,
            restartCount: restartCountOf(c),
          });
        }),
      );
      statuses.set(uid, next);
      instances.sort((a, b) => b.restartCount - a.restartCount || b.createdAt - a.createdAt);
      return { uid, sandboxes: sbs, containers: instances };
    },
    forget(ids) {
      const gone = new Set(ids);
      for (const m of statuses.values()) for (const id of gone) m.delete(id);
    },
  };
}
