/**
 * seccomp profiles, as kubelet chooses them: the container's `securityContext.seccompProfile`, else
 * the pod's, else the node default (Unconfined; RuntimeDefault with the kubelet config
 * `seccompDefault: true`). The sandbox gets the pod's. `Localhost` profiles are files relative to
 * `<rootDir>/seccomp` (kubelet: /var/lib/kubelet/seccomp); one that is missing is a
 * CreateContainerError of that container alone, checked before the runtime is asked.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Container, Pod, SeccompProfile } from 'kubernetes-types/core/v1';
import type { SecurityProfile } from './runtime';

export const SECCOMP_PROFILE_TYPES = ['RuntimeDefault', 'Unconfined', 'Localhost'];

export interface SeccompSettings {
  /** Where Localhost profiles are: `<rootDir>/seccomp`. */
  profileRoot: string;
  /** kubelet's seccompDefault: RuntimeDefault instead of Unconfined when the pod sets nothing. */
  defaultToRuntimeDefault: boolean;
}

/** Validation of one seccompProfile (pod or container level); problems name the field. */
export function seccompProblems(profile: SeccompProfile | undefined, field: string): { field: string; message: string }[] {
  if (!profile) return [];
  const out: { field: string; message: string }[] = [];
  if (!profile.type) out.push({ field: `${field}.type`, message: 'Required value' });
  else if (!SECCOMP_PROFILE_TYPES.includes(profile.type)) {
    out.push({ field: `${field}.type`, message: `Unsupported value: ${JSON.stringify(profile.type)}: supported values: ${SECCOMP_PROFILE_TYPES.map((t) => `"${t}"`).join(', ')}` });
  }
  const local = profile.localhostProfile;
  if (profile.type === 'Localhost' && !local) out.push({ field: `${field}.localhostProfile`, message: 'Required value: must be set when seccomp type is Localhost' });
  if (profile.type !== 'Localhost' && local !== undefined) out.push({ field: `${field}.localhostProfile`, message: 'Invalid value: can only be set when seccomp type is Localhost' });
  if (local && (local.startsWith('/') || local.split('/').includes('..'))) {
    out.push({ field: `${field}.localhostProfile`, message: `Invalid value: ${JSON.stringify(local)}: must be a relative path without '..'` });
  }
  return out;
}

function fromField(profile: SeccompProfile, settings: SeccompSettings): SecurityProfile {
  if (profile.type === 'RuntimeDefault') return { type: 'RuntimeDefault' };
  if (profile.type === 'Localhost') return { type: 'Localhost', localhostRef: path.join(settings.profileRoot, profile.localhostProfile ?? '') };
  return { type: 'Unconfined' };
}

/** The profile of the pod sandbox: the pod's field, else the node default. */
export function sandboxSeccompProfile(pod: Pod, settings: SeccompSettings): SecurityProfile {
  const podProfile = pod.spec?.securityContext?.seccompProfile;
  if (podProfile) return fromField(podProfile, settings);
  return { type: settings.defaultToRuntimeDefault ? 'RuntimeDefault' : 'Unconfined' };
}

/** The profile of one container: its own field wins over the pod's. */
export function containerSeccompProfile(pod: Pod, c: Container, settings: SeccompSettings): SecurityProfile {
  const own = c.securityContext?.seccompProfile;
  return own ? fromField(own, settings) : sandboxSeccompProfile(pod, settings);
}

/** undefined when the profile can be used; else why not (a Localhost file that is not there). */
export async function seccompProfileProblem(profile: SecurityProfile): Promise<string | undefined> {
  if (profile.type !== 'Localhost') return undefined;
  const file = profile.localhostRef ?? '';
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => err);
  if (info instanceof Error) {
    return info.code === 'ENOENT' ? `seccomp profile not found: ${file}` : `cannot read seccomp profile ${file}: ${info.message}`;
  }
  return info.isFile() ? undefined : `seccomp profile ${file} is not a file`;
}
