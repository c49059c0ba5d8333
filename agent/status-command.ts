/** `keelson status`: what the running daemon under --root-dir is doing, read from its state file. */
import type { ComponentHealth } from './component';
import { processAlive, readDaemonState, stateFilePath, type DaemonState } from './state-file';

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('   ')).join('\n');
}

function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/** Informer health entries carry their list-watch details (resourceVersion, relists). */
function isInformer(c: ComponentHealth): boolean {
  return !!c.details && 'relists' in c.details && 'resourceVersion' in c.details;
}

/** The node-level summary: join state, apiserver reachability, Lease age, services programmed, DNS address. */
export function summaryRows(state: DaemonState, now = Date.now()): string[][] {
  const extra = (state.extra ?? {}) as { kubeconfig?: unknown; dnsAddresses?: unknown };
  const kubeconfig = typeof extra.kubeconfig === 'string' ? extra.kubeconfig : undefined;
  const rows: string[][] = [];
  rows.push(['joined', state.mode === 'cluster' ? `yes${kubeconfig ? ` (${kubeconfig})` : ''}` : 'no (standalone: no kubeconfig; keelson join to join a cluster)']);
  if (state.mode === 'cluster') {
    const informers = state.components.filter(isInformer);
    const failing = informers.filter((c) => !c.healthy && /failing/.test(c.message ?? ''));
    rows.push([
      'apiserver',
      informers.length === 0 ? 'unknown (no watches)' : failing.length ? `unreachable or failing: ${failing[0]!.name}: ${failing[0]!.message ?? ''}` : informers.every((c) => c.healthy) ? `reachable (${informers.length} watches healthy)` : 'connecting (waiting for the first lists)',
    ]);
    const node = state.components.find((c) => c.name === 'node');
    rows.push(['lease', node?.lastSyncTime ? `renewed ${age(node.lastSyncTime, now)} ago` : node ? 'not renewed yet' : '- (node registration off)']);
  }
  const proxy = state.components.find((c) => c.name === 'proxy');
  if (proxy) {
    const d = (proxy.details ?? {}) as { services?: unknown; mode?: unknown };
    rows.push(['services', `${typeof d.services === 'number' ? d.services : '?'} programmed${typeof d.mode === 'string' ? ` (${d.mode})` : ''}${proxy.lastSyncTime ? `, last sync ${age(proxy.lastSyncTime, now)} ago` : ''}`]);
  }
  const dns = Array.isArray(extra.dnsAddresses) ? extra.dnsAddresses.filter((a): a is string => typeof a === 'string') : [];
  rows.push(['dns', dns.length ? dns.join(', ') : 'off']);
  return rows;
}

export function renderStatus(state: DaemonState, running: boolean, now = Date.now()): string {
  const lines: string[] = [];
  const daemon = running ? `running (pid ${state.pid}, up ${age(state.startedAt, now)})` : state.stopped ? 'stopped' : `not running (last seen ${age(state.updatedAt, now)} ago)`;
  lines.push(`keelson ${state.version}   node ${state.nodeName}   mode ${state.mode}   daemon ${daemon}`);
  lines.push('');
  lines.push(table(summaryRows(state, now)));
  lines.push('');
  lines.push(table([['COMPONENT', 'HEALTHY', 'LAST SYNC', 'MESSAGE'], ...state.components.map((c) => [c.name, c.healthy ? 'yes' : 'NO', c.lastSyncTime ? `${age(c.lastSyncTime, now)} ago` : '-', c.message ?? ''])]));
  lines.push('');
  if (state.pods.length === 0) {
    lines.push('No pods.');
  } else {
    const rows = [['POD', 'PHASE', 'CONTAINER', 'STATE', 'READY', 'RESTARTS', 'POD IP']];
    for (const pod of state.pods) {
      const name = `${pod.namespace}/${pod.name}`;
      if (pod.containers.length === 0) rows.push([name, pod.phase, '-', '-', '-', '-', pod.podIP ?? '-']);
      pod.containers.forEach((c, i) => {
        const ready = c.ready === undefined ? '-' : c.ready ? 'yes' : 'no';
        rows.push([i === 0 ? name : '', i === 0 ? pod.phase : '', c.name, c.reason ? `${c.state} (${c.reason})` : c.state, ready, String(c.restartCount), i === 0 ? pod.podIP ?? '-' : '']);
      });
    }
    lines.push(table(rows));
  }
  if (state.problems.length) {
    lines.push('');
    lines.push('Problems:');
    for (const p of state.problems) lines.push(`  - ${p}`);
  }
  return lines.join('\n');
}

export function statusCommand(rootDir: string, json: boolean): number {
  const state = readDaemonState(rootDir);
  if (!state) {
    process.stderr.write(`keelson status: no daemon state at ${stateFilePath(rootDir)}: is keelson running with --root-dir ${rootDir}?\n`);
    return 3;
  }
  const running = !state.stopped && processAlive(state.pid);
  if (json) process.stdout.write(JSON.stringify({ ...state, running }, null, 2) + '\n');
  else process.stdout.write(renderStatus(state, running) + '\n');
  return running ? 0 : 3;
}
