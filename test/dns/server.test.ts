/**
 * The sockets of the whole component: an IPv6 listen address (::1), the TCP connection limit, the
 * TCP idle timeout, and prefetch of a popular forwarded name through sockets, response cache, cache
 * stage and forwarder.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import test from 'ava';
import { Class, type Message, Rcode, type ResourceRecord, Type } from '../../dns/codec';
import { createDnsComponent } from '../../dns/component';
import type { DnsConfig } from '../../dns/config';
import { integrationTest } from '../harness/requirements';
import { fixtureFeeds } from './fixtures';
import { decode, query, run, silentLogger, testConfig } from './helpers';
import { startUpstream } from './upstream';

const itest = integrationTest({ commands: ['dig'] });

async function start(t: { teardown(fn: () => unknown): void }, over: Partial<DnsConfig>) {
  const dns = createDnsComponent({ input: fixtureFeeds(), config: testConfig(over), logger: silentLogger });
  await dns.start();
  t.teardown(() => dns.stop());
  return { dns, port: dns.endpoints().dns[0]!.port };
}

/** One query over UDP from a fresh socket; resolves with the reply, or undefined after `ms`. */
function askUdp(address: string, port: number, packet: Buffer, ms = 2000): Promise<Message | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => { sock.close(); resolve(undefined); }, ms);
    sock.on('message', (msg) => { clearTimeout(timer); sock.close(); resolve(decode(msg)); });
    sock.send(packet, port, address);
  });
}

interface TcpClient { sock: net.Socket; ask(packet: Buffer, ms?: number): Promise<Message | undefined>; closed: Promise<number> }

/** A TCP connection that frames queries and reads framed replies; `closed` resolves with the time it closed. */
async function connectTcp(address: string, port: number): Promise<TcpClient> {
  const sock = net.connect({ host: address, port });
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.on('error', () => {});
  const closed = new Promise<number>((resolve) => sock.once('close', () => resolve(Date.now())));
  let buf = Buffer.alloc(0);
  const waiting: ((m: Message | undefined) => void)[] = [];
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      waiting.shift()?.(decode(buf.subarray(2, 2 + len)));
      buf = buf.subarray(2 + len);
    }
  });
  void closed.then(() => { for (const w of waiting.splice(0)) w(undefined); });
  return {
    sock, closed,
    ask(packet, ms = 2000) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), ms);
        waiting.push((m) => { clearTimeout(timer); resolve(m); });
        const frame = Buffer.alloc(packet.length + 2);
        frame.writeUInt16BE(packet.length, 0);
        packet.copy(frame, 2);
        if (!sock.destroyed) sock.write(frame);
      });
    },
  };
}

const webQuery = () => query('web.default.svc.cluster.local', Type.A);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

itest('IPv6 listen address ::1 answers over UDP and TCP (dig), and nothing listens on 127.0.0.1', async (t) => {
  const { port } = await start(t, { listen: ['::1'] });
  for (const proto of ['+notcp', '+tcp']) {
    const out = await run('dig', ['@::1', '-p', String(port), '+short', '+tries=1', '+time=2', proto, 'web.default.svc.cluster.local', 'A']);
    t.is(out.trim(), '10.96.0.10', proto);
  }
  const v6 = await run('dig', ['@::1', '-p', String(port), '+short', '+tries=1', '+time=2', 'dual.default.svc.cluster.local', 'AAAA']);
  t.is(v6.trim(), 'fd00::20');
  t.is(await askUdp('127.0.0.1', port, webQuery(), 500), undefined, 'no answer on the IPv4 loopback');
});

test('TCP: connections beyond maxTcpConnections are closed at once; a freed slot is usable again', async (t) => {
  const address = '127.0.31.1';
  const { port } = await start(t, { listen: [address], maxTcpConnections: 2 });
  const first = await connectTcp(address, port);
  const second = await connectTcp(address, port);
  t.teardown(() => { first.sock.destroy(); second.sock.destroy(); });
  t.is((await first.ask(webQuery()))?.answers[0]?.data, '10.96.0.10');
  t.is((await second.ask(webQuery()))?.answers[0]?.data, '10.96.0.10');
  const third = await connectTcp(address, port);
  t.teardown(() => third.sock.destroy());
  t.is(await third.ask(webQuery(), 1000), undefined, 'the connection over the limit gets no answer');
  t.true(await Promise.race([third.closed.then(() => true), sleep(1000).then(() => false)]), 'and is closed by the server');
  // the two admitted connections are undisturbed
  t.is((await first.ask(webQuery()))?.rcode, Rcode.NOERROR);
  first.sock.destroy();
  await first.closed;
  await sleep(50); // the server sees the close
  const fourth = await connectTcp(address, port);
  t.teardown(() => fourth.sock.destroy());
  t.is((await fourth.ask(webQuery()))?.answers[0]?.data, '10.96.0.10', 'a freed slot admits a new connection');
  t.is((await second.ask(webQuery()))?.rcode, Rcode.NOERROR);
});

