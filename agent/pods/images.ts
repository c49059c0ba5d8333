/**
 * Image pulls as kubelet's image manager does them: imagePullPolicy Always pulls, IfNotPresent
 * pulls only a missing image, Never only uses a present one. A failed pull backs off (10 s doubling)
 * and meanwhile the container waits with reason ImagePullBackOff.
 */
import type { Container as ApiContainer } from 'kubernetes-types/core/v1';
import type { Backoff } from './backoff';
import type { Clock } from './clock';
import type { PodRuntime, PodSandboxConfig, RegistryAuthConfig } from './runtime';
import { errorMessage } from '../errors';

export class ContainerStartError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'ContainerStartError';
  }
}

export interface ImagePuller {
  /** Resolves with the image to create the container from, or throws a ContainerStartError. */
  ensureImage(key: string, container: ApiContainer, sandboxConfig: PodSandboxConfig, credentials?: () => Promise<RegistryAuthConfig[]>): Promise<string>;
}

export function createImagePuller(runtime: PodRuntime, backoff: Backoff, clock: Clock): ImagePuller {
  const failedAt = new Map<string, number>();
  return {
    async ensureImage(key, container, sandboxConfig, credentials) {
      const image = container.image!;
      const policy = container.imagePullPolicy ?? 'IfNotPresent';
      if (policy !== 'Always') {
        const present = await runtime.imageStatus(image);
        if (present) return image;
        if (policy === 'Never') {
          throw new ContainerStartError('ErrImageNeverPull', `Container image "${image}" is not present with pull policy of Never`);
        }
      }
      const pullKey = `pull/${key}`;
      const last = failedAt.get(pullKey);
      if (last !== undefined && backoff.remaining(pullKey, last) > 0) {
        throw new ContainerStartError('ImagePullBackOff', `Back-off pulling image "${image}"`);
      }
      try {
        await pullWithCredentials(runtime, image, sandboxConfig, credentials ? await credentials() : []);
        failedAt.delete(pullKey);
        return image;
      } catch (err) {
        failedAt.set(pullKey, clock.now());
        backoff.next(pullKey, clock.now());
        throw new ContainerStartError('ErrImagePull', `failed to pull image "${image}": ${errorMessage(err)}`);
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
