/**
 * Ready follows the real container runtime: a private containerd is stopped and started again
 * while the node component reports to the test apiserver with a short status period.
 */
import os from 'node:os';
import { createCriClient, type CriClient } from '../../cri/client';
import { createKubeClient, type KubeClient } from '../../agent/kube/client';
import { loadKubeconfig } from '../../agent/kube/kubeconfig';
import { createNodeComponent, type NodeComponent } from '../../agent/node';
import { startTestApiserver, type TestApiserver } from '../harness/apiserver';
import { startContainerd, type ContainerdNode } from '../harness/containerd';
import { waitFor } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';
import { captureLogger } from './helpers';

const test = integrationTest({ root: true, commands: ['containerd', 'containerd-shim-runc-v2', 'runc', 'nsenter', 'ip'] });

const STATUS_PERIOD_MS = 500;
let api: TestApiserver;
let ctrd: ContainerdNode;
let cri: CriClient;
let client: KubeClient;
let node: NodeComponent;

test.before(async () => {
  api = await startTestApiserver();
  ctrd = await startContainerd({ podSubnet: '10.88.41.0/24', importImages: false });
  cri = createCriClient({ endpoint: ctrd.endpoint, timeoutMs: 2000 });
  client = createKubeClient(loadKubeconfig(await api.writeKubeconfig({ user: 'system:node:edge-rt', groups: ['system:nodes'] })), { logger: captureLogger('silent').logger });
});
test.afterEach.always((t) => {
  if (!t.passed) ctrd?.markFailed();
});
test.after.always(async () => {
  await node?.stop();
  client?.close();
  cri?.close();
  await ctrd?.stop();
  await api?.stop();
});

const ready = () => api.store.get('Node', undefined, 'edge-rt')?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');

test.serial('stopping containerd turns Ready false with the runtime reason within one status period; starting it turns Ready true', async (t) => {
  node = createNodeComponent({
    client,
    cri,
    logger: captureLogger('warn').logger,
    config: { nodeName: 'edge-rt', statusUpdateFrequencyMs: STATUS_PERIOD_MS, leaseRenewIntervalMs: 1000, rootDir: os.tmpdir() },
  });
  await node.start();
  await waitFor('Ready=True', async () => ready()?.status === 'True', 15_000, 50);
  const version = await cri.version();
  t.is(api.store.get('Node', undefined, 'edge-rt')!.status.nodeInfo.containerRuntimeVersion, `${version.runtime_name}://${version.runtime_version}`);

  await ctrd.kill();
  const stoppedAt = Date.now();
  await waitFor('Ready=False', async () => ready()?.status === 'False', 10_000, 20);
  const took = Date.now() - stoppedAt;
  t.true(took <= STATUS_PERIOD_MS + 2000, `Ready=False after ${took} ms (period ${STATUS_PERIOD_MS} ms + CRI deadline)`);
  t.is(ready().reason, 'KubeletNotReady');
  t.regex(ready().message, /^container runtime is down: /);
  t.false(node.health().message!.includes('Ready=True'));

  await ctrd.restart();
  const restartedAt = Date.now();
  await waitFor('Ready=True again', async () => ready()?.status === 'True', 15_000, 20);
  t.true(Date.now() - restartedAt <= STATUS_PERIOD_MS + 2000, `Ready=True ${Date.now() - restartedAt} ms after containerd was back`);
  t.is(ready().reason, 'KubeletReady');
});
