import test from 'ava';
import type { ConfigMap, Pod } from 'kubernetes-types/core/v1';
import { createInformerFactory, informerKey } from '../../agent/kube/informer-factory';
import { Resources } from '../../agent/kube/resources';
import { createLogger } from '../../agent/log';
import { createFakeClock } from './fake-clock';
import { createScriptedClient } from './fake-client';

test('the same resource and selector share one informer; different selectors do not', (t) => {
  const fake = createScriptedClient<Pod>();
  const factory = createInformerFactory({ client: fake.client, logger: createLogger({ level: 'silent', format: 'json' }), clock: createFakeClock() });
  const a = factory.forResource(Resources.pods, { fieldSelector: 'spec.nodeName=n1' });
  const b = factory.forResource(Resources.pods, { fieldSelector: 'spec.nodeName=n1' });
  const c = factory.forResource(Resources.pods, { fieldSelector: 'spec.nodeName=n2' });
  const d = factory.forResource(Resources.pods);
  const e = factory.forResource(Resources.configmaps);
  t.is(a, b);
  t.not(a, c);
  t.not(a, d);
  t.not(d as unknown, e as unknown);
  t.is(factory.informers().length, 4);
  // a namespace on a cluster-scoped resource is meaningless and does not split the cache
  t.is(informerKey(Resources.nodes, { namespace: 'x' }), informerKey(Resources.nodes));
});

test('informers made after start() start at once and all report health', async (t) => {
  const fake = createScriptedClient<ConfigMap>();
  const factory = createInformerFactory({ client: fake.client, logger: createLogger({ level: 'silent', format: 'json' }), clock: createFakeClock() });
  fake.lists.push({ items: [], metadata: { resourceVersion: '1' } });
  fake.lists.push({ items: [], metadata: { resourceVersion: '2' } });
  factory.forResource(Resources.configmaps);
  factory.start();
  factory.forResource(Resources.secrets as never);
  await factory.waitForSync();
  t.deepEqual(
    factory.health().map((h) => [h.name, h.healthy]),
    [
      ['configmaps', true],
      ['secrets', true],
    ],
  );
  await factory.stop();
});
