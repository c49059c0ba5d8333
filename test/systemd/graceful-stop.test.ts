/**
 * Graceful stop on SIGTERM (issue 7, item 6): the DNS sockets drain — answers in flight are still
 * sent, new queries are not read — and the drain is bounded, so `systemctl stop` never hangs on it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import test from 'ava';
import pino from 'pino';
import { createDnsServer, type DnsServer } from '../../dns/server';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A server whose answers (the query echoed with a marker byte) take `delayMs`; never, if undefined. */
async function slowServer(delayMs: number | undefined): Promise<{ server: DnsServer; port: number }> {
  const server = createDnsServer({
    addresses: ['127.0.0.1'],
    port: 0,
    logger,
    maxTcpConnections: 8,
    tcpIdleTimeoutMs: 10_000,
    handle: (packet) =>
      new Promise<Buffer>((resolve) => {
        if (delayMs !== undefined) setTimeout(() => resolve(Buffer.concat([packet, Buffer.from([0xee])])), delayMs);
      }),
  });
  await server.start();
  return { server, port: server.bound()[0]!.port };
}

function udpQuery(port: number, ms = 1500): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      resolve(undefined);
    }, ms);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg);
    });
    sock.send(Buffer.alloc(12, 1), port, '127.0.0.1');
  });
}

test('stop() still sends the UDP answers in flight, then reads no new query', async (t) => {
  const { server, port } = await slowServer(300);
  const answer = udpQuery(port);
  await sleep(50);
  const stopped = server.stop();
  const late = udpQuery(port, 600);
  const got = await answer;
  t.truthy(got, 'the answer in flight was sent during the drain');
  t.is(got![12], 0xee);
  t.is(await late, undefined, 'a query arriving after stop() began is not answered');
  await stopped;
  t.false(server.listening());
});

test('stop() flushes the TCP answer in flight, then closes the connection and the listener', async (t) => {
  const { server, port } = await slowServer(300);
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  let data = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => (data = Buffer.concat([data, c])));
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const frame = Buffer.alloc(14, 2);
  frame.writeUInt16BE(12, 0);
  sock.write(frame);
  await sleep(50);
  await server.stop();
  await closed;
  t.is(data.readUInt16BE(0), 13, 'the framed answer arrived before the close');
  t.is(data[14], 0xee);
  const refused = await new Promise<string>((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve('connected');
    });
    c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.is(refused, 'ECONNREFUSED');
});

test('the drain is bounded: an answer that never comes does not hold stop()', async (t) => {
  const { server, port } = await slowServer(undefined);
  void udpQuery(port, 300);
  await sleep(50);
  const began = Date.now();
  await server.stop({ drainMs: 150 });
  const took = Date.now() - began;
  t.true(took >= 140 && took < 1000, `stop took ${took} ms`);
});
