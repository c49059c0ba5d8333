export { createKubelet, createStaticPodsComponent, type KubeletComponent, type KubeletConfig, type KubeletOptions } from './kubelet';
export type { PodStatusSnapshot, ContainerStatusSnapshot } from './status-manager';
export type { ManifestProblem, PodSource } from './pod-source';
export { recordEvent, containerFieldPath, type EventType } from './events';
