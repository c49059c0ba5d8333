/**
 * Requests per minute of the node component at steady state (issue 3): registration, Lease
 * heartbeat and status reporting with the default periods (lease renew 10 s, status computed every
 * 10 s, sent when changed or every 5 min), against the test apiserver, counted from its request log.
 * Target: ≤ 7 per minute, all of them Lease renewals. The runtime is a stub that always answers
 * ready: what is counted is the apiserver traffic, which does not depend on it.
 *
 *   node dist/bench/node/requests.js [WINDOW_SECONDS=60] [WARMUP_SECONDS=15]
 */
import os from 'node:os';
import pino from 'pino';
import { createKubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { createNodeComponent, type NodeComponentOptions } from '../../agent/node';
import { startTestApiserver } from '../../test/harness/apiserver';

async function main(): Promise<void> {
  const windowSeconds = Number(process.argv[2] ?? 60);
  const warmupSeconds = Number(process.argv[3] ?? 15);
  const api = await startTestApiserver();
  const client = createKubeClient(loadKubeconfig(await api.writeKubeconfig({ user: 'system:node:bench-node', groups: ['system:nodes'] })), {
    logger: pino({ level: 'silent' }),
  });
  const cri = {
    version: async () => ({ version: '0.1.0', runtime_name: 'containerd', runtime_version: '1.6.20', runtime_api_version: 'v1' }),
    status: async () => ({ status: { conditions: [{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: true, reason: '', message: '' }] } }),
  };
  const node = createNodeComponent({ client, cri: cri as unknown as NodeComponentOptions['cri'], logger: pino({ level: 'warn' }), config: { nodeName: 'bench-node', rootDir: os.tmpdir() } });
  await node.start();
  await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
  api.clearRequestLog();
  const started = Date.now();
  await new Promise((r) => setTimeout(r, windowSeconds * 1000));
  const log = api.requestLog().filter((r) => r.time >= started);
  const elapsedMin = (Date.now() - started) / 60_000;
  const byKind = new Map<string, number>();
  for (const r of log) {
    const key = `${r.method} ${r.path}${r.watch ? ' (watch)' : ''}`;
    byKind.set(key, (byKind.get(key) ?? 0) + 1);
  }
  const leaseRenewals = log.filter((r) => r.method === 'PUT' && r.path === '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/bench-node').length;
  console.log(`node component, steady state, ${windowSeconds}s window after ${warmupSeconds}s warm-up (Node.js ${process.version})`);
  for (const [k, n] of [...byKind].sort()) console.log(`  ${String(n).padStart(4)}  ${k}`);
  console.log(`requests/min: ${(log.length / elapsedMin).toFixed(2)} (target <= 7), of which lease renewals: ${(leaseRenewals / elapsedMin).toFixed(2)}`);
  console.log(`node health: ${JSON.stringify(node.health().message)}`);
  await node.stop();
  client.close();
  await api.stop();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
