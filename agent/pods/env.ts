/**
 * A container's environment, as kubelet builds it (makeEnvironmentVariables): envFrom (ConfigMaps
 * and Secrets, with prefix), then env (literal values with $(VAR) expansion, the downward API,
 * ConfigMap and Secret keys), then service link variables for names not already set. A missing
 * non-optional ConfigMap, Secret or key is a CreateContainerConfigError with the upstream message;
 * the container waits and the sync retries it.
 */
import type { ConfigMap, Container, Pod, Secret, Service } from 'kubernetes-types/core/v1';
import { DownwardApiError, podFieldValue, resourceFieldValue, type DownwardContext } from './downward-api';
import { ContainerStartError } from './images';
import { notFoundMessage, type PodDataLookup } from './pod-data';
import { errorMessage } from '../errors';

export interface EnvContext extends DownwardContext {
  data: PodDataLookup;
}

export interface EnvVarValue {
  key: string;
  value: string;
}

export const CONFIG_ERROR = 'CreateContainerConfigError';

const configError = (message: string) => new ContainerStartError(CONFIG_ERROR, message);

/**
 * $(VAR) expansion: a defined name is replaced, an undefined one stays as written, `$$` is an
 * escaped `$`, and any other `$` is literal.
 */
export function expandVars(input: string, mapping: (name: string) => string | undefined): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const ch = input[i];
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i++;
        continue;
      }
      const name = input.slice(i + 2, close);
      out += mapping(name) ?? `$(${name})`;
      i = close;
    } else {
      out += ch;
    }
  }
  return out;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
export const isEnvVarName = (name: string): boolean => ENV_NAME.test(name);

const envName = (serviceName: string) => serviceName.toUpperCase().replace(/-/g, '_');

/** `<SVC>_SERVICE_HOST`, `_SERVICE_PORT[_<NAME>]` and the docker-link style `<SVC>_PORT…` variables. */
export function serviceEnvVars(services: Service[]): EnvVarValue[] {
  const out: EnvVarValue[] = [];
  for (const svc of [...services].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))) {
    const ip = svc.spec?.clusterIP;
    const ports = svc.spec?.ports ?? [];
    if (!ip || ip === 'None' || ports.length === 0) continue;
    const name = envName(svc.metadata!.name!);
    out.push({ key: `${name}_SERVICE_HOST`, value: ip }, { key: `${name}_SERVICE_PORT`, value: String(ports[0].port) });
    for (const p of ports) if (p.name) out.push({ key: `${name}_SERVICE_PORT_${envName(p.name)}`, value: String(p.port) });
    const proto = (p: { protocol?: string }) => (p.protocol ?? 'TCP').toLowerCase();
    out.push({ key: `${name}_PORT`, value: `${proto(ports[0])}://${ip}:${ports[0].port}` });
    for (const p of ports) {
      const prefix = `${name}_PORT_${p.port}_${proto(p).toUpperCase()}`;
      out.push(
        { key: prefix, value: `${proto(p)}://${ip}:${p.port}` },
        { key: `${prefix}_PROTO`, value: proto(p) },
        { key: `${prefix}_PORT`, value: String(p.port) },
        { key: `${prefix}_ADDR`, value: ip },
      );
    }
  }
  return out;
}

const MASTER_NAMESPACE = 'default';
const MASTER_SERVICES = new Set(['kubernetes']);

/** The services whose variables a pod gets: its namespace's (unless enableServiceLinks is false) and default/kubernetes. */
export async function podServices(pod: Pod, data: PodDataLookup): Promise<Service[]> {
  const ns = pod.metadata!.namespace!;
  const links = pod.spec?.enableServiceLinks !== false;
  const byName = new Map<string, Service>();
  const master = ns === MASTER_NAMESPACE && links ? [] : await data.listServices(MASTER_NAMESPACE);
  for (const s of master) if (MASTER_SERVICES.has(s.metadata?.name ?? '')) byName.set(s.metadata!.name!, s);
  if (links) for (const s of await data.listServices(ns)) byName.set(s.metadata!.name!, s);
  return [...byName.values()];
}

function decode(value: string): string {
  return Buffer.from(value, 'base64').toString('utf8');
}

/** Per-resolution cache, so one container's many keys of one ConfigMap cost one lookup. */
function objectCache(pod: Pod, data: PodDataLookup) {
  const ns = pod.metadata!.namespace!;
  const maps = new Map<string, Promise<ConfigMap | undefined>>();
  const secrets = new Map<string, Promise<Secret | undefined>>();
  const wrap = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw configError(errorMessage(err));
    }
  };
  return {
    configMap(name: string) {
      if (!maps.has(name)) maps.set(name, data.getConfigMap(ns, name));
      return wrap(maps.get(name)!);
    },
    secret(name: string) {
      if (!secrets.has(name)) secrets.set(name, data.getSecret(ns, name));
      return wrap(secrets.get(name)!);
    },
  };
}

