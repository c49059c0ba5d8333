/**
 * Pod network out of the box in cluster mode: when this node's Node object gets a pod CIDR
 * (spec.podCIDRs, assigned by the controller manager after registration) and the runtime has no
 * CNI config, write the kubenet-style bridge config for it (cni-config.ts). Never overwrites one.
 */
import type { Node } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import { ensureCniConfig, type EnsureCniConfigOptions } from './cni-config';

interface NodeFeed {
  subscribe(handler: { onAdd(obj: Node): void; onUpdate(oldObj: Node, newObj: Node): void; onDelete(obj: Node): void }): () => void;
}

export interface NodePodCidrOptions extends Pick<EnsureCniConfigOptions, 'runtime' | 'confDir'> {
  nodes: NodeFeed;
  nodeName: string;
  logger: Logger;
}

export function podCidrOf(node: Node): string | undefined {
  const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  return cidrs.length ? cidrs.join(',') : undefined;
}

/** Subscribes to the node's own Node; returns the unsubscribe. Resolves `settled()` after each attempt (tests). */
export function watchNodePodCidr(options: NodePodCidrOptions): { stop(): void; settled(): Promise<void> } {
  let tried: string | undefined;
  let chain: Promise<void> = Promise.resolve();
  const consider = (node: Node) => {
    if (node.metadata?.name !== options.nodeName) return;
    const podCIDR = podCidrOf(node);
    if (!podCIDR || podCIDR === tried) return;
    tried = podCIDR;
    chain = chain.then(async () => {
      const outcome = await ensureCniConfig({ podCIDR, runtime: options.runtime, logger: options.logger, ...(options.confDir ? { confDir: options.confDir } : {}) }).catch((err: unknown) => {
        options.logger.error({ err, podCIDR }, 'cannot write the CNI config for the node pod CIDR');
        return 'failed';
      });
      if (outcome === 'written') options.logger.info({ podCIDR, node: options.nodeName }, 'wrote a bridge CNI config for the node pod CIDR');
    });
  };
  const unsubscribe = options.nodes.subscribe({ onAdd: consider, onUpdate: (_old, node) => consider(node), onDelete: () => {} });
  return { stop: unsubscribe, settled: () => chain };
}
