/**
 * The test apiserver: an HTTPS server speaking the Kubernetes REST API (JSON) for the kinds
 * keelson uses, behaving like kube-apiserver where keelson relies on it. The one sanctioned
 * stand-in of the project.
 *
 * Usage:
 *
 *   import { startTestApiserver } from '../harness/apiserver';
 *   const api = await startTestApiserver({ fixtures: [node, pod], bookmarkIntervalMs: 200 });
 *   t.teardown(() => api.stop());
 *   // api.url ('https://127.0.0.1:PORT'), api.caPem / api.caPath, api.adminToken,
 *   // api.kubeconfigPath (admin, token auth), api.writeKubeconfig({ user, groups }) → path
 *   api.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: ... });
 *   api.store.patchStatus('Pod', 'default', 'p', { phase: 'Running' });
 *   api.currentResourceVersion();            // number; every write increments it
 *   api.faults.dropWatches();                 // destroy every open watch connection
 *   api.faults.stallWatches(5000);            // open watches go silent (no bookmarks either);
 *                                             // { includeNew: true }: new ones too, not even headers
 *   api.faults.failNext(3, 503, { path: '/api/v1/pods' });
 *   api.faults.compact();                     // older versions now get 410 Expired
 *   api.faults.expireWatches();               // open watches get an ERROR 410 event and end
 *   api.faults.setLatency(100);
 *   await api.restart();                      // same port, same state ({ loseState: true } to reset)
 *   api.sendBookmark();                       // a BOOKMARK now on every watch that allows them
 *   api.requestLog();                         // [{ method, path, query, user, watch, code }]
 *
 * Behaviour worth knowing when writing a client against it (all as kube-apiserver does):
 * - List items carry no kind/apiVersion; watch event objects and single GETs do.
 * - Watch from "" or "0" starts with synthetic ADDED events for every current object.
 * - Watch from a compacted version: HTTP 200, one ERROR event (Status 410 Expired), end of stream.
 * - An update that changes nothing writes nothing (same resourceVersion, no watch event).
 * - DELETE of a bound pod (spec.nodeName set) is graceful: 202, deletionTimestamp set, MODIFIED;
 *   nothing removes it when the grace period runs out: the kubelet deletes it with
 *   gracePeriodSeconds=0. Unbound and terminal pods are removed at once.
 * - Namespaces default, kube-system, kube-public and kube-node-lease exist, plus the `kubernetes`
 *   Service (10.96.0.1) and its EndpointSlice, and kube-public/cluster-info. Every namespace gets a
 *   `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap right after it is created (as the
 *   controllers do; `namespaceControllers: false` turns that off). Creating in a missing namespace
 *   is 404 over HTTP; `store.create()` creates the namespace. Deleting a namespace removes it and
 *   its content at once. See README.md for what is and is not modelled.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createTestPki } from '../pki';
import type { IssuedCert, TestPki } from '../pki';
import { createAuthenticator } from './authn';
import type { UserInfo } from './authn';
import { authorize as authorizeRequest, defaultPolicy } from './authz';
import type { PolicyRule } from './authz';
import { createBootstrapSigner } from './bootstrap';
import { createNamespaceControllers } from './controllers';
import { createCsrSigner } from './csr';
import { createFaults } from './faults';
import { createKubeletProxy } from './kubelet-proxy';
import type { FailOptions, RequestRecord } from './faults';
import { renderKubeconfig } from './kubeconfig';
import { createRegistry } from './registry';
import type { DeleteOptions, ListOptions } from './registry';
import { hasStatusSubresource, resourceForKind, resourceId } from './resources';
import type { ResourceDef } from './resources';
import { createReviews } from './reviews';
import { createRequestHandler } from './server';
import { ApiError } from './status';
import { createStore } from './store';
import type { Obj } from './store';
import { createWatchHub } from './watch';
import type { WatchInfo } from './watch';

export type { Obj, PolicyRule, UserInfo, RequestRecord, WatchInfo, IssuedCert };
export { ApiError };
export { defaultPolicy };

export interface TestApiserverOptions {
  port?: number;
  host?: string;
  /** Objects created at start (and again after restart({ loseState: true })). */
  fixtures?: Obj[];
  /** BOOKMARK interval for watches that allow them (default 60000, like kube-apiserver's ~1 min). */
  bookmarkIntervalMs?: number;
  /** Events kept for watch replay; older versions get 410 (default 10000). */
  historySize?: number;
  /** Authorization rules (default: defaultPolicy()). */
  policy?: PolicyRule[];
  /** Extra static bearer tokens. */
  tokens?: Record<string, UserInfo>;
  /** Reuse a PKI (e.g. to keep the CA across apiservers). */
  pki?: TestPki;
  /** Auto-approve kubelet client CSRs (default false). */
  autoApproveCsrs?: boolean;
  /** Validity of signed CSRs when spec.expirationSeconds is absent, and its cap (default 1 year). */
  csrDurationSeconds?: number;
  /** Create the built-in namespaces, `kubernetes` Service and cluster-info (default true). */
  builtins?: boolean;
  /** Run the namespace controllers: `default` ServiceAccount and `kube-root-ca.crt` in every namespace (default true). */
  namespaceControllers?: boolean;
  logger?: Logger;
}

