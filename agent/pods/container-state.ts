/** The API form of a container instance's runtime state, shared by app and init container statuses. */
import type { ContainerState } from 'kubernetes-types/core/v1';
import type { ContainerInstance } from './runtime-state';

/** RFC 3339 at second precision, as the API writes container times. */
export const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function terminatedState(c: ContainerInstance, runtimeName: string): ContainerState {
  return {
    terminated: {
      exitCode: c.exitCode,
      reason: c.reason || (c.exitCode === 0 ? 'Completed' : 'Error'),
      ...(c.message ? { message: c.message } : {}),
      startedAt: c.startedAt ? iso(c.startedAt) : undefined,
      finishedAt: c.finishedAt ? iso(c.finishedAt) : undefined,
      containerID: `${runtimeName}://${c.id}`,
    },
  };
}
