/**
 * agent/kube: the Kubernetes API client and the shared informer cache.
 *
 *   const config = loadKubeconfig('/etc/keelson/kubelet.conf');
 *   const client = createKubeClient(config, { logger, userAgent: 'keelson/0.1.0' });
 *   const informers = createInformerFactory({ client, logger });
 *   const pods = informers.forResource(Resources.pods, { fieldSelector: `spec.nodeName=${nodeName}` });
 *   pods.subscribe({ onAdd, onUpdate, onDelete, onSynced });   // the Feed contract of dns/ and netproxy/
 *   informers.start();
 *   // later, after a certificate rotation wrote new files:
 *   client.setCredentials(reloadClientCertificate(config));
 */
export { createKubeClient } from './client';
export type { KubeClient, KubeClientOptions, ListOptions, ListResult, PatchType, WatchEvent, WatchHandle, WatchOptions } from './client';
export { kubeconfigFromValues, loadKubeconfig, parseKubeconfig, reloadClientCertificate } from './kubeconfig';
export type { InMemoryKubeconfig, KubeConfig, KubeCredentials } from './kubeconfig';
export { Resources, describeObject, resourcePath } from './resources';
export type { KubeObject, ResourceDescriptor } from './resources';
export { ApiStatusError, isAlreadyExists, isApiStatusError, isConflict, isNotFound } from './api-error';
export type { ApiStatus } from './api-error';
export { createInformer, objectKey, stripManagedFields } from './informer';
export type { Feed, Informer, InformerHandler, InformerOptions, InformerSelector } from './informer';
export { createInformerFactory } from './informer-factory';
export type { InformerFactory, InformerFactoryOptions } from './informer-factory';
export { systemClock } from './clock';
export type { Clock } from './clock';