test('TCP: an idle connection is closed after tcpIdleTimeoutMs; a busy one stays open', async (t) => {
  const address = '127.0.31.2';
  const idleMs = 1000; // 10× the busy connection's pace: robust on a loaded machine
  const { port } = await start(t, { listen: [address], tcpIdleTimeoutMs: idleMs });
  const busy = await connectTcp(address, port);
  const idle = await connectTcp(address, port);
  t.teardown(() => { busy.sock.destroy(); idle.sock.destroy(); });
  const lastActivity = Date.now();
  t.is((await idle.ask(webQuery()))?.rcode, Rcode.NOERROR);
  // the busy connection asks every 100 ms for 1.5 idle periods
  for (let i = 0; i < 15; i++) {
    t.is((await busy.ask(webQuery()))?.rcode, Rcode.NOERROR, `busy query ${i}`);
    await sleep(100);
  }
  const idleClosedAt = await Promise.race([idle.closed, sleep(3000).then(() => 0)]);
  t.true(idleClosedAt > 0, 'the idle connection was closed');
  t.true(idleClosedAt - lastActivity >= idleMs - 20, `not before the timeout (${idleClosedAt - lastActivity} ms)`);
  t.false(busy.sock.destroyed, 'the busy connection is still open');
  t.is((await busy.ask(webQuery()))?.answers[0]?.data, '10.96.0.10');
  const busyClosedAt = await Promise.race([busy.closed, sleep(3000).then(() => 0)]);
  t.true(busyClosedAt > 0, 'once quiet, the busy connection is closed too');
});

test('prefetch through the component: a popular forwarded name is refreshed before it expires', async (t) => {
  const answer = (name: string, ttl: number): ResourceRecord => ({ name, type: Type.A, class: Class.IN, ttl, data: '192.0.2.99' });
  const up = await startUpstream('127.0.31.3', (q) => ({ answers: [answer(q.questions[0]!.name, 4)] }));
  t.teardown(() => up.close());
  const address = '127.0.31.4';
  // hit twice, then refreshed when less than half of its 4 s TTL is left
  const { dns, port } = await start(t, { listen: [address], forward: true, upstreams: [`${up.address}:${up.port}`], prefetchHits: 2, prefetchPercent: 50 });
  const upstreamAsked = () => up.queries.filter((q) => q.name.toLowerCase() === 'pre.example.net').length;
  // Each spelling is a different packet, so the server's response cache does not hide the hits
  // from the cache stage (which folds case).
  const ask = async (spelling: string) => askUdp(address, port, query(spelling, Type.A));
  t.is((await ask('pre.example.net'))?.answers[0]?.data, '192.0.2.99');
  t.is(upstreamAsked(), 1);
  t.is((await ask('Pre.example.net'))?.answers[0]?.data, '192.0.2.99');
  t.is((await ask('pRe.example.net'))?.answers[0]?.data, '192.0.2.99');
  t.is(upstreamAsked(), 1, 'hits are served from the cache');
  await sleep(2300);
  const late = await ask('prE.example.net');
  t.is(late?.answers[0]?.data, '192.0.2.99', 'answered from the cache while it prefetches');
  t.true(late!.answers[0]!.ttl <= 2, `TTL counted down (${late!.answers[0]!.ttl})`);
  for (let i = 0; i < 50 && upstreamAsked() < 2; i++) await sleep(20);
  t.is(upstreamAsked(), 2, 'prefetched once');
  await sleep(2000); // past the first answer's expiry
  const after = await ask('PRE.example.net');
  t.is(after?.rcode, Rcode.NOERROR);
  t.is(after?.answers[0]?.data, '192.0.2.99');
  t.is(upstreamAsked(), 2, 'served from the prefetched entry, no new upstream query');
  const metrics = dns.metrics.render();
  t.regex(metrics, /coredns_cache_prefetch_total\{[^}]*\} 1/);
});
