import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** keelson's version, from its package.json (dist/agent/*.js → ../../package.json). */
export function keelsonVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The Kubernetes version whose kubelet behaviour keelson follows (reported as kubeletVersion). */
export const KUBERNETES_COMPAT_VERSION = 'v1.33.0';
