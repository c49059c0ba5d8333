/** Cluster mode: the CNI config follows the Node's pod CIDR once it is assigned, and never overwrites. */
import test from 'ava';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Node } from 'kubernetes-types/core/v1';
import { createFakeClock } from '../../agent/pods/fake-clock';
import { createFakeRuntime } from '../../agent/pods/fake-runtime';
import { KEELSON_CNI_FILE } from '../../agent/pods/cni-config';
import { podCidrOf, watchNodePodCidr } from '../../agent/pods/node-pod-cidr';
import { createMemoryFeed } from '../harness/feed';

const logger = pino({ level: 'silent' });

async function confDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keelson-podcidr-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'net.d');
}

const node = (name: string, spec: Node['spec'] = {}): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec });

test('the pod CIDR of a Node: podCIDRs joined, else podCIDR', (t) => {
  t.is(podCidrOf(node('a', { podCIDR: '10.244.1.0/24' })), '10.244.1.0/24');
  t.is(podCidrOf(node('a', { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'] })), '10.244.1.0/24,fd00:1::/64');
  t.is(podCidrOf(node('a')), undefined);
});

test('a config is written when this node gets its pod CIDR, not for other nodes, and never over an existing one', async (t) => {
  const dir = await confDir(t);
  const nodes = createMemoryFeed<Node>([node('edge-1'), node('other', { podCIDR: '10.244.9.0/24' })]);
  const watcher = watchNodePodCidr({ nodes, nodeName: 'edge-1', runtime: createFakeRuntime(createFakeClock()), confDir: dir, logger });
  t.teardown(() => watcher.stop());
  await watcher.settled();
  t.deepEqual(await readdir(dir).catch(() => []), [], 'nothing before edge-1 has a pod CIDR');

  nodes.upsert(node('edge-1', { podCIDR: '10.244.3.0/24' }));
  await watcher.settled();
  const conf = JSON.parse(await readFile(path.join(dir, KEELSON_CNI_FILE), 'utf8'));
  t.deepEqual(conf.plugins[0].ipam.ranges, [[{ subnet: '10.244.3.0/24' }]]);

  const other = await confDir(t);
  await mkdir(other, { recursive: true });
  await writeFile(path.join(other, '10-calico.conflist'), '{}');
  const nodes2 = createMemoryFeed<Node>([node('edge-1', { podCIDR: '10.244.3.0/24' })]);
  const w2 = watchNodePodCidr({ nodes: nodes2, nodeName: 'edge-1', runtime: createFakeRuntime(createFakeClock()), confDir: other, logger });
  t.teardown(() => w2.stop());
  await w2.settled();
  t.deepEqual(await readdir(other), ['10-calico.conflist'], 'an existing CNI config is left alone');
});