export interface KubeconfigOptions {
  /** Bearer token to use. */
  token?: string;
  /** Client certificate to use (see clientCertFor). */
  cert?: IssuedCert;
  /** With neither token nor cert: a client certificate is issued for user/groups. */
  user?: string;
  groups?: string[];
  /** Where to write (default: a file in the server's temp dir). */
  path?: string;
}

export interface TestStore {
  /** Creates through the API semantics (defaults, uid, resourceVersion); status kept if given. */
  create(obj: Obj): Obj;
  /** Full update (PUT semantics; status applied too for kinds with a status subresource). */
  update(obj: Obj): Obj;
  /** Merges `status` into the object's status (a merge patch on /status). */
  patchStatus(kind: string, namespace: string | undefined, name: string, status: Obj): Obj;
  /** Any patch on the object or a subresource. */
  patch(kind: string, namespace: string | undefined, name: string, patch: unknown, options?: { type?: 'merge' | 'strategic' | 'json'; subresource?: string }): Obj;
  /** DELETE semantics (graceful for bound pods unless gracePeriodSeconds: 0). */
  delete(kind: string, namespace: string | undefined, name: string, options?: DeleteOptions): Obj;
  get(kind: string, namespace: string | undefined, name: string): Obj | undefined;
  /** Current objects (with kind/apiVersion), optionally in one namespace and filtered. */
  list(kind: string, namespace?: string, options?: ListOptions): Obj[];
}

export interface TestApiserverFaults {
  dropWatches(): number;
  /** Open watches go silent for ms (or until resumeWatches); with { includeNew: true } new ones too. */
  stallWatches(ms: number | 'forever', options?: { includeNew?: boolean }): number;
  resumeWatches(): void;
  /** Ends every open watch with an ERROR event (410 Expired), as when a watcher falls too far behind. */
  expireWatches(): number;
  failNext(n: number, code?: number, options?: FailOptions): void;
  compact(): void;
  setLatency(ms: number): void;
  restart(options?: { loseState?: boolean; downMs?: number }): Promise<void>;
}

export interface TestApiserver extends TestApiserverFaults {
  url: string;
  host: string;
  port: number;
  caPem: string;
  caPath: string;
  adminToken: string;
  kubeconfigPath: string;
  pki: TestPki;
  store: TestStore;
  faults: TestApiserverFaults;
  writeKubeconfig(options?: KubeconfigOptions): Promise<string>;
  clientCertFor(user: string, groups?: string[]): Promise<IssuedCert>;
  currentResourceVersion(): number;
  sendBookmark(): number;
  openWatches(): WatchInfo[];
  requestLog(): RequestRecord[];
  clearRequestLog(): void;
  setPolicy(rules: PolicyRule[]): void;
  addToken(token: string, user: UserInfo): void;
  setAutoApproveCsrs(on: boolean): void;
  /** Resolves when the built-in CSR signer has nothing in flight. */
  csrSignerIdle(): Promise<void>;
  stop(): Promise<void>;
}

function defFor(kind: string, apiVersion?: string): ResourceDef {
  const def = resourceForKind(kind, apiVersion);
  if (!def || def.virtual) throw new Error(`test apiserver: unknown kind ${apiVersion ? apiVersion + ' ' : ''}${kind}`);
  return def;
}

const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
} as const;

