/**
 * What keelson last knew about its apiserver pods, on disk (offline autonomy, ARCHITECTURE.md): the
 * admitted pods and the ConfigMaps and Secrets they use, one JSON file per object under
 * `<rootDir>/checkpoints/`, so that after a daemon restart or a reboot with the apiserver
 * unreachable the same pods run again. Writes are crash-safe (temporary file, fsync, rename, fsync
 * of the folder); Secrets are written with mode 0600 in a 0700 folder. A file that cannot be read
 * or parsed is reported and skipped.
 *
 *   pods/<uid>.json, pods/.complete (the set was written at least once; an empty set is a set)
 *   configmaps/<namespace>_<name>.json, secrets/<namespace>_<name>.json
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigMap, Pod, Secret } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { isNotFound } from '../kube/api-error';
import { Resources, type ResourceDescriptor } from '../kube/resources';
import { canonicalJson } from './labels';

export type ConfigKind = 'ConfigMap' | 'Secret';

export interface PodCheckpoint {
  /** The checkpointed pods, or undefined when no set was ever written (first start). */
  loadPods(): Pod[] | undefined;
  /** Makes the checkpoint hold exactly these pods (writes only what changed). */
  savePods(pods: Pod[]): void;
  saveObject(kind: 'ConfigMap', obj: ConfigMap): void;
  saveObject(kind: 'Secret', obj: Secret): void;
  loadObject(kind: 'ConfigMap', namespace: string, name: string): ConfigMap | undefined;
  loadObject(kind: 'Secret', namespace: string, name: string): Secret | undefined;
  removeObject(kind: ConfigKind, namespace: string, name: string): void;
  /** `namespace/name` of every checkpointed object of a kind. */
  listObjects(kind: ConfigKind): string[];
}

/** Writes data to path so that a crash leaves either the old or the new content. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** The part of a pod worth keeping: no resourceVersion or managedFields, status reduced to what restarts need. */
export function checkpointForm(pod: Pod): Pod {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = pod.metadata ?? {};
  const status = pod.status ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata,
    spec: pod.spec,
    status: { ...(status.phase ? { phase: status.phase } : {}), ...(status.startTime ? { startTime: status.startTime } : {}) },
  };
}

const FOLDERS: Record<ConfigKind, string> = { ConfigMap: 'configmaps', Secret: 'secrets' };
const SAFE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function createPodCheckpoint(dir: string, logger: Logger): PodCheckpoint {
  const podsDir = join(dir, 'pods');
  const written = new Map<string, string>();
  let loaded = false;

  function ensure(path: string, mode: number) {
    mkdirSync(path, { recursive: true, mode });
  }

  function readJson<T>(file: string): T | undefined {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, file }, 'unreadable checkpoint file, skipped');
      return undefined;
    }
  }

  function objectFile(kind: ConfigKind, namespace: string, name: string): string | undefined {
    if (!SAFE.test(namespace) || !SAFE.test(name)) return undefined;
    return join(dir, FOLDERS[kind], `${namespace}_${name}.json`);
  }

  function loadPods(): Pod[] | undefined {
    loaded = true;
    if (!existsSync(join(podsDir, '.complete'))) return undefined;
    const pods: Pod[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(podsDir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    for (const name of names.sort()) {
      const pod = readJson<Pod>(join(podsDir, name));
      if (!pod?.metadata?.uid || !pod.metadata.name || !pod.spec?.containers) {
        if (pod) logger.warn({ file: join(podsDir, name) }, 'checkpointed pod without uid, name or containers, skipped');
        continue;
      }
      written.set(pod.metadata.uid, canonicalJson(pod));
      pods.push(pod);
    }
    return pods;
  }

  return {
    loadPods,
    savePods(pods) {
      if (!loaded) loadPods();
      ensure(podsDir, 0o700);
      const keep = new Set<string>();
      for (const pod of pods) {
        const uid = pod.metadata?.uid;
        if (!uid || !/^[A-Za-z0-9-]+$/.test(uid)) continue;
        keep.add(uid);
        const form = checkpointForm(pod);
        const text = canonicalJson(form);
        if (written.get(uid) === text) continue;
        writeFileAtomic(join(podsDir, `${uid}.json`), JSON.stringify(form), 0o600);
        written.set(uid, text);
      }
      for (const uid of [...written.keys()]) {
        if (keep.has(uid)) continue;
        rmSync(join(podsDir, `${uid}.json`), { force: true });
        written.delete(uid);
      }
      if (!existsSync(join(podsDir, '.complete'))) writeFileAtomic(join(podsDir, '.complete'), '', 0o600);
    },
    saveObject(kind: ConfigKind, obj: ConfigMap | Secret) {
      const file = objectFile(kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
      if (!file) return;
      ensure(join(dir, FOLDERS[kind]), kind === 'Secret' ? 0o700 : 0o755);
      const { resourceVersion: _rv, managedFields: _mf, ...metadata } = obj.metadata ?? {};
      writeFileAtomic(file, JSON.stringify({ ...obj, metadata }), kind === 'Secret' ? 0o600 : 0o644);
    },
    loadObject(kind: ConfigKind, namespace: string, name: string) {
      const file = objectFile(kind, namespace, name);
      return file ? readJson(file) : undefined;
    },
    removeObject(kind, namespace, name) {
      const file = objectFile(kind, namespace, name);
      if (file) rmSync(file, { force: true });
    },
    listObjects(kind) {
      try {
        return readdirSync(join(dir, FOLDERS[kind]))
          .filter((n) => n.endsWith('.json'))
          .map((n) => n.slice(0, -5).replace('_', '/'));
      } catch {
        return [];
      }
    },
  } as PodCheckpoint;
}

/** ConfigMaps and Secrets a pod uses (volumes, projected sources, env, envFrom, imagePullSecrets), as `namespace/name`. */
export function referencedConfigObjects(pod: Pod): { configMaps: string[]; secrets: string[] } {
  const ns = pod.metadata?.namespace ?? 'default';
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  const cm = (name?: string) => name && configMaps.add(`${ns}/${name}`);
  const sec = (name?: string) => name && secrets.add(`${ns}/${name}`);
  for (const v of pod.spec?.volumes ?? []) {
    cm(v.configMap?.name);
    sec(v.secret?.secretName);
    for (const s of v.projected?.sources ?? []) {
      cm(s.configMap?.name);
      sec(s.secret?.name);
    }
  }
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      cm(e.valueFrom?.configMapKeyRef?.name);
      sec(e.valueFrom?.secretKeyRef?.name);
    }
    for (const e of c.envFrom ?? []) {
      cm(e.configMapRef?.name);
      sec(e.secretRef?.name);
    }
  }
  for (const s of pod.spec?.imagePullSecrets ?? []) sec(s.name);
  return { configMaps: [...configMaps].sort(), secrets: [...secrets].sort() };
}

