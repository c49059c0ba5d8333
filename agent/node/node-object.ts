/**
 * The Node object keelson registers and the status it reports: name, default labels
 * (kubernetes.io/hostname, os, arch) plus --node-labels, taints from --register-with-taints,
 * addresses (InternalIP, Hostname), capacity/allocatable, nodeInfo, daemonEndpoints.
 */
import type { Node, NodeAddress, NodeStatus, NodeSystemInfo, Taint } from 'kubernetes-types/core/v1';
import type { SystemInfo } from './host-info';
import type { NodeResources } from './node-resources';

export interface NodeIdentity {
  nodeName: string;
  /** The host's own name for the Hostname address (default: the node name). */
  hostname?: string;
  nodeIP?: string;
  labels: Record<string, string>;
  taints: { key: string; value?: string; effect: string }[];
  kubeletPort: number;
}

/** Labels the kubelet always sets; an existing Node that lacks them gets them on adoption. */
export function defaultLabels(identity: NodeIdentity, system: Pick<SystemInfo, 'architecture' | 'operatingSystem'>): Record<string, string> {
  return {
    'kubernetes.io/hostname': identity.nodeName,
    'kubernetes.io/os': system.operatingSystem,
    'kubernetes.io/arch': system.architecture,
    'beta.kubernetes.io/os': system.operatingSystem,
    'beta.kubernetes.io/arch': system.architecture,
    ...identity.labels,
  };
}

export function nodeAddresses(identity: NodeIdentity): NodeAddress[] {
  const addresses: NodeAddress[] = [];
  if (identity.nodeIP) addresses.push({ type: 'InternalIP', address: identity.nodeIP });
  addresses.push({ type: 'Hostname', address: identity.hostname ?? identity.nodeName });
  return addresses;
}

export function nodeInfo(system: SystemInfo, runtimeVersion: string, kubeletVersion: string): NodeSystemInfo {
  return {
    machineID: system.machineID,
    systemUUID: system.systemUUID,
    bootID: system.bootID,
    kernelVersion: system.kernelVersion,
    osImage: system.osImage,
    containerRuntimeVersion: runtimeVersion,
    kubeletVersion,
    kubeProxyVersion: kubeletVersion,
    operatingSystem: system.operatingSystem,
    architecture: system.architecture,
  };
}

export function registrationTaints(identity: NodeIdentity): Taint[] {
  return identity.taints.map((t) => ({ key: t.key, ...(t.value !== undefined && t.value !== '' ? { value: t.value } : {}), effect: t.effect }));
}

/** The status fields keelson owns (conditions are added by the reporter). */
export function staticStatus(identity: NodeIdentity, system: SystemInfo, resources: NodeResources, runtimeVersion: string, kubeletVersion: string): NodeStatus {
  return {
    capacity: resources.capacity,
    allocatable: resources.allocatable,
    addresses: nodeAddresses(identity),
    nodeInfo: nodeInfo(system, runtimeVersion, kubeletVersion),
    daemonEndpoints: { kubeletEndpoint: { Port: identity.kubeletPort } },
  };
}

export function newNode(identity: NodeIdentity, system: SystemInfo, status: NodeStatus): Node {
  const taints = registrationTaints(identity);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: identity.nodeName, labels: defaultLabels(identity, system) },
    spec: taints.length ? { taints } : {},
    status,
  };
}