export async function startTestApiserver(options: TestApiserverOptions = {}): Promise<TestApiserver> {
  const host = options.host ?? '127.0.0.1';
  const pki = options.pki ?? (await createTestPki());
  const ownPki = !options.pki;
  const workDir = mkdtempSync(join(tmpdir(), 'keelson-apiserver-'));
  const store = createStore({ historySize: options.historySize });
  const registry = createRegistry(store);
  const hub = createWatchHub(store, { bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60000 });
  const adminToken = randomBytes(24).toString('hex');
  const authn = createAuthenticator(store, { [adminToken]: { username: 'admin', groups: ['system:masters'] }, ...(options.tokens ?? {}) }, pki.caPem);
  let policy: PolicyRule[] = options.policy ?? defaultPolicy();
  const faults = createFaults();
  const reviews = createReviews(authn, () => policy);
  let autoApprove = options.autoApproveCsrs ?? false;
  let port = options.port ?? 0;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const address = () => `https://${urlHost}:${port}`;

  let kubeletClientCert: Promise<IssuedCert> | undefined;
  const kubeletProxy = createKubeletProxy(registry, () => (kubeletClientCert ??= pki.issueClientCert('kube-apiserver-kubelet-client', ['system:masters'])));

  const handler = createRequestHandler({
    registry,
    hub,
    authn,
    policy: () => policy,
    faults,
    address,
    review: reviews.review,
    tokenRequest: reviews.tokenRequest,
    podLog: kubeletProxy.podLog,
    maxLog: 200000,
  });

  const sockets = new Set<Socket>();
  let server: Server = makeServer();

  function makeServer(): Server {
    const s = createServer(
      { key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: false },
      (req, res) => void handler(req, res),
    );
    s.keepAliveTimeout = 30000;
    s.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void podStreamUpgrade(req, socket, head));
    s.on('secureConnection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    s.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    return s;
  }

  /** pods/exec, pods/attach, pods/portforward: authorized as `create`, then proxied to the kubelet. */
  async function podStreamUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const fail = (err: ApiError) => {
      const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message, reason: err.reason, code: err.code });
      socket.end(`HTTP/1.1 ${err.code} ${err.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    socket.on('error', () => socket.destroy());
    try {
      const url = new URL(req.url ?? '/', 'https://apiserver');
      const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)$/.exec(url.pathname);
      if (!m) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      const [namespace, name, subresource] = [decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), m[3]!];
      const user = authn.authenticate(req);
      const decision = authorizeRequest(policy, { user: user.username, groups: user.groups, verb: 'create', resource: 'pods', subresource, apiGroup: '', namespace, name });
      if (!decision.allowed) throw new ApiError(403, 'Forbidden', `pods "${name}" is forbidden: User "${user.username}" cannot create resource "pods/${subresource}" in API group "" in the namespace "${namespace}"`);
      await kubeletProxy.podStream(namespace, name, subresource, url.searchParams, req, socket, head);
    } catch (err) {
      fail(err instanceof ApiError ? err : new ApiError(500, 'InternalError', String(err)));
    }
  }

  function listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const addr = server.address();
        if (addr && typeof addr === 'object') port = addr.port;
        resolve();
      });
    });
  }

  await listen();

  const bootstrap = createBootstrapSigner(registry, address, pki.caPem);
  const namespaceControllers = options.namespaceControllers === false ? undefined : createNamespaceControllers(registry, pki.caPem);
  const signer = createCsrSigner(registry, {
    sign: (pem, o) => pki.signCsr(pem, { seconds: o.seconds, usages: o.usages, copySans: o.copySans }),
    durationSeconds: options.csrDurationSeconds ?? 365 * 86400,
    autoApprove: () => autoApprove,
    logger: options.logger,
  });

  function createFixture(obj: Obj): Obj {
    const def = defFor(obj.kind, obj.apiVersion);
    const ns = def.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined;
    const nsDef = defFor('Namespace', 'v1');
    if (ns && !store.get('namespaces', `/${ns}`)) registry.create(nsDef, undefined, { metadata: { name: ns } });
    const existing = store.get(resourceId(def), `${ns ?? ''}/${obj.metadata?.name}`);
    let created: Obj;
    if (existing && def.kind === 'Namespace') created = registry.get(def, ns, obj.metadata.name);
    else created = registry.create(def, ns, obj);
    if (hasStatusSubresource(def) && obj.status !== undefined) {
      created = registry.update(def, ns, created.metadata.name, { ...created, status: obj.status }, 'status').object;
    }
    return created;
  }

  function seed(): void {
    if (options.builtins !== false) {
      const nsDef = defFor('Namespace', 'v1');
      for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
        if (!store.get('namespaces', `/${name}`)) registry.create(nsDef, undefined, { metadata: { name } });
      }
      registry.create(defFor('Service', 'v1'), 'default', {
        metadata: { name: 'kubernetes', labels: { component: 'apiserver', provider: 'kubernetes' } },
        spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: port }] },
      });
      registry.create(defFor('EndpointSlice', 'discovery.k8s.io/v1'), 'default', {
        metadata: { name: 'kubernetes', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'endpointslicemirroring-controller.k8s.io' } },
        addressType: host.includes(':') ? 'IPv6' : 'IPv4',
        endpoints: [{ addresses: [host === '0.0.0.0' ? '127.0.0.1' : host], conditions: { ready: true } }],
        ports: [{ name: 'https', port, protocol: 'TCP' }],
      });
      bootstrap.ensure();
    }
    for (const obj of options.fixtures ?? []) createFixture(obj);
  }

  try {
    seed();
  } catch (err) {
    namespaceControllers?.stop();
    bootstrap.stop();
    signer.stop();
    server.close();
    server.closeAllConnections();
    throw err;
  }

  const kubeconfigPath = join(workDir, 'admin.kubeconfig');
  writeFileSync(kubeconfigPath, renderKubeconfig(address(), pki.caPem, { name: 'admin', token: adminToken }), { mode: 0o600 });

  const testStore: TestStore = {
    create: createFixture,
    update(obj) {
      const def = defFor(obj.kind, obj.apiVersion);
      const ns = def.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined;
      let updated = registry.update(def, ns, obj.metadata.name, obj).object;
      if (hasStatusSubresource(def) && obj.status !== undefined) {
        updated = registry.update(def, ns, obj.metadata.name, { ...updated, status: obj.status }, 'status').object;
      }
      return updated;
    },
    patchStatus(kind, namespace, name, status) {
      const def = defFor(kind);
      return registry.patch(def, namespace, name, PATCH_TYPES.merge, { status }, hasStatusSubresource(def) ? 'status' : undefined);
    },
    patch(kind, namespace, name, patch, opts = {}) {
      return registry.patch(defFor(kind), namespace, name, PATCH_TYPES[opts.type ?? 'merge'], patch, opts.subresource);
    },
    delete(kind, namespace, name, opts) {
      return registry.delete(defFor(kind), namespace, name, opts).object;
    },
    get(kind, namespace, name) {
      try {
        return registry.get(defFor(kind), namespace, name);
      } catch (err) {
        if (err instanceof ApiError && err.code === 404) return undefined;
        throw err;
      }
    },
    list(kind, namespace, opts) {
      const def = defFor(kind);
      const list = registry.list(def, namespace, opts);
      return (list.items as Obj[]).map((item) => ({ kind: def.kind, apiVersion: def.group ? `${def.group}/${def.version}` : def.version, ...item }));
    },
  };

  let stopped = false;

  async function closeListener(): Promise<void> {
    hub.closeAll();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await closed;
  }

  const faultApi: TestApiserverFaults = {
    dropWatches: () => hub.drop(),
    stallWatches: (ms, opts) => hub.stall(ms, opts?.includeNew),
    resumeWatches: () => hub.resume(),
    expireWatches: () => hub.expire(),
    failNext: (n, code = 500, opts) => faults.failNext(n, code, opts),
    compact: () => store.compact(),
    setLatency: (ms) => faults.setLatency(ms),
    async restart(opts = {}) {
      await closeListener();
      if (opts.loseState) {
        store.clear();
        seed();
      }
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      if (stopped) return;
      server = makeServer();
      await listen();
    },
  };

  let certCount = 0;
  const api: TestApiserver = {
    ...faultApi,
    faults: faultApi,
    url: address(),
    host,
    port,
    caPem: pki.caPem,
    caPath: pki.caCertPath,
    adminToken,
    kubeconfigPath,
    pki,
    store: testStore,
    async writeKubeconfig(opts = {}) {
      let user: { name: string; token?: string; certPem?: string; keyPem?: string };
      if (opts.token) user = { name: opts.user ?? 'token-user', token: opts.token };
      else {
        const cert = opts.cert ?? (await pki.issueClientCert(opts.user ?? 'admin', opts.groups ?? (opts.user ? [] : ['system:masters'])));
        user = { name: opts.user ?? 'cert-user', certPem: cert.certPem, keyPem: cert.keyPem };
      }
      const path = opts.path ?? join(workDir, `user-${++certCount}.kubeconfig`);
      writeFileSync(path, renderKubeconfig(address(), pki.caPem, user), { mode: 0o600 });
      return path;
    },
    clientCertFor: (user, groups = []) => pki.issueClientCert(user, groups),
    currentResourceVersion: () => store.currentRv(),
    sendBookmark: () => hub.sendBookmark(),
    openWatches: () => hub.list(),
    requestLog: () => faults.log.slice(),
    clearRequestLog: () => void faults.log.splice(0),
    setPolicy(rules) {
      policy = rules;
    },
    addToken: (token, user) => authn.addToken(token, user),
    setAutoApproveCsrs(on) {
      autoApprove = on;
    },
    csrSignerIdle: () => signer.idle(),
    async stop() {
      if (stopped) return;
      stopped = true;
      namespaceControllers?.stop();
      bootstrap.stop();
      signer.stop();
      await closeListener();
      await signer.idle().catch(() => undefined);
      rmSync(workDir, { recursive: true, force: true });
      if (ownPki) pki.cleanup();
    },
  };
  return api;
}
