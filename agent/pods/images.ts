/**
 * Image pulls as kubelet's image manager does them: imagePullPolicy Always pulls, IfNotPresent
 * pulls only a missing image, Never only uses a present one. A failed pull backs off (10 s doubling)
 * and meanwhile the container waits with reason ImagePullBackOff. Given the pod, each step is an Event
 * as kubelet records them (Pulling, Pulled, Failed, ErrImageNeverPull, BackOff).
 */
import type { Container as ApiContainer, Pod } from 'kubernetes-types/core/v1';
import type { Backoff } from './backoff';
import type { Clock } from './clock';
import type { PodRuntime, PodSandboxConfig, RegistryAuthConfig } from './runtime';
import { containerFieldPath, recordEvent, type EventType } from './events';
import { errorMessage } from '../errors';

export class ContainerStartError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'ContainerStartError';
  }
}

export interface ImagePuller {
  /**
   * Resolves with the image to create the container from, or throws a ContainerStartError.
   * With pod, the pull steps are recorded as Events about the container.
   */
  ensureImage(key: string, container: ApiContainer, sandboxConfig: PodSandboxConfig, credentials?: () => Promise<RegistryAuthConfig[]>, pod?: Pod): Promise<string>;
}

export function createImagePuller(runtime: PodRuntime, backoff: Backoff, clock: Clock): ImagePuller {
  const failedAt = new Map<string, number>();
  return {
    async ensureImage(key, container, sandboxConfig, credentials, pod) {
      const image = container.image!;
      const event = (type: EventType, reason: string, message: string) => {
        if (pod) recordEvent(pod, type, reason, message, { fieldPath: containerFieldPath(container.name) });
      };
      const policy = container.imagePullPolicy ?? 'IfNotPresent';
      if (policy !== 'Always') {
        const present = await runtime.imageStatus(image);
        if (present) {
          event('Normal', 'Pulled', `Container image "${image}" already present on machine`);
          return image;
        }
        if (policy === 'Never') {
          const message = `Container image "${image}" is not present with pull policy of Never`;
          event('Warning', 'ErrImageNeverPull', message);
          throw new ContainerStartError('ErrImageNeverPull', message);
        }
      }
      const pullKey = `pull/${key}`;
      const last = failedAt.get(pullKey);
      if (last !== undefined && backoff.remaining(pullKey, last) > 0) {
        const message = `Back-off pulling image "${image}"`;
        event('Normal', 'BackOff', message);
        throw new ContainerStartError('ImagePullBackOff', message);
      }
      event('Normal', 'Pulling', `Pulling image "${image}"`);
      const started = clock.now();
      try {
        await pullWithCredentials(runtime, image, sandboxConfig, credentials ? await credentials() : []);
        failedAt.delete(pullKey);
        event('Normal', 'Pulled', `Successfully pulled image "${image}" in ${((clock.now() - started) / 1000).toFixed(3)}s`);
        return image;
      } catch (err) {
        failedAt.set(pullKey, clock.now());
        backoff.next(pullKey, clock.now());
        const message = `failed to pull image "${image}": ${errorMessage(err)}`;
        event('Warning', 'Failed', `Failed to pull image "${image}": ${errorMessage(err)}`);
        throw new ContainerStartError('ErrImagePull', message);
      }
    },
  };
}

/** Tries each matching credential in turn (most specific first), as kubelet does; anonymous when none match. */
async function pullWithCredentials(runtime: PodRuntime, image: string, sandboxConfig: PodSandboxConfig, auths: RegistryAuthConfig[]): Promise<void> {
  if (!auths.length || !runtime.pullImageWithAuth) {
    await runtime.pullImage(image, sandboxConfig);
    return;
  }
  let last: unknown;
  for (const auth of auths) {
    try {
      await runtime.pullImageWithAuth(image, auth, sandboxConfig);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
