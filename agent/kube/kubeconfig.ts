/**
 * kubeconfig loading: the current context's cluster (server, CA, TLS options) and user
 * (client certificate and key, bearer token or token file), resolved to bytes once so the client
 * needs no file access except for a token file, which it re-reads (projected tokens rotate).
 * Also the in-memory form that `keelson join` builds from a bootstrap token.
 */
import { load } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ErrorCodes, KeelsonError, errorMessage } from '../errors';

export interface KubeCredentials {
  /** Bearer token. */
  token?: string;
  /** File holding a bearer token, read again by the client when it changes. */
  tokenFile?: string;
  /** PEM client certificate (chain) and its key, for mutual TLS. */
  clientCertificate?: Buffer;
  clientKey?: Buffer;
}

export interface KubeConfig {
  /** Base URL of the apiserver, without a trailing slash. */
  server: string;
  /** PEM CA bundle that signs the apiserver's certificate; the system CAs when absent. */
  certificateAuthority?: Buffer;
  insecureSkipTLSVerify: boolean;
  /** Name to check the server certificate against, when it differs from the server URL's host. */
  tlsServerName?: string;
  /** Default namespace of the context. */
  namespace?: string;
  credentials: KubeCredentials;
  /** Where this configuration came from, so credentials can be read again after a rotation. */
  source?: KubeconfigSource;
}

export interface KubeconfigSource {
  path: string;
  context: string;
  clientCertificatePath?: string;
  clientKeyPath?: string;
}

export interface LoadKubeconfigOptions {
  /** Context to use instead of current-context. */
  context?: string;
}

type Fields = Record<string, unknown>;

/**
 * JSON kubeconfigs are parsed without loading the YAML library, which costs ~8 MB of RSS on Node 24
 * (measured); YAML ones load it on first use.
 */
function parseDocument(text: string): unknown {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed);
    } catch {
      // not JSON after all: YAML is a superset, let it report the error
    }
  }
  return load(text);
}

function invalid(file: string, field: string, reason: string, cause?: unknown): KeelsonError {
  return new KeelsonError(ErrorCodes.KUBECONFIG_INVALID, `kubeconfig ${file}: ${field}: ${reason}`, { object: file, cause });
}

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the kubeconfig at `path` and resolves its current (or the given) context. */
export function loadKubeconfig(path: string, options: LoadKubeconfigOptions = {}): KubeConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(file, '(file)', `cannot read: ${errorMessage(err)}`, err);
  }
  return parseKubeconfig(text, file, options);
}

/** Parses kubeconfig text; relative file references are resolved against `file`'s folder. */
export function parseKubeconfig(text: string, file: string, options: LoadKubeconfigOptions = {}): KubeConfig {
  let doc: unknown;
  try {
    doc = parseDocument(text);
  } catch (err) {
    throw invalid(file, '(document)', `not valid YAML: ${errorMessage(err)}`, err);
  }
  if (!isRecord(doc)) throw invalid(file, '(document)', 'expected a mapping');
  const reader = createFieldReader(file, dirname(file));

  const contextName = options.context ?? doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    throw invalid(file, 'current-context', 'missing (and no context was given)');
  }
  const context = reader.named(doc, 'contexts', 'context', contextName);
  const contextField = `contexts[name=${contextName}].context`;
  const clusterName = reader.string(context, `${contextField}.cluster`, 'cluster', true)!;
  const userName = reader.string(context, `${contextField}.user`, 'user', false);
  const namespace = reader.string(context, `${contextField}.namespace`, 'namespace', false);

  const cluster = reader.named(doc, 'clusters', 'cluster', clusterName);
  const clusterField = `clusters[name=${clusterName}].cluster`;
  const server = parseServer(file, `${clusterField}.server`, reader.string(cluster, `${clusterField}.server`, 'server', true)!);
  const certificateAuthority = reader.pem(cluster, clusterField, 'certificate-authority', 'CERTIFICATE');
  const insecureSkipTLSVerify = reader.boolean(cluster, `${clusterField}.insecure-skip-tls-verify`, 'insecure-skip-tls-verify');
  const tlsServerName = reader.string(cluster, `${clusterField}.tls-server-name`, 'tls-server-name', false);

  const source: KubeconfigSource = { path: file, context: contextName };
  let credentials: KubeCredentials = {};
  if (userName !== undefined) {
    const user = reader.named(doc, 'users', 'user', userName);
    const userField = `users[name=${userName}].user`;
    for (const unsupported of ['exec', 'auth-provider', 'username', 'password']) {
      if (user[unsupported] !== undefined) throw invalid(file, `${userField}.${unsupported}`, 'not supported by keelson (use a client certificate or a token)');
    }
    const cert = reader.pem(user, userField, 'client-certificate', 'CERTIFICATE');
    const key = reader.pem(user, userField, 'client-key', 'PRIVATE KEY');
    if (cert && !key) throw invalid(file, `${userField}.client-key`, 'missing (client-certificate is set)');
    if (key && !cert) throw invalid(file, `${userField}.client-certificate`, 'missing (client-key is set)');
    source.clientCertificatePath = reader.filePath(user, 'client-certificate');
    source.clientKeyPath = reader.filePath(user, 'client-key');
    const token = reader.string(user, `${userField}.token`, 'token', false);
    const tokenFileRaw = reader.string(user, `${userField}.tokenFile`, 'tokenFile', false);
    let tokenFile: string | undefined;
    if (tokenFileRaw !== undefined) {
      tokenFile = reader.resolvePath(tokenFileRaw);
      try {
        readFileSync(tokenFile, 'utf8');
      } catch (err) {
        throw invalid(file, `${userField}.tokenFile`, `cannot read ${tokenFile}: ${errorMessage(err)}`, err);
      }
    }
    credentials = { token, tokenFile, clientCertificate: cert, clientKey: key };
  }

  return { server, certificateAuthority, insecureSkipTLSVerify, tlsServerName, namespace, credentials, source };
}

