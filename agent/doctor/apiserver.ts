/**
 * apiserver reachability (one GET /version with the node's kubeconfig) and clock skew against it
 * (the response's Date header). A skewed clock makes certificates look expired or not yet valid
 * and Leases look stale to the control plane.
 */
import https from 'node:https';
import type { KubeConfig } from '../kube/kubeconfig';
import { errorMessage } from '../errors';
import { fail, ok, warn, type ApiserverProbe, type DoctorCheck, type DoctorContext } from './check';

const TIMEOUT_MS = 5000;
export const SKEW_WARN_MS = 5_000;
export const SKEW_FAIL_MS = 60_000;

export function probeApiserver(kc: KubeConfig, now: () => number = Date.now): Promise<ApiserverProbe> {
  const url = new URL('/version', kc.server + '/');
  const probe: ApiserverProbe = { server: kc.server };
  return new Promise((resolve) => {
    const sent = now();
    const req = https.request(
      url,
      {
        method: 'GET',
        timeout: TIMEOUT_MS,
        headers: { accept: 'application/json', ...(kc.credentials.token ? { authorization: `Bearer ${kc.credentials.token}` } : {}) },
        ...(kc.certificateAuthority ? { ca: kc.certificateAuthority } : {}),
        ...(kc.credentials.clientCertificate ? { cert: kc.credentials.clientCertificate, key: kc.credentials.clientKey } : {}),
        ...(kc.tlsServerName ? { servername: kc.tlsServerName } : {}),
        rejectUnauthorized: !kc.insecureSkipTLSVerify,
        agent: false,
      },
      (res) => {
        const received = now();
        probe.statusCode = res.statusCode;
        probe.roundTripMs = received - sent;
        probe.localMidpoint = sent + (received - sent) / 2;
        const date = Date.parse(String(res.headers.date ?? ''));
        // Date is truncated to the second: the server's time was somewhere in [date, date + 1 s).
        if (!Number.isNaN(date)) probe.serverDate = date + 500;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 65536) body += c;
        });
        res.on('end', () => {
          try {
            const v = JSON.parse(body) as { gitVersion?: unknown };
            if (typeof v.gitVersion === 'string') probe.gitVersion = v.gitVersion;
          } catch {
            // not JSON: the status code says enough
          }
          resolve(probe);
        });
        res.on('error', (err) => resolve({ ...probe, error: errorMessage(err) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve({ ...probe, error: `${errorMessage(err)}${(err as NodeJS.ErrnoException).code && !errorMessage(err).includes(String((err as NodeJS.ErrnoException).code)) ? ` (${(err as NodeJS.ErrnoException).code})` : ''}` }));
    req.end();
  });
}

function notJoined(ctx: DoctorContext, name: string) {
  const kc = ctx.kubeconfig();
  if (kc === undefined) return ok(name, 'not joined (no kubeconfig): nothing to check');
  if (kc instanceof Error) return fail(name, errorMessage(kc), `fix the kubeconfig, or join again: keelson join --server URL --token TOKEN --discovery-token-ca-cert-hash sha256:HASH`);
  return undefined;
}

export const apiserverCheck: DoctorCheck = {
  name: 'apiserver',
  async run(ctx) {
    const name = 'apiserver';
    const early = notJoined(ctx, name);
    if (early) return early;
    const probe = (await ctx.apiserver())!;
    if (probe.error) {
      const tls = /certificate|self.signed|CERT_|SSL|TLS/i.test(probe.error);
      return fail(
        name,
        `${probe.server} unreachable: ${probe.error}`,
        tls
          ? 'the apiserver certificate does not match the kubeconfig CA or server name: check certificate-authority-data and the server URL in /etc/keelson/kubelet.conf (or join again)'
          : 'check the network path to the control plane (routing, firewall on port 6443, DNS of the server name); keelson keeps pods running from its checkpoints meanwhile',
      );
    }
    if (probe.statusCode === 401) return fail(name, `${probe.server} rejects the node's credentials (401)`, 'the client certificate or token is no longer accepted: join again with a fresh token (kubeadm token create --print-join-command)');
    if (probe.statusCode !== 200 && probe.statusCode !== 403) return warn(name, `${probe.server}/version answered ${probe.statusCode}`, 'check the apiserver health on the control plane (kubectl get --raw /readyz)');
    return ok(name, `${probe.server} reachable${probe.gitVersion ? `, Kubernetes ${probe.gitVersion}` : ''} (${probe.roundTripMs} ms)`);
  },
};

export const clockCheck: DoctorCheck = {
  name: 'clock',
  async run(ctx) {
    const name = 'clock skew';
    const early = notJoined(ctx, name);
    if (early) return early;
    const probe = (await ctx.apiserver())!;
    if (probe.serverDate === undefined || probe.localMidpoint === undefined) {
      return warn(name, `cannot compare clocks: ${probe.error ? `apiserver unreachable (${probe.error})` : 'the apiserver sent no Date header'}`, 'see the apiserver check');
    }
    const skew = probe.localMidpoint - probe.serverDate;
    const abs = Math.abs(skew);
    const text = `this host's clock is ${(abs / 1000).toFixed(1)} s ${skew > 0 ? 'ahead of' : 'behind'} the apiserver's (${probe.server})`;
    const fix = 'synchronise the clock: timedatectl set-ntp true (systemd-timesyncd), or install chrony; edge devices without an RTC need NTP reachable at boot';
    if (abs >= SKEW_FAIL_MS) return fail(name, `${text}: certificates and Leases break`, fix);
    if (abs >= SKEW_WARN_MS) return warn(name, text, fix);
    return ok(name, abs < 1500 ? `in sync with the apiserver (${probe.server})` : text);
  },
};