/** The container's environment, in order: envFrom, env, then service variables not already set. */
export async function makeEnvironmentVariables(pod: Pod, container: Container, ctx: EnvContext): Promise<EnvVarValue[]> {
  const ns = pod.metadata!.namespace!;
  const objects = objectCache(pod, ctx.data);
  const env = new Map<string, string>();
  const serviceEnv = new Map<string, string>();
  let services: Service[] = [];
  try {
    services = await podServices(pod, ctx.data);
  } catch (err) {
    throw configError(`cannot list services for service links: ${errorMessage(err)}`);
  }
  for (const v of serviceEnvVars(services)) serviceEnv.set(v.key, v.value);

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const ref = from.configMapRef;
      const cm = await objects.configMap(ref.name ?? '');
      if (!cm) {
        if (ref.optional) continue;
        throw configError(notFoundMessage('configmap', ref.name ?? ''));
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) if (isEnvVarName(prefix + k)) env.set(prefix + k, v);
    } else if (from.secretRef) {
      const ref = from.secretRef;
      const secret = await objects.secret(ref.name ?? '');
      if (!secret) {
        if (ref.optional) continue;
        throw configError(notFoundMessage('secret', ref.name ?? ''));
      }
      for (const [k, v] of Object.entries(secret.data ?? {})) if (isEnvVarName(prefix + k)) env.set(prefix + k, decode(v));
    }
  }

  const mapping = (name: string) => env.get(name) ?? serviceEnv.get(name);
  for (const e of container.env ?? []) {
    const from = e.valueFrom;
    if (!from) {
      env.set(e.name, expandVars(e.value ?? '', mapping));
      continue;
    }
    try {
      if (from.fieldRef) {
        env.set(e.name, podFieldValue(pod, from.fieldRef, ctx));
      } else if (from.resourceFieldRef) {
        env.set(e.name, resourceFieldValue(pod, container, from.resourceFieldRef, ctx));
      } else if (from.configMapKeyRef) {
        const ref = from.configMapKeyRef;
        const cm = await objects.configMap(ref.name ?? '');
        if (!cm) {
          if (ref.optional) continue;
          throw configError(notFoundMessage('configmap', ref.name ?? ''));
        }
        const value = cm.data?.[ref.key];
        if (value === undefined) {
          if (ref.optional) continue;
          throw configError(`couldn't find key ${ref.key} in ConfigMap ${ns}/${ref.name}`);
        }
        env.set(e.name, value);
      } else if (from.secretKeyRef) {
        const ref = from.secretKeyRef;
        const secret = await objects.secret(ref.name ?? '');
        if (!secret) {
          if (ref.optional) continue;
          throw configError(notFoundMessage('secret', ref.name ?? ''));
        }
        const value = secret.data?.[ref.key];
        if (value === undefined) {
          if (ref.optional) continue;
          throw configError(`couldn't find key ${ref.key} in Secret ${ns}/${ref.name}`);
        }
        env.set(e.name, decode(value));
      }
    } catch (err) {
      if (err instanceof DownwardApiError) throw configError(`env ${e.name}: ${err.message}`);
      throw err;
    }
  }
  for (const [k, v] of serviceEnv) if (!env.has(k)) env.set(k, v);
  return [...env].map(([key, value]) => ({ key, value }));
}

/**
 * The container's volumeMounts with each subPathExpr expanded from its environment into subPath, as
 * kubelet does: a variable that is undefined or empty is an error, and so is a result that is
 * absolute or steps out with `..` (the problem names the field).
 */
export function expandSubPathExprs(container: Container, envs: EnvVarValue[]): Container {
  const mounts = container.volumeMounts ?? [];
  if (!mounts.some((m) => m.subPathExpr)) return container;
  const map = new Map(envs.map((e) => [e.key, e.value]));
  const volumeMounts = mounts.map((m, i) => {
    if (!m.subPathExpr) return m;
    const field = `volumeMounts[${i}].subPathExpr`;
    const missing = new Set<string>();
    const subPath = expandVars(m.subPathExpr, (name) => {
      const value = map.get(name);
      if (!value) missing.add(name);
      return value ?? '';
    });
    if (missing.size) throw configError(`${field}: missing value for ${[...missing].sort().join(', ')}`);
    if (subPath.startsWith('/') || subPath.split('/').includes('..')) {
      throw configError(`${field}: ${JSON.stringify(m.subPathExpr)} expands to ${JSON.stringify(subPath)}: must be a relative path without '..'`);
    }
    const { subPathExpr: _expr, ...rest } = m;
    return { ...rest, subPath };
  });
  return { ...container, volumeMounts };
}

/** command and args with $(VAR) taken from the container's final environment. */
export function expandCommandAndArgs(container: Container, envs: EnvVarValue[]): { command: string[]; args: string[] } {
  const map = new Map(envs.map((e) => [e.key, e.value]));
  const mapping = (name: string) => map.get(name);
  return {
    command: (container.command ?? []).map((c) => expandVars(c, mapping)),
    args: (container.args ?? []).map((a) => expandVars(a, mapping)),
  };
}
