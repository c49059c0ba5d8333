/** Protocol behaviour: errors, EDNS, truncation, TCP pipelining, over the packet handler and real sockets. */
import net from 'node:net';
import dgram from 'node:dgram';
import test from 'ava';
import { Class, decodeMessage, encodeMessage, type Message, Rcode, Type } from '../../dns/codec';
import { createDnsComponent } from '../../dns/component';
import { ep, fixtureFeeds, headless, slice } from './fixtures';
import { decode, query, silentLogger, testConfig } from './helpers';

const feeds = fixtureFeeds();
// A headless service with 100 ready endpoints: its answer exceeds 512 and 1232 bytes.
feeds.services.upsert(headless('default', 'many', [{ name: 'http', port: 80 }]));
feeds.endpointSlices.upsert(slice('default', 'many', 'a', Array.from({ length: 100 }, (_, i) => ep(`10.250.${i >> 8}.${i & 255}`)), [{ name: 'http', port: 80 }]));
const LISTEN = '127.0.30.1';
const dns = createDnsComponent({ input: feeds, config: testConfig({ listen: [LISTEN] }), logger: silentLogger });
test.before(() => dns.start());
test.after.always(() => dns.stop());

const handle = async (buf: Uint8Array, proto: 'udp' | 'tcp' = 'udp') => dns.handlePacket(buf, proto);
function raw(msg: Partial<Message>): Buffer {
  return encodeMessage({ id: 7, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0, questions: [], answers: [], authorities: [], additionals: [], ...msg });
}
const q = (name: string, type: number = Type.A, klass: number = Class.IN) => ({ name, type, class: klass });

test('FORMERR for two questions and for a question cut short; ID echoed', async (t) => {
  const two = decode(await handle(raw({ questions: [q('a.cluster.local'), q('b.cluster.local')] })));
  t.is(two.rcode, Rcode.FORMERR);
  t.is(two.id, 7);
  const cut = query('web.default.svc.cluster.local', Type.A).subarray(0, 25);
  const res = decode(await handle(cut));
  t.is(res.rcode, Rcode.FORMERR);
  t.is(res.id, 4242);
  const none = decode(await handle(raw({})));
  t.is(none.rcode, Rcode.FORMERR);
});

test('NOTIMP for other opcodes, REFUSED for other classes and zone transfers, BADVERS for EDNS version 1', async (t) => {
  t.is(decode(await handle(raw({ opcode: 4, questions: [q('cluster.local', Type.SOA)] }))).rcode, Rcode.NOTIMP);
  t.is(decode(await handle(raw({ opcode: 2, questions: [q('cluster.local')] }))).rcode, Rcode.NOTIMP);
  t.is(decode(await handle(raw({ questions: [q('version.bind', Type.TXT, Class.CH)] }))).rcode, Rcode.REFUSED);
  t.is(decode(await handle(raw({ questions: [q('cluster.local', Type.AXFR)] }))).rcode, Rcode.REFUSED);
  const bad = decode(await handle(raw({ questions: [q('cluster.local')], edns: { udpSize: 1232, version: 1, dnssecOk: false, options: new Uint8Array(0) } })));
  t.is(bad.rcode, Rcode.BADVERS);
  t.truthy(bad.edns);
});

test('responses and runts are dropped, not answered', async (t) => {
  t.is(await handle(raw({ qr: true, questions: [q('cluster.local')] })), undefined);
  t.is(await handle(Buffer.from([1, 2, 3])), undefined);
  t.is(await handle(Buffer.alloc(0)), undefined);
});

test('EDNS: OPT echoed with our buffer size; answers truncated with TC to the client size; TCP gets all', async (t) => {
  const name = 'many.default.svc.cluster.local';
  const plain = await handle(query(name, Type.A));
  t.true(plain!.length <= 512);
  const p = decode(plain);
  t.true(p.tc);
  t.is(p.edns, undefined);
  t.true(p.answers.length > 0 && p.answers.length < 100);
  const edns = await handle(query(name, Type.A, { edns: 4096 }));
  t.true(edns!.length <= 1232, 'capped at our EDNS buffer size');
  const e = decode(edns);
  t.true(e.tc);
  t.is(e.edns?.udpSize, 1232);
  const tcp = decode(await handle(query(name, Type.A), 'tcp'));
  t.false(tcp.tc);
  t.is(tcp.answers.length, 100);
});

test('names are compressed on output', async (t) => {
  const buf = await handle(query('headless.default.svc.cluster.local', Type.SRV), 'tcp');
  const m = decode(buf);
  t.is(m.answers.length, 3);
  // 3 SRV + 3 A additional records with names spelled out would be far larger
  t.true(buf!.length < 330, `${buf!.length} bytes`);
});

test('UDP socket answers and survives garbage between queries', async (t) => {
  const port = dns.endpoints().dns[0]!.port;
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  const replies: Buffer[] = [];
  sock.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  sock.send(Buffer.from('garbage'), port, LISTEN);
  sock.send(Buffer.alloc(600, 0xc0), port, LISTEN);
  sock.send(query('web.default.svc.cluster.local', Type.A, { id: 99 }), port, LISTEN);
  for (let i = 0; i < 50 && !replies.some((r) => r.readUInt16BE(0) === 99); i++) await new Promise((r) => setTimeout(r, 10));
  const ok = replies.map((r) => decodeMessage(r)).find((d) => d.ok && d.message.id === 99);
  t.truthy(ok);
  t.is(ok!.ok && ok!.message.answers[0]?.data, '10.96.0.10');
});

test('TCP: several pipelined queries on one connection, each answered', async (t) => {
  const port = dns.endpoints().dns[0]!.port;
  const conn = net.connect({ host: LISTEN, port });
  t.teardown(() => conn.destroy());
  await new Promise<void>((r) => conn.once('connect', () => r()));
  const names = ['web', 'dual', 'api.other', 'nothere', 'headless', 'web', 'ext-internal', 'v6only', 'nodeport', 'no-slices'];
  const frames = names.map((n, i) => {
    const m = query(`${n.includes('.') ? n : n + '.default'}.svc.cluster.local`, Type.A, { id: 1000 + i });
    const f = Buffer.alloc(m.length + 2);
    f.writeUInt16BE(m.length, 0);
    m.copy(f, 2);
    return f;
  });
  // one write with all frames, the last one split in two writes
  const all = Buffer.concat(frames);
  conn.write(all.subarray(0, all.length - 5));
  conn.write(all.subarray(all.length - 5));
  const got = new Map<number, Message>();
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout')), 3000);
    conn.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        got.set(m.id, m);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (got.size === names.length) { clearTimeout(timer); resolve(); }
    });
  });
  t.is(got.size, names.length);
  t.is(got.get(1000)!.answers[0]?.data, '10.96.0.10');
  t.is(got.get(1003)!.rcode, Rcode.NXDOMAIN);
  t.is(got.get(1002)!.answers[0]?.data, '10.96.1.1');
});
