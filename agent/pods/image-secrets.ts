/**
 * imagePullSecrets → registry credentials for one image, as kubelet's credential keyring matches
 * them: Secrets of type kubernetes.io/dockerconfigjson (`{"auths": {...}}`) or kubernetes.io/dockercfg
 * (the map alone) are read, each registry key (`https://index.docker.io/v1/`, `registry:5000/team`,
 * `*.example.com`) is matched against the image's registry host (globs per label, same port) and
 * repository path (prefix), and the matches are returned most specific first. kubelet tries them in
 * that order; a pull without any match is anonymous. A pull secret that cannot be read is skipped
 * with a warning, as upstream does.
 */
import type { LocalObjectReference, Secret } from 'kubernetes-types/core/v1';
import type { PodDataLookup } from './pod-data';
import type { RegistryAuthConfig as RegistryAuth } from './runtime';
import { errorMessage } from '../errors';

interface DockerConfigEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface KeyringEntry {
  key: string;
  host: string;
  port: string;
  path: string;
  auth: RegistryAuth;
}

const DEFAULT_REGISTRY = 'index.docker.io';

function splitHostPath(text: string): { host: string; port: string; path: string } {
  const withoutScheme = text.replace(/^[a-z]+:\/\//i, '');
  const slash = withoutScheme.indexOf('/');
  const hostPort = slash < 0 ? withoutScheme : withoutScheme.slice(0, slash);
  let path = slash < 0 ? '' : withoutScheme.slice(slash + 1);
  path = path.replace(/^v[12]\/?$/, '').replace(/\/+$/, '');
  const colon = hostPort.lastIndexOf(':');
  let host = colon < 0 ? hostPort : hostPort.slice(0, colon);
  const port = colon < 0 ? '' : hostPort.slice(colon + 1);
  host = host.toLowerCase();
  if (host === 'docker.io' || host === 'registry-1.docker.io') host = DEFAULT_REGISTRY;
  return { host, port, path };
}

/** The registry host and repository path of an image reference (`busybox` → index.docker.io, library/busybox). */
export function imageRegistry(image: string): { host: string; port: string; path: string } {
  const name = image.split('@')[0];
  const first = name.split('/')[0];
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let full = hasRegistry ? name : `${DEFAULT_REGISTRY}/${name.includes('/') ? name : `library/${name}`}`;
  // drop the tag (a colon after the last slash)
  const lastSlash = full.lastIndexOf('/');
  const tagColon = full.indexOf(':', lastSlash);
  if (tagColon > 0) full = full.slice(0, tagColon);
  return splitHostPath(full);
}

function globMatchHost(pattern: string, host: string): boolean {
  const p = pattern.split('.');
  const h = host.split('.');
  if (p.length !== h.length) return false;
  return p.every((label, i) => {
    const re = new RegExp('^' + label.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*') + '$');
    return re.test(h[i]);
  });
}

function entryMatches(entry: KeyringEntry, image: { host: string; port: string; path: string }): boolean {
  if (!globMatchHost(entry.host, image.host) || entry.port !== image.port) return false;
  if (!entry.path) return true;
  return image.path === entry.path || image.path.startsWith(entry.path + '/');
}

/**
 * No serverAddress, as kubelet's keyring sends none: containerd's CRI compares it, parsed as a URL,
 * with the host it pulls from, so `host:port` is refused outright ("first path segment in URL cannot
 * contain colon"), a bare host never matches (the pull silently goes anonymous), and a mirror or
 * docker.io's registry-1 endpoint would not match the secret's key either.
 */
function toAuth(e: DockerConfigEntry): RegistryAuth {
  const auth: RegistryAuth = {};
  if (e.username) auth.username = e.username;
  if (e.password) auth.password = e.password;
  if (e.auth && !e.username) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      auth.username = decoded.slice(0, colon);
      auth.password = decoded.slice(colon + 1);
    }
  }
  if (e.identitytoken) auth.identityToken = e.identitytoken;
  if (e.registrytoken) auth.registryToken = e.registrytoken;
  return auth;
}

/** The docker config entries of a pull secret (both secret types), by registry key; throws when malformed. */
export function dockerConfigOf(secret: Secret): Record<string, DockerConfigEntry> {
  const data = secret.data ?? {};
  if (data['.dockerconfigjson'] !== undefined) {
    const parsed = JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString('utf8')) as { auths?: Record<string, DockerConfigEntry> };
    return parsed.auths ?? {};
  }
  if (data['.dockercfg'] !== undefined) {
    return JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString('utf8')) as Record<string, DockerConfigEntry>;
  }
  throw new Error('no .dockerconfigjson or .dockercfg key');
}

/** Credentials for image from the given docker configs, most specific registry key first. */
export function matchCredentials(image: string, configs: Record<string, DockerConfigEntry>[]): RegistryAuth[] {
  const entries: KeyringEntry[] = [];
  for (const config of configs) {
    for (const [key, value] of Object.entries(config)) {
      const { host, port, path } = splitHostPath(key);
      entries.push({ key, host, port, path, auth: toAuth(value ?? {}) });
    }
  }
  const target = imageRegistry(image);
  // more specific first: longer keys (a path) before shorter (host only), exact hosts before globs
  const score = (e: KeyringEntry) => (e.host.includes('*') ? 0 : 1e6) + e.host.length + e.path.length * 1000;
  return entries.filter((e) => entryMatches(e, target)).sort((a, b) => score(b) - score(a)).map((e) => e.auth);
}

/** Reads the pod's imagePullSecrets; unreadable or malformed ones are skipped and reported to onProblem. */
export async function pullSecretConfigs(
  namespace: string, refs: LocalObjectReference[] | undefined, data: PodDataLookup, onProblem: (secret: string, message: string) => void,
): Promise<Record<string, DockerConfigEntry>[]> {
  const configs: Record<string, DockerConfigEntry>[] = [];
  for (const ref of refs ?? []) {
    if (!ref.name) continue;
    try {
      const secret = await data.getSecret(namespace, ref.name);
      if (!secret) throw new Error(`secret "${ref.name}" not found`);
      configs.push(dockerConfigOf(secret));
    } catch (err) {
      onProblem(ref.name, `unable to retrieve some image pull secrets (${ref.name}); attempting to pull the image may not succeed: ${errorMessage(err)}`);
    }
  }
  return configs;
}
