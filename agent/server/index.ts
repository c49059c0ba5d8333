export { createKubeletServer, type KubeletServer, type KubeletServerOptions } from './kubelet-server';
export { createHealthzServer, type HealthzServer } from './healthz';
export { createApiReviewer, type ApiReviewer, type UserInfo } from './auth';
export type { KubeletApiSource } from './source';
export type { StreamDialer } from './streaming';
