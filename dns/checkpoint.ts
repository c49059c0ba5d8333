/**
 * The last known Services, EndpointSlices, Pods (IPs only) and Namespaces, saved under the
 * checkpoint directory so DNS answers from them after a restart while the apiserver is away.
 * Written atomically (temp file + rename); an unreadable checkpoint is reported and ignored.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Namespace, Pod, Service } from 'kubernetes-types/core/v1';
import type { EndpointSlice } from 'kubernetes-types/discovery/v1';
import { DnsError, DnsErrorCodes } from './errors';

export interface DnsCheckpoint {
  version: 1;
  savedAt: string;
  services: Service[];
  endpointSlices: EndpointSlice[];
  pods: Pod[];
  namespaces: Namespace[];
}

export const CHECKPOINT_FILE = 'dns-state.json';

export async function readCheckpoint(dir: string): Promise<DnsCheckpoint | undefined> {
  const file = path.join(dir, CHECKPOINT_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DnsError(DnsErrorCodes.DNS_CHECKPOINT, `cannot read DNS checkpoint: ${(err as Error).message}`, { object: file, cause: err });
  }
  let data: Partial<DnsCheckpoint>;
  try {
    data = JSON.parse(text) as Partial<DnsCheckpoint>;
  } catch (err) {
    throw new DnsError(DnsErrorCodes.DNS_CHECKPOINT, 'DNS checkpoint is not valid JSON', { object: file, cause: err });
  }
  if (data.version !== 1 || !Array.isArray(data.services) || !Array.isArray(data.endpointSlices)) {
    throw new DnsError(DnsErrorCodes.DNS_CHECKPOINT, 'DNS checkpoint has an unknown shape', { object: file });
  }
  return { version: 1, savedAt: String(data.savedAt ?? ''), services: data.services, endpointSlices: data.endpointSlices, pods: Array.isArray(data.pods) ? data.pods : [], namespaces: Array.isArray(data.namespaces) ? data.namespaces : [] };
}

export async function writeCheckpoint(dir: string, state: Omit<DnsCheckpoint, 'version' | 'savedAt'>): Promise<void> {
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    await fs.writeFile(tmp, JSON.stringify({ version: 1, savedAt: new Date().toISOString(), ...state }), { mode: 0o644 });
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw new DnsError(DnsErrorCodes.DNS_CHECKPOINT, `cannot write DNS checkpoint: ${(err as Error).message}`, { object: file, cause: err });
  }
}
