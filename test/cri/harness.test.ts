/**
 * The harness pieces the CRI tests stand on: network namespaces with veth pairs, and the test
 * image builder (a valid, reproducible OCI archive; a pause process that exits on SIGTERM).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { buildOciArchive, buildTestImages, BUSYBOX_BINARY, BUSYBOX_IMAGE, PAUSE_IMAGE, TEST_IMAGES } from '../harness/images';
import { addRoute, addVethPair, cleanupNetns, createNetns, createdNetns, deleteNetns, execIn, netnsPath, spawnIn, uniqueIfname } from '../harness/netns';
import { integrationTest } from '../harness/requirements';

const test = integrationTest({ root: true, commands: ['ip', 'nsenter', 'busybox', 'tar'] });

test.after.always(async () => {
  await cleanupNetns();
});

test('interface names stay within 15 characters and are unique', (t) => {
  const names = new Set(Array.from({ length: 50 }, () => uniqueIfname('kt')));
  t.is(names.size, 50);
  for (const n of names) t.true(n.length <= 15, n);
});

test('two namespaces joined by a veth pair reach each other, and routes work inside', async (t) => {
  const a = await createNetns();
  const b = await createNetns();
  t.regex(a, new RegExp(`^kt-${process.pid}-\\d+$`));
  const { a: ifA, b: ifB } = await addVethPair({ ns: a, address: '10.251.0.1/30' }, { ns: b, address: '10.251.0.2/30' });
  // The pair never shows up in the host namespace.
  const hostLinks = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  t.false(hostLinks.includes(ifA) || hostLinks.includes(ifB));

  await execIn(a, 'ip', ['addr', 'add', '10.252.0.1/32', 'dev', 'lo']);
  await addRoute(b, '10.252.0.1/32', '10.251.0.1');
  const ping = await execIn(b, 'busybox', ['ping', '-c', '1', '-W', '2', '10.252.0.1']);
  t.regex(ping.stdout, /1 packets received/);

  // spawnIn runs a long-lived process inside the namespace.
  const server = spawnIn(a, 'busybox', ['nc', '-l', '-p', '7777'], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => void server.kill('SIGKILL'));
  let received = '';
  server.stdout!.on('data', (d: Buffer) => (received += d.toString()));
  const exited = new Promise((resolve) => server.once('exit', resolve));
  for (let i = 0; i < 40; i++) {
    try {
      await execIn(b, 'sh', ['-c', 'echo over-veth | busybox nc -w 1 10.251.0.1 7777']);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await exited;
  t.is(received.trim(), 'over-veth');

  await deleteNetns(a);
  t.false(existsSync(netnsPath(a)));
  t.false(createdNetns().includes(a));
});

test('the test image archive is a valid, reproducible OCI layout with both images', async (t) => {
  const archive = await buildTestImages();
  const listing = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).split('\n');
  t.true(listing.includes('oci-layout'));
  t.true(listing.includes('index.json'));
  const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' })) as {
    manifests: { digest: string; annotations: Record<string, string> }[];
  };
  t.deepEqual(index.manifests.map((m) => m.annotations['io.containerd.image.name']).sort(), [BUSYBOX_IMAGE, PAUSE_IMAGE].sort());
  for (const m of index.manifests) t.true(listing.includes(`blobs/sha256/${m.digest.slice(7)}`));

  const busybox = readFileSync(BUSYBOX_BINARY);
  const once = buildOciArchive(busybox, ['sh', 'sleep'], TEST_IMAGES);
  const twice = buildOciArchive(busybox, ['sh', 'sleep'], TEST_IMAGES);
  t.true(once.equals(twice), 'same input, same bytes');
});

test('the pause entrypoint sleeps until SIGTERM and then exits 0', async (t) => {
  const pause = TEST_IMAGES.find((i) => i.ref === PAUSE_IMAGE)!;
  const [, ...args] = pause.entrypoint!; // /bin/sh -c SCRIPT, run with the host's busybox sh
  const child = spawn('busybox', ['sh', ...args], { stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
  await new Promise((r) => setTimeout(r, 300));
  t.is(child.exitCode, null, 'still running');
  const started = Date.now();
  child.kill('SIGTERM');
  t.deepEqual(await exit, [0, null]);
  t.true(Date.now() - started < 1000);
});
