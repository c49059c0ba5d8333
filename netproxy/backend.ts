/** The one contract between the proxy core and its kernel backends. */
import type { Logger } from 'pino';
import type { ProxyConfig, ProxyMode } from './config';
import type { DesiredState } from './desiredstate';
import type { CommandRunner } from './exec';

/**
 * Which kind of sync the core asks for (kube-proxy's policy, owned by the sync runner):
 * - partial: apply the Services in `changed`, nothing else;
 * - full (`full`): rewrite everything this backend owns: first sync, after a failed sync, after
 *   drift was found, and every `fullSyncPeriod` (1 h);
 * - consistency (`verify`, the periodic resync every `syncPeriod`): a partial sync that first checks
 *   cheaply that the objects this backend wrote are still in the kernel (a canary), and reports
 *   drift instead of applying anything when they are not; the core then follows with a full sync.
 */
export interface SyncRequest {
  state: DesiredState;
  /** Service keys whose port states changed since the last successful sync. */
  changed: Set<string>;
  /** Rewrite everything this backend owns. */
  full: boolean;
  /** Periodic consistency check (never together with `full`). */
  verify?: boolean;
}

export interface SyncStats {
  /** Rules plus map/set elements the backend holds after the sync. */
  rules: number;
  /** A `verify` sync found its objects missing or altered (why, for the log); nothing was applied. */
  drift?: string;
  /** Everything the backend owns was rewritten (a full sync, asked for or the backend's own choice). */
  rewrote?: boolean;
}

export interface ProxyBackend {
  readonly mode: ProxyMode;
  sync(request: SyncRequest): Promise<SyncStats>;
  /** Removes every table, chain, set and rule this backend owns. */
  cleanup(): Promise<void>;
}

export interface BackendContext {
  exec: CommandRunner;
  logger: Logger;
  config: ProxyConfig;
  /** The node's own addresses (NodePorts listen on those matching nodePortAddresses). */
  nodeIPs: string[];
}
