/**
 * cgroup setup: the hierarchy version, the controllers pods need (memory above all: without it
 * memory limits are not enforced and containerd refuses them), and Delegate=yes on keelson's unit.
 */
import { join } from 'node:path';
import { fail, ok, warn, type CheckResult, type DoctorCheck, type DoctorContext } from './check';

const NEEDED_V2 = ['cpu', 'memory', 'pids'];
const NEEDED_V1 = ['cpu', 'cpuacct', 'memory', 'pids', 'devices', 'freezer'];

const BOOT_FIX = 'enable the memory cgroup on the kernel command line: add "cgroup_enable=memory cgroup_memory=1" (Raspberry Pi: /boot/firmware/cmdline.txt; GRUB: GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot';

/** Enabled v1 controllers from /proc/cgroups (`name hierarchy num_cgroups enabled`). */
export function enabledV1Controllers(procCgroups: string): string[] {
  return procCgroups
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === '1')
    .map((f) => f[0]!);
}

function hierarchy(ctx: DoctorContext): 'v2' | 'hybrid' | 'v1' {
  if (ctx.exists(join(ctx.paths.cgroupRoot, 'cgroup.controllers'))) return 'v2';
  if (ctx.exists(join(ctx.paths.cgroupRoot, 'unified', 'cgroup.controllers'))) return 'hybrid';
  return 'v1';
}

async function delegate(ctx: DoctorContext): Promise<CheckResult> {
  const name = 'cgroup delegation';
  const res = await ctx.exec(['systemctl', 'show', '-p', 'Delegate,LoadState', 'keelson.service']).catch(() => undefined);
  if (!res || res.code !== 0) return ok(name, 'systemd not reachable (keelson not run as a systemd service here): nothing to check');
  const props = Object.fromEntries(res.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (props.LoadState !== 'loaded') return ok(name, 'keelson.service is not installed: nothing to check');
  if (props.Delegate === 'yes') return ok(name, 'keelson.service has Delegate=yes');
  return warn(
    name,
    `keelson.service has Delegate=${props.Delegate ?? '(unset)'}: systemd may move or reset the cgroups keelson creates`,
    'add Delegate=yes under [Service] (the packaged unit has it, check for an override in /etc/systemd/system/keelson.service.d/), then systemctl daemon-reload && systemctl restart keelson',
  );
}

export const cgroupsCheck: DoctorCheck = {
  name: 'cgroups',
  async run(ctx) {
    const name = 'cgroups';
    const version = hierarchy(ctx);
    let result: CheckResult;
    if (version === 'v2') {
      let controllers: string[] = [];
      try {
        controllers = ctx.readFile(join(ctx.paths.cgroupRoot, 'cgroup.controllers')).trim().split(/\s+/).filter(Boolean);
      } catch {
        // unreadable: reported as missing controllers below
      }
      const missing = NEEDED_V2.filter((c) => !controllers.includes(c));
      result = missing.length
        ? fail(name, `cgroup v2 without the ${missing.join(', ')} controller${missing.length > 1 ? 's' : ''} (have: ${controllers.join(' ') || 'none'})`, missing.includes('memory') ? BOOT_FIX : `enable the ${missing.join(', ')} controllers on the kernel command line and reboot`)
        : ok(name, `cgroup v2 with ${controllers.join(' ')}`);
    } else {
      let enabled: string[] = [];
      try {
        enabled = enabledV1Controllers(ctx.readFile(join(ctx.paths.proc, 'cgroups')));
      } catch {
        // unreadable: reported as missing controllers below
      }
      const missing = NEEDED_V1.filter((c) => !enabled.includes(c));
      const label = version === 'hybrid' ? 'cgroup v1 (hybrid)' : 'cgroup v1';
      result = missing.length
        ? fail(name, `${label} without the ${missing.join(', ')} controller${missing.length > 1 ? 's' : ''}`, missing.includes('memory') ? BOOT_FIX : `enable the ${missing.join(', ')} controllers on the kernel command line and reboot`)
        : warn(name, `${label} with ${NEEDED_V1.join(' ')}: works, but Kubernetes keeps cgroup v1 in maintenance mode only`, 'move to cgroup v2: boot with systemd.unified_cgroup_hierarchy=1 (the default on Debian 11+, Ubuntu 21.10+)');
    }
    return [result, await delegate(ctx)];
  },
};
