/**
 * Server-side printing: a `meta.k8s.io/v1` Table when the client asks for `as=Table` (kubectl get
 * does), with the columns kubectl users know for Nodes, Pods, Services and EndpointSlices, and
 * Name/Age for the other kinds.
 */
import type { ResourceDef } from './resources';
import type { Obj } from './store';

interface Column {
  name: string;
  type: string;
  format?: string;
  priority?: number;
  description: string;
  cell(obj: Obj): string | number;
}

export function wantsTable(accept: string): boolean {
  return accept.split(',').some((part) => /(^|;)\s*as=Table\b/.test(part) && /g=meta\.k8s\.io/.test(part));
}

export function humanAge(from: string | undefined, now = Date.now()): string {
  if (!from) return '<unknown>';
  const seconds = Math.floor((now - Date.parse(from)) / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (days < 730) return `${days}d`;
  return `${Math.floor(days / 365)}y`;
}

const name: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', cell: (o) => o.metadata?.name ?? '' };
const age: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', cell: (o) => humanAge(o.metadata?.creationTimestamp) };

function podStatus(pod: Obj): string {
  let reason: string = pod.status?.reason ?? pod.status?.phase ?? 'Pending';
  for (const cs of (pod.status?.containerStatuses ?? []) as Obj[]) {
    const waiting = cs.state?.waiting?.reason;
    const terminated = cs.state?.terminated;
    if (waiting) reason = waiting;
    else if (terminated?.reason) reason = terminated.reason;
    else if (terminated) reason = terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode}`;
  }
  if (pod.metadata?.deletionTimestamp) reason = pod.status?.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return reason;
}

const POD_COLUMNS: Column[] = [
  name,
  { name: 'Ready', type: 'string', description: 'The aggregate readiness state of this pod for accepting traffic.', cell: (p) => `${((p.status?.containerStatuses ?? []) as Obj[]).filter((c) => c.ready).length}/${(p.spec?.containers ?? []).length}` },
  { name: 'Status', type: 'string', description: 'The aggregate status of the containers in this pod.', cell: podStatus },
  { name: 'Restarts', type: 'string', description: 'The number of times the containers in this pod have been restarted.', cell: (p) => String(((p.status?.containerStatuses ?? []) as Obj[]).reduce((n, c) => n + (c.restartCount ?? 0), 0)) },
  age,
  { name: 'IP', type: 'string', priority: 1, description: 'IP address allocated to the pod.', cell: (p) => p.status?.podIP ?? '<none>' },
  { name: 'Node', type: 'string', priority: 1, description: 'Name of the Node to which this pod is assigned.', cell: (p) => p.spec?.nodeName ?? '<none>' },
];

function nodeStatus(node: Obj): string {
  const ready = ((node.status?.conditions ?? []) as Obj[]).find((c) => c.type === 'Ready');
  const parts = [ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown'];
  if (node.spec?.unschedulable) parts.push('SchedulingDisabled');
  return parts.join(',');
}

const NODE_COLUMNS: Column[] = [
  name,
  { name: 'Status', type: 'string', description: 'The status of the node', cell: nodeStatus },
  {
    name: 'Roles', type: 'string', description: 'The roles of the node',
    cell: (n) => Object.keys(n.metadata?.labels ?? {}).filter((l) => l.startsWith('node-role.kubernetes.io/')).map((l) => l.slice('node-role.kubernetes.io/'.length)).sort().join(',') || '<none>',
  },
  age,
  { name: 'Version', type: 'string', description: 'Kubelet Version reported by the node.', cell: (n) => n.status?.nodeInfo?.kubeletVersion ?? '' },
  { name: 'Internal-IP', type: 'string', priority: 1, description: 'List of internal IPs in the node.', cell: (n) => ((n.status?.addresses ?? []) as Obj[]).find((a) => a.type === 'InternalIP')?.address ?? '<none>' },
];

function servicePorts(svc: Obj): string {
  const ports = (svc.spec?.ports ?? []) as Obj[];
  if (!ports.length) return '<none>';
  return ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',');
}

const SERVICE_COLUMNS: Column[] = [
  name,
  { name: 'Type', type: 'string', description: 'The type of the service.', cell: (s) => s.spec?.type ?? 'ClusterIP' },
  { name: 'Cluster-IP', type: 'string', description: 'The cluster IP of the service.', cell: (s) => s.spec?.clusterIP ?? '<none>' },
  {
    name: 'External-IP', type: 'string', description: 'External IPs of the service.',
    cell: (s) => [...(s.spec?.externalIPs ?? []), ...((s.status?.loadBalancer?.ingress ?? []) as Obj[]).map((i) => i.ip ?? i.hostname)].join(',') || (s.spec?.type === 'LoadBalancer' ? '<pending>' : '<none>'),
  },
  { name: 'Port(s)', type: 'string', description: 'The ports of the service.', cell: servicePorts },
  age,
];

const SLICE_COLUMNS: Column[] = [
  name,
  { name: 'AddressType', type: 'string', description: 'Type of address in the slice.', cell: (s) => s.addressType ?? '' },
  { name: 'Ports', type: 'string', description: 'Ports of the slice.', cell: (s) => ((s.ports ?? []) as Obj[]).map((p) => String(p.port ?? '')).join(',') || '<unset>' },
  {
    name: 'Endpoints', type: 'string', description: 'Addresses of the endpoints.',
    cell: (s) => ((s.endpoints ?? []) as Obj[]).flatMap((e) => (e.addresses ?? []) as string[]).slice(0, 3).join(',') || '<unset>',
  },
  age,
];

function columnsFor(def: ResourceDef): Column[] {
  switch (def.kind) {
    case 'Pod':
      return POD_COLUMNS;
    case 'Node':
      return NODE_COLUMNS;
    case 'Service':
      return SERVICE_COLUMNS;
    case 'EndpointSlice':
      return SLICE_COLUMNS;
    default:
      return [name, age];
  }
}

export function tableFor(def: ResourceDef, items: Obj[], includeObject: string | null, resourceVersion: string | undefined): Obj {
  const columns = columnsFor(def);
  const mode = includeObject ?? 'Metadata';
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns.map(({ cell: _c, ...col }) => ({ format: '', priority: 0, ...col })),
    rows: items.map((obj) => {
      const row: Obj = { cells: columns.map((c) => c.cell(obj)) };
      if (mode === 'Object') row.object = obj;
      else if (mode !== 'None') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
      return row;
    }),
  };
}
