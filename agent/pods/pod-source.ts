/**
 * Where desired pods come from. Each source delivers its complete current set of pods (kubelet's
 * SET semantics), so a consumer diffs by UID and nothing is lost if an event is. Static pods come
 * from static-pod-source.ts; the apiserver source (issue 4) will implement the same contract.
 */
import type { Pod } from 'kubernetes-types/core/v1';

export interface ManifestProblem {
  /** The manifest file. */
  file: string;
  /** 0-based document within the file, when the problem concerns one document. */
  document?: number;
  /** The field path (`spec.containers[0].image`), or the place in the file for syntax errors. */
  field: string;
  message: string;
}

export interface PodSource {
  readonly name: string;
  /** Starts watching; resolves after the first complete set was delivered to onPods. */
  start(onPods: (pods: Pod[]) => void): Promise<void>;
  stop(): void;
  /** Current problems with the source's input (bad manifests), for status and health. */
  problems(): ManifestProblem[];
}
