/** The one contract between the proxy core and its kernel backends. */
import type { Logger } from 'pino';
import type { ProxyConfig, ProxyMode } from './config';
import type { DesiredState } from './desiredstate';
import type { CommandRunner } from './exec';

export interface SyncRequest {
  state: DesiredState;
  /** Service keys whose port states changed since the last successful sync. */
  changed: Set<string>;
  /** Rewrite everything this backend owns (first sync, periodic resync, after a failure). */
  full: boolean;
}

export interface SyncStats {
  /** Rules plus map/set elements the backend holds after the sync. */
  rules: number;
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
