/**
 * What the runtime holds for one pod (kubelet's runtime PodStatus): its sandboxes and every
 * container instance with its exit code and times, newest first. Exited containers never change,
 * so their statuses are cached by ID.
 */
import { ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_UID } from './labels';
import type { Container, ContainerStatus, PodRuntime, PodSandbox } from './runtime';

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

export interface RuntimeStateReader {
  read(uid: string): Promise<RuntimePodState>;
  /** Drops cached statuses of containers that are gone. */
  forget(containerIds: string[]): void;
}

export function createRuntimeStateReader(runtime: PodRuntime): RuntimeStateReader {
  const exited = new Map<string, ContainerStatus>();
  return {
    async read(uid) {
      const selector = { labels: { [LABEL_POD_UID]: uid } };
      const [sandboxes, containers] = await Promise.all([runtime.listPodSandboxes(selector), runtime.listContainers(selector)]);
      sandboxes.sort((a, b) => b.createdAt - a.createdAt || b.metadata.attempt - a.metadata.attempt);
      const sbs: SandboxInstance[] = sandboxes.map((s) => ({ ...s, ip: '' }));
      const newest = sbs[0];
      if (newest && newest.state === 'ready') newest.ip = (await runtime.podSandboxStatus(newest.id)).ip;
      const instances: ContainerInstance[] = [];
      await Promise.all(
        containers.map(async (c) => {
          let status = exited.get(c.id);
          if (!status) {
            try {
              status = await runtime.containerStatus(c.id);
            } catch {
              return; // removed since the list
            }
            if (status.state === 'exited') exited.set(c.id, status);
          }
          instances.push({
            ...status,
            podSandboxId: c.podSandboxId,
            name: c.labels[LABEL_CONTAINER_NAME] ?? c.metadata.name,
            restartCount: restartCountOf(c),
          });
        }),
      );
      instances.sort((a, b) => b.restartCount - a.restartCount || b.createdAt - a.createdAt);
      return { uid, sandboxes: sbs, containers: instances };
    },
    forget(ids) {
      for (const id of ids) exited.delete(id);
    },
  };
}
