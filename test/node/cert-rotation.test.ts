import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { writeClientCertificate, writeNodeKubeconfig } from '../../agent/join/credentials';
import { createKubeClient } from '../../agent/kube/client';
import { createInformerFactory } from '../../agent/kube/informer-factory';
import { loadKubeconfig, type KubeCredentials } from '../../agent/kube/kubeconfig';
import { Resources } from '../../agent/kube/resources';
import { createCertificateRotation, readCertificate, rotationDeadline } from '../../agent/node/cert-rotation';
import { startTestApiserver } from '../harness/apiserver';
import { waitFor } from '../harness/keelson';
import { createFakeClock } from '../kube/fake-clock';
import { captureLogger } from './helpers';

test('the rotation deadline falls between 70 % and 90 % of the certificate life', (t) => {
  const cert = { validFrom: 'Jan  1 00:00:00 2025 GMT', validTo: 'Jan 11 00:00:00 2025 GMT' } as X509Certificate;
  const from = Date.parse(cert.validFrom);
  const life = 10 * 86400_000;
  t.is(rotationDeadline(cert, 0), from + life * 0.7);
  t.is(rotationDeadline(cert, 0.5), from + life * 0.8);
  t.true(rotationDeadline(cert, 0.999999) < from + life * 0.9);
});

test.serial('rotates the client certificate at its deadline and swaps credentials without dropping the informer watch', async (t) => {
  const api = await startTestApiserver({ autoApproveCsrs: true });
  const dir = mkdtempSync(join(tmpdir(), 'keelson-rot-'));
  t.teardown(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const first = await api.pki.issueClientCert('system:node:edge-rot', ['system:nodes'], { seconds: 3600 });
  const certPath = writeClientCertificate(dir, first.certPem, first.keyPem);
  const kubeconfigPath = join(dir, 'kubelet.conf');
  writeNodeKubeconfig(kubeconfigPath, { server: api.url, caPem: api.caPem, nodeName: 'edge-rot', clientCertPath: certPath });
  const { logger, records } = captureLogger('info');
  const client = createKubeClient(loadKubeconfig(kubeconfigPath), { logger });
  t.teardown(() => client.close());

  const informers = createInformerFactory({ client, logger });
  const namespaces = informers.forResource(Resources.namespaces);
  informers.start();
  t.teardown(() => informers.stop());
  await informers.waitForSync();

  const swapped: KubeCredentials[] = [];
  const clock = createFakeClock({ start: Date.now(), random: () => 0.5 });
  const rotation = createCertificateRotation({
    client,
    nodeName: 'edge-rot',
    certPath,
    clock,
    logger,
    pollIntervalMs: 50,
    onRotated(credentials) {
      swapped.push(credentials);
      client.setCredentials(credentials);
    },
  });
  rotation.start();
  t.teardown(() => rotation.stop());
  const planned = rotation.nextRotation()!;
  const old = readCertificate(certPath);
  const life = Date.parse(old.validTo) - Date.parse(old.validFrom);
  t.is(planned, Date.parse(old.validFrom) + life * 0.8);

  api.clearRequestLog();
  await clock.advance(planned - clock.now() - 1000);
  t.is(swapped.length, 0, 'nothing before the deadline');
  await clock.advance(1000);
  await waitFor('rotation', async () => swapped.length === 1, 15_000, 20);

  const fresh = readCertificate(certPath);
  t.not(fresh.serialNumber, old.serialNumber);
  t.regex(fresh.subject, /CN=system:node:edge-rot/);
  t.true(fresh.checkPrivateKey(require('node:crypto').createPrivateKey(readFileSync(certPath))));
  t.is(statSync(certPath).mode & 0o777, 0o600);
  t.deepEqual(swapped[0]!.clientCertificate!.toString().trim(), fresh.toString().trim());
  const csrs = api.requestLog().filter((r) => r.method === 'POST' && r.path === '/apis/certificates.k8s.io/v1/certificatesigningrequests');
  t.is(csrs.length, 1);
  t.is(csrs[0]!.user, 'system:node:edge-rot', 'the request is made with the current node certificate');
  t.truthy(records.find((r) => r.msg === 'client certificate rotated'));
  t.true(rotation.nextRotation()! > planned, 'the next rotation is planned from the new certificate');

  // The shared informer kept its watch: a change after the swap arrives without a relist.
  api.clearRequestLog();
  await client.get(Resources.namespaces, 'default');
  api.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'after-rotation' } });
  await waitFor('event after rotation', async () => namespaces.get(undefined, 'after-rotation'), 5000, 20);
  t.is(api.requestLog().filter((r) => r.path === '/api/v1/namespaces' && !r.watch).length, 0, 'no relist');
  t.true(namespaces.health().healthy);
});
