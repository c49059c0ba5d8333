/** Runtime socket and CRI version: is containerd / CRI-O there, serving runtime.v1, and ready? */
import { socketPathOf } from '../../cri/client';
import { CriErrorCodes, isCriError } from '../../cri/errors';
import { errorMessage } from '../errors';
import { fail, ok, warn, type DoctorCheck, type DoctorContext, type RuntimeProbe } from './check';

const TIMEOUT_MS = 5000;

/** Asks the runtime for its version, status (verbose) and image filesystem; never throws. */
export async function probeRuntime(ctx: DoctorContext): Promise<RuntimeProbe> {
  const endpoint = ctx.config.kubelet.containerRuntimeEndpoint;
  let socket: string;
  try {
    socket = socketPathOf(endpoint);
  } catch (err) {
    return { endpoint, socket: endpoint, error: err };
  }
  const probe: RuntimeProbe = { endpoint, socket };
  if (!ctx.exists(socket)) {
    probe.error = new Error(`socket ${socket} does not exist`);
    return probe;
  }
  const cri = ctx.criClient(endpoint);
  try {
    const v = await cri.version({}, { timeoutMs: TIMEOUT_MS });
    probe.version = { runtimeName: v.runtime_name, runtimeVersion: v.runtime_version, apiVersion: v.runtime_api_version };
    const status = await cri.status({ verbose: true }, { timeoutMs: TIMEOUT_MS });
    probe.conditions = status.status?.conditions ?? [];
    if (status.info?.config) {
      try {
        probe.runtimeConfig = JSON.parse(status.info.config) as Record<string, unknown>;
      } catch {
        // CRI-O and others put other things there; the CNI check falls back to the default folder
      }
    }
    const fs = await cri.imageFsInfo({ timeoutMs: TIMEOUT_MS }).catch(() => undefined);
    const mount = fs?.image_filesystems?.[0]?.fs_id?.mountpoint;
    if (mount) probe.imageFsMountpoint = mount;
  } catch (err) {
    probe.error = err;
  } finally {
    cri.close();
  }
  return probe;
}

const CONFIG_HINT = 'set containerRuntimeEndpoint in /etc/keelson/config.yaml (containerd: unix:///run/containerd/containerd.sock, CRI-O: unix:///var/run/crio/crio.sock)';

export const runtimeCheck: DoctorCheck = {
  name: 'runtime',
  async run(ctx) {
    const name = 'runtime';
    const probe = await ctx.runtime();
    if (probe.error !== undefined) {
      const msg = errorMessage(probe.error);
      if (!ctx.exists(probe.socket)) {
        return fail(name, `no CRI socket at ${probe.socket}`, `start the container runtime (systemctl enable --now containerd) or ${CONFIG_HINT}`);
      }
      if (isCriError(probe.error, CriErrorCodes.UNSUPPORTED_VERSION)) {
        return fail(
          name,
          `${probe.socket} does not serve the CRI runtime.v1 API: ${msg}`,
          'use containerd >= 1.6 or CRI-O >= 1.20; if containerd came with Docker (containerd.io), remove "cri" from disabled_plugins in /etc/containerd/config.toml and systemctl restart containerd',
        );
      }
      if (isCriError(probe.error, CriErrorCodes.UNAVAILABLE)) {
        return fail(name, `runtime at ${probe.socket} refuses connections: ${msg}`, `systemctl restart containerd (or crio) and check journalctl -u containerd; or ${CONFIG_HINT}`);
      }
      return fail(name, `runtime at ${probe.socket} failed: ${msg}`, 'check the runtime log: journalctl -u containerd (or -u crio)');
    }
    const v = probe.version!;
    const what = `${v.runtimeName} ${v.runtimeVersion} (CRI ${v.apiVersion}) at ${probe.socket}`;
    const notReady = (probe.conditions ?? []).find((c) => c.type === 'RuntimeReady' && !c.status);
    if (notReady) {
      return fail(name, `${what}: RuntimeReady is false: ${notReady.reason} ${notReady.message}`.trim(), 'check the runtime log: journalctl -u containerd (or -u crio)');
    }
    return ok(name, what);
  },
};
