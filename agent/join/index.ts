/**
 * `keelson join`: joins this host to an existing control plane with a kubeadm bootstrap token.
 * Accepts what `kubeadm token create --print-join-command` prints (endpoint as a positional
 * argument or --server). Discovery (discovery.ts), TLS bootstrap with a CSR
 * (certificate-request.ts), then the node's kubeconfig and key are written (credentials.ts) and
 * the permissions the components need are checked (agent/node/rbac.ts).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../duration';
import { ErrorCodes, KeelsonError, errorMessage, isKeelsonError } from '../errors';
import { createKubeClient } from '../kube/client';
import { kubeconfigFromValues, loadKubeconfig } from '../kube/kubeconfig';
import { createLogger, LOG_LEVELS, type LogLevel } from '../log';
import { checkPermissions } from '../node/rbac';
import { requestClientCertificate } from './certificate-request';
import { writeClientCertificate, writeNodeKubeconfig } from './credentials';
import { discoverCluster } from './discovery';
import { parseBootstrapToken, parsePin } from './token';

export const DEFAULT_JOIN_KUBECONFIG = '/etc/keelson/kubelet.conf';
export const DEFAULT_CERT_DIR = '/var/lib/keelson/pki';

export const JOIN_USAGE = `Usage: keelson join [HOST:PORT] --server https://HOST:6443 --token TOKEN --discovery-token-ca-cert-hash sha256:HEX [flags]

Joins this host to an existing control plane with a bootstrap token (kubeadm token create --print-join-command).

Flags:
  --server URL                          apiserver address (or the HOST:PORT argument kubeadm prints)
  --token TOKEN                         bootstrap token abcdef.0123456789abcdef (visible in ps: prefer the two below)
  --token-file FILE                     read the token from FILE
                                        (or set KEELSON_TOKEN in the environment)
  --discovery-token-ca-cert-hash HASH   sha256:<hex> of the cluster CA's public key (repeatable)
  --unsafe-skip-ca-verification         trust the CA that cluster-info names without a hash
  --kubeconfig FILE                     where to write the node's kubeconfig (default ${DEFAULT_JOIN_KUBECONFIG})
  --cert-dir DIR                        where to write the client certificate and key (default ${DEFAULT_CERT_DIR})
  --hostname-override NAME              node name instead of the lower-cased hostname
  --node-ip IP                          accepted for symmetry with keelson run (used there)
  --components LIST                     components whose permissions to check (default kubelet,proxy,dns)
  --discovery-timeout DURATION          give up discovery after this long (default 5m)
  --csr-timeout DURATION                wait this long for the certificate to be approved (default 5m)
  --log-level LEVEL                     ${LOG_LEVELS.join('|')} (default info)
`;

const OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'discovery-token-ca-cert-hash': { type: 'string', multiple: true },
  'unsafe-skip-ca-verification': { type: 'boolean' },
  'discovery-token-unsafe-skip-ca-verification': { type: 'boolean' },
  kubeconfig: { type: 'string' },
  'cert-dir': { type: 'string' },
  'hostname-override': { type: 'string' },
  'node-ip': { type: 'string' },
  components: { type: 'string' },
  'discovery-timeout': { type: 'string' },
  'csr-timeout': { type: 'string' },
  'retry-interval': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function usageError(message: string): number {
  process.stderr.write(`keelson join: ${message}\n\n${JOIN_USAGE}`);
  return 2;
}

function serverUrl(value: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(value) ? value : `https://${value}`;
  const url = new URL(withScheme);
  if (url.protocol !== 'https:') throw new Error(`--server must be https, got ${value}`);
  return `${url.protocol}//${url.host}`;
}

function durationFlag(value: string | undefined, name: string, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new Error(`--${name} must be a duration such as 30s or 5m, got ${JSON.stringify(value)}`);
  return ms;
}

export async function joinCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (err) {
    return usageError(errorMessage(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(JOIN_USAGE);
    return 0;
  }
  const level = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) return usageError(`invalid --log-level ${JSON.stringify(level)}`);
  const logger = createLogger({ level: level as LogLevel }).child({ component: 'join' });

  let server: string;
  let discoveryTimeoutMs: number;
  let csrTimeoutMs: number;
  let retryIntervalMs: number;
  try {
    const endpoint = values.server ?? positionals[0];
    if (!endpoint) return usageError('--server (or the HOST:PORT argument) is required');
    if (positionals.length > (values.server ? 0 : 1)) return usageError(`unexpected argument ${JSON.stringify(positionals.at(-1))}`);
    server = serverUrl(endpoint);
    discoveryTimeoutMs = durationFlag(values['discovery-timeout'], 'discovery-timeout', 300_000);
    csrTimeoutMs = durationFlag(values['csr-timeout'], 'csr-timeout', 300_000);
    retryIntervalMs = durationFlag(values['retry-interval'], 'retry-interval', 5000);
  } catch (err) {
    return usageError(errorMessage(err));
  }

  let tokenText: string | undefined = values.token;
  if (tokenText === undefined && values['token-file']) {
    try {
      tokenText = readFileSync(values['token-file'], 'utf8');
    } catch (err) {
      return usageError(`cannot read --token-file ${values['token-file']}: ${errorMessage(err)}`);
    }
  }
  tokenText ??= process.env.KEELSON_TOKEN;
  if (!tokenText) return usageError('a bootstrap token is required: --token, --token-file or KEELSON_TOKEN');

  const kubeconfigPath = resolve(values.kubeconfig ?? DEFAULT_JOIN_KUBECONFIG);
  const certDir = resolve(values['cert-dir'] ?? DEFAULT_CERT_DIR);
  const nodeName = (values['hostname-override'] ?? hostname()).trim().toLowerCase();
  const components = (values.components ?? 'kubelet,proxy,dns').split(',').map((c) => c.trim()).filter(Boolean);

  try {
    const token = parseBootstrapToken(tokenText);
    const caCertHashes = (values['discovery-token-ca-cert-hash'] ?? []).map(parsePin);
    const cluster = await discoverCluster({
      server,
      token,
      caCertHashes,
      skipCaVerification: Boolean(values['unsafe-skip-ca-verification'] || values['discovery-token-unsafe-skip-ca-verification']),
      timeoutMs: discoveryTimeoutMs,
      retryIntervalMs,
      logger,
    });
    logger.info({ server, ca: cluster.caPin }, 'cluster CA verified');

    const bootstrapClient = createKubeClient(kubeconfigFromValues({ server, certificateAuthority: cluster.caPem, token: token.full }), {
      logger,
      userAgent: 'keelson-join',
    });
    let issued;
    try {
      issued = await requestClientCertificate({ client: bootstrapClient, nodeName, logger, timeoutMs: csrTimeoutMs });
    } finally {
      bootstrapClient.close();
    }
    const clientCertPath = writeClientCertificate(certDir, issued.certPem, issued.keyPem);
    writeNodeKubeconfig(kubeconfigPath, { server, caPem: cluster.caPem, nodeName, clientCertPath });
    logger.info({ kubeconfig: kubeconfigPath, cert: clientCertPath, notAfter: issued.notAfter.toISOString() }, 'node credentials written');

    const nodeClient = createKubeClient(loadKubeconfig(kubeconfigPath), { logger, userAgent: 'keelson-join' });
    let permissionWarning = '';
    try {
      const report = await checkPermissions(nodeClient, components, { nodeName });
      if (!report.ok) permissionWarning = report.message;
    } catch (err) {
      permissionWarning = `could not check permissions: ${errorMessage(err)}`;
    } finally {
      nodeClient.close();
    }
    process.stdout.write(
      `This node (${nodeName}) has joined the cluster at ${server}.\n` +
        `  credentials: ${kubeconfigPath} (client certificate ${clientCertPath}, valid until ${issued.notAfter.toISOString()})\n` +
        `  next: keelson run --kubeconfig ${kubeconfigPath}\n`,
    );
    if (permissionWarning) process.stderr.write(`keelson join: warning: ${permissionWarning}\n`);
    return 0;
  } catch (err) {
    const code = isKeelsonError(err) ? err.code : ErrorCodes.API_UNREACHABLE;
    process.stderr.write(`keelson join: ${errorMessage(err)} [${code}]\n`);
    return 1;
  }
}

