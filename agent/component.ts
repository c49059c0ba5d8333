/** What every long-running part of the daemon reports, shown by `keelson status` and healthz. */
export interface ComponentHealth {
  name: string;
  healthy: boolean;
  /** Why it is unhealthy, or a short summary when healthy. */
  message?: string;
  /** ISO time of the last successful sync, for components that sync. */
  lastSyncTime?: string;
  details?: Record<string, unknown>;
}

/** The lifecycle contract of kubelet, proxy and dns, wired by agent/run.ts. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): ComponentHealth;
}