/**
 * Reads the client certificate and key files again (after a rotation wrote new ones), keeping the
 * token settings. Pass the result to the client's `setCredentials()`.
 */
export function reloadClientCertificate(config: KubeConfig): KubeCredentials {
  const certPath = config.source?.clientCertificatePath;
  const keyPath = config.source?.clientKeyPath;
  if (!certPath || !keyPath) return config.credentials;
  const file = config.source!.path;
  const read = (path: string, field: string, marker: string) => {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (err) {
      throw invalid(file, field, `cannot read ${path}: ${errorMessage(err)}`, err);
    }
    if (!data.includes(`-----BEGIN`) || !data.includes(marker)) throw invalid(file, field, `${path} holds no PEM ${marker}`);
    return data;
  };
  return {
    ...config.credentials,
    clientCertificate: read(certPath, 'client-certificate', 'CERTIFICATE'),
    clientKey: read(keyPath, 'client-key', 'PRIVATE KEY'),
  };
}

export interface InMemoryKubeconfig {
  server: string;
  certificateAuthority?: Buffer | string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  token?: string;
  clientCertificate?: Buffer | string;
  clientKey?: Buffer | string;
}

/** Builds a configuration without a file, e.g. from a join token and the cluster CA. */
export function kubeconfigFromValues(values: InMemoryKubeconfig): KubeConfig {
  const where = '(in-memory)';
  const server = parseServer(where, 'server', values.server);
  const buf = (v: Buffer | string | undefined) => (v === undefined ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(v));
  const cert = buf(values.clientCertificate);
  const key = buf(values.clientKey);
  if (Boolean(cert) !== Boolean(key)) throw invalid(where, cert ? 'clientKey' : 'clientCertificate', 'missing (both or neither)');
  return {
    server,
    certificateAuthority: buf(values.certificateAuthority),
    insecureSkipTLSVerify: values.insecureSkipTLSVerify ?? false,
    tlsServerName: values.tlsServerName,
    credentials: { token: values.token, clientCertificate: cert, clientKey: key },
  };
}

function parseServer(file: string, field: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw invalid(file, field, `not a URL: ${JSON.stringify(value)}`, err);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(file, field, `scheme must be https or http, not ${url.protocol}`);
  return value.replace(/\/+$/, '');
}

function createFieldReader(file: string, folder: string) {
  const reader = {
    resolvePath(path: string): string {
      return isAbsolute(path) ? path : resolve(folder, path);
    },
    named(doc: Fields, listKey: string, innerKey: string, name: string): Fields {
      const list = doc[listKey];
      if (list !== undefined && !Array.isArray(list)) throw invalid(file, listKey, 'expected a list');
      const entry = (list as unknown[] | undefined)?.find((e) => isRecord(e) && e.name === name);
      if (!entry) throw invalid(file, `${listKey}[name=${name}]`, 'not found');
      const inner = (entry as Fields)[innerKey];
      if (!isRecord(inner)) throw invalid(file, `${listKey}[name=${name}].${innerKey}`, 'missing or not a mapping');
      return inner;
    },
    string(obj: Fields, field: string, key: string, required: boolean): string | undefined {
      const value = obj[key];
      if (value === undefined || value === null || value === '') {
        if (required) throw invalid(file, field, 'missing');
        return undefined;
      }
      if (typeof value !== 'string') throw invalid(file, field, `expected a string, got ${typeof value}`);
      return value;
    },
    boolean(obj: Fields, field: string, key: string): boolean {
      const value = obj[key];
      if (value === undefined || value === null) return false;
      if (typeof value !== 'boolean') throw invalid(file, field, `expected true or false, got ${JSON.stringify(value)}`);
      return value;
    },
    filePath(obj: Fields, key: string): string | undefined {
      const value = obj[key];
      return typeof value === 'string' && value !== '' ? reader.resolvePath(value) : undefined;
    },
    /** `key` (a file) or `key-data` (base64), checked to hold the expected PEM block. */
    pem(obj: Fields, prefix: string, key: string, marker: string): Buffer | undefined {
      const dataField = `${prefix}.${key}-data`;
      const fileField = `${prefix}.${key}`;
      const data = reader.string(obj, dataField, `${key}-data`, false);
      const path = reader.string(obj, fileField, key, false);
      let bytes: Buffer | undefined;
      let field = fileField;
      if (data !== undefined) {
        field = dataField;
        if (!/^[A-Za-z0-9+/=\s]+$/.test(data)) throw invalid(file, dataField, 'not valid base64');
        bytes = Buffer.from(data, 'base64');
      } else if (path !== undefined) {
        const full = reader.resolvePath(path);
        try {
          bytes = readFileSync(full);
        } catch (err) {
          throw invalid(file, fileField, `cannot read ${full}: ${errorMessage(err)}`, err);
        }
      }
      if (bytes && (!bytes.includes('-----BEGIN') || !bytes.includes(marker))) {
        throw invalid(file, field, `holds no PEM ${marker}`);
      }
      return bytes;
    },
  };
  return reader;
}