export interface ConfigObjectStore {
  /**
   * The ConfigMap or Secret from the apiserver (checkpointed on the way), or the checkpointed copy
   * when the apiserver cannot be reached; undefined when it does not exist; throws when it cannot be
   * known (unreachable and never checkpointed).
   */
  getConfigMap(namespace: string, name: string): Promise<ConfigMap | undefined>;
  getSecret(namespace: string, name: string): Promise<Secret | undefined>;
  /** Checkpoints what these pods use and drops checkpointed objects no pod uses any more. */
  refresh(pods: Pod[]): Promise<void>;
}

export interface ConfigObjectClient {
  get<T>(res: ResourceDescriptor<T>, name: string, options?: { namespace?: string; timeoutMs?: number }): Promise<T>;
}

export function createConfigObjectStore(client: ConfigObjectClient, checkpoint: PodCheckpoint, logger: Logger, timeoutMs = 5000): ConfigObjectStore {
  async function fetch<T extends ConfigMap | Secret>(kind: ConfigKind, namespace: string, name: string): Promise<T | undefined> {
    const res = kind === 'ConfigMap' ? Resources.configmaps : Resources.secrets;
    try {
      const obj = (await client.get(res as never, name, { namespace, timeoutMs })) as T;
      checkpoint.saveObject(kind as 'ConfigMap', obj as ConfigMap);
      return obj;
    } catch (err) {
      if (isNotFound(err)) {
        checkpoint.removeObject(kind, namespace, name);
        return undefined;
      }
      const saved = checkpoint.loadObject(kind as 'ConfigMap', namespace, name) as T | undefined;
      if (!saved) throw err; // cannot be known: the caller reports it and retries
      logger.debug({ err, object: `${kind} ${namespace}/${name}` }, 'apiserver unreachable; using the checkpointed copy');
      return saved;
    }
  }

  return {
    getConfigMap: (namespace, name) => fetch<ConfigMap>('ConfigMap', namespace, name),
    getSecret: (namespace, name) => fetch<Secret>('Secret', namespace, name),
    async refresh(pods) {
      const wanted = { ConfigMap: new Set<string>(), Secret: new Set<string>() };
      for (const pod of pods) {
        const refs = referencedConfigObjects(pod);
        for (const r of refs.configMaps) wanted.ConfigMap.add(r);
        for (const r of refs.secrets) wanted.Secret.add(r);
      }
      for (const kind of ['ConfigMap', 'Secret'] as const) {
        for (const key of wanted[kind]) {
          const [ns, name] = key.split('/');
          await fetch(kind, ns, name).catch(() => undefined); // best effort: the next refresh tries again
        }
        for (const key of checkpoint.listObjects(kind)) {
          if (wanted[kind].has(key)) continue;
          const [ns, name] = key.split('/');
          checkpoint.removeObject(kind, ns, name);
        }
      }
    },
  };
}
