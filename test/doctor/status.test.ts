/** `keelson status`'s node summary: join state, apiserver reachability, Lease age, services, DNS address. */
import test from 'ava';
import { renderStatus, summaryRows } from '../../agent/status-command';
import type { DaemonState } from '../../agent/state-file';

const now = Date.parse('2025-01-01T12:00:00Z');
const ago = (s: number) => new Date(now - s * 1000).toISOString();
const informer = (name: string, healthy: boolean, message: string) => ({ name, healthy, message, details: { resourceVersion: '1', relists: 0, reconnects: 0, objects: 3 } });

function state(overrides: Partial<DaemonState> = {}): DaemonState {
  return {
    pid: 1, version: '0.1.0', nodeName: 'edge-1', mode: 'cluster', startedAt: ago(600), updatedAt: ago(1),
    components: [
      { name: 'kubelet', healthy: true, message: '0 pods' },
      { name: 'node', healthy: true, message: 'lease renewed', lastSyncTime: ago(4) },
      { name: 'proxy', healthy: true, lastSyncTime: ago(12), details: { mode: 'nftables', services: 7, rules: 40 } },
      informer('services', true, 'watching, 3 objects'),
      informer('endpointslices', true, 'watching, 3 objects'),
    ],
    pods: [], problems: [],
    extra: { kubeconfig: '/etc/keelson/kubelet.conf', dnsAddresses: ['169.254.20.10:53'] },
    ...overrides,
  };
}

test('a joined node shows its kubeconfig, a reachable apiserver, the Lease age, services and the DNS address', (t) => {
  const rows = Object.fromEntries(summaryRows(state(), now).map(([k, v]) => [k, v]));
  t.is(rows.joined, 'yes (/etc/keelson/kubelet.conf)');
  t.is(rows.apiserver, 'reachable (2 watches healthy)');
  t.is(rows.lease, 'renewed 4s ago');
  t.is(rows.services, '7 programmed (nftables), last sync 12s ago');
  t.is(rows.dns, '169.254.20.10:53');
  const text = renderStatus(state(), true, now);
  t.regex(text, /^keelson 0\.1\.0   node edge-1   mode cluster   daemon running \(pid 1, up 10m\)$/m);
  t.regex(text, /^apiserver +reachable \(2 watches healthy\)$/m);
  t.regex(text, /^COMPONENT +HEALTHY +LAST SYNC +MESSAGE$/m);
});

test('a failing watch shows the apiserver as unreachable with the reason; standalone says how to join', (t) => {
  const down = state({ components: [informer('services', false, 'list-watch failing since 2025-01-01T11:59:00Z: connect ECONNREFUSED'), informer('pods', true, 'watching')] });
  const rows = Object.fromEntries(summaryRows(down, now).map(([k, v]) => [k, v]));
  t.regex(rows.apiserver!, /^unreachable or failing: services: list-watch failing since .*ECONNREFUSED$/);
  t.is(rows.lease, '- (node registration off)');
  const alone = Object.fromEntries(summaryRows(state({ mode: 'standalone', extra: { dnsAddresses: [] } }), now).map(([k, v]) => [k, v]));
  t.regex(alone.joined!, /^no \(standalone: no kubeconfig; keelson join/);
  t.false('apiserver' in alone, 'standalone has no apiserver row');
  t.is(alone.dns, 'off');
});
