/**
 * Fuzzing: ≥ 1 million random and mutated packets. Most go straight into the packet handler the
 * sockets use (fast), a good share over the real UDP socket; every reply must decode, echo the ID
 * and fit the client's size, and the server must keep answering valid queries during and after.
 */
import dgram from 'node:dgram';
import test from 'ava';
import { decodeMessage, type Message, Type } from '../../dns/codec';
import { createDnsComponent } from '../../dns/component';
import { CASES } from './conformance-cases';
import { fixtureFeeds } from './fixtures';
import { query, silentLogger, testConfig } from './helpers';

const IN_PROCESS = 860_000;
const OVER_UDP = 150_000;
const LISTEN = '127.0.50.1';
const SEED = Number(process.env.DNS_FUZZ_SEED ?? Date.now() % 1e9);

function xorshift(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}
type Rand = (() => number) & { fill(buf: Buffer): void };
function rng(seed: number): Rand {
  const next = xorshift(seed);
  const rand = (() => next() / 4294967296) as Rand;
  rand.fill = (buf) => {
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(next(), i);
    for (; i < buf.length; i++) buf[i] = next() & 0xff;
  };
  return rand;
}

const dns = createDnsComponent({ input: fixtureFeeds(), config: testConfig({ listen: [LISTEN] }), logger: silentLogger });
test.before(() => dns.start());
test.after.always(() => dns.stop());

async function corpus(): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const c of CASES) {
    const type = Type[c.type as keyof typeof Type];
    out.push(query(c.name, type), query(c.name, type, { edns: 4096 }));
    const res = await dns.handlePacket(query(c.name, type, { edns: 1232 }), 'tcp');
    if (res) out.push(res); // replies carry compression pointers and records of every kind
  }
  return out;
}

function mutate(base: Buffer, rand: Rand): Buffer {
  const r = rand();
  let p = Buffer.from(base);
  const n = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(rand() * Math.max(p.length, 1));
    const op = Math.floor(rand() * 8);
    if (op <= 2 && p.length) p[i] = Math.floor(rand() * 256);
    else if (op === 3 && p.length) p[i] = p[i]! ^ (1 << Math.floor(rand() * 8));
    else if (op === 4) p = p.subarray(0, Math.floor(rand() * p.length));
    else if (op === 5) { const extra = Buffer.allocUnsafe(Math.floor(rand() * 40)); rand.fill(extra); p = Buffer.concat([p, extra]); }
    else if (op === 6 && p.length > 13) { p[12 + Math.floor(rand() * (p.length - 13))] = 0xc0; } // a compression pointer somewhere
    else if (op === 7 && p.length >= 12) p.writeUInt16BE(Math.floor(rand() * 65536), 4 + 2 * Math.floor(rand() * 4)); // a section count
  }
  // keep it a query most of the time so it reaches the handler
  if (r < 0.8 && p.length > 2) p[2] = p[2]! & 0x7f;
  return p;
}

function randomPacket(rand: Rand): Buffer {
  const len = Math.floor(rand() * 600);
  const p = Buffer.allocUnsafe(len);
  rand.fill(p);
  if (len > 2 && rand() < 0.7) p[2] = p[2]! & 0x07; // QR=0, opcode 0
  return p;
}

/** One decode per reply: it must be well-formed, echo the ID, and fit 512 bytes (1232 with EDNS). */
function checkReply(packet: Buffer, out: Buffer): string | undefined {
  const d = decodeMessage(out);
  if (!d.ok) return `undecodable reply: ${d.reason}`;
  if (d.message.id !== packet.readUInt16BE(0)) return 'ID not echoed';
  if (!d.message.qr) return 'QR not set';
  const limit = d.message.edns ? 1232 : 512;
  if (out.length > limit) return `reply of ${out.length} bytes over ${limit}`;
  return undefined;
}

test.serial(`${IN_PROCESS} random and mutated packets through the in-process handler (seed ${SEED})`, async (t) => {
  const rand = rng(SEED);
  const seeds = await corpus();
  let replies = 0;
  const failures: string[] = [];
  for (let i = 0; i < IN_PROCESS; i++) {
    const packet = rand() < 0.35 ? randomPacket(rand) : mutate(seeds[Math.floor(rand() * seeds.length)]!, rand);
    let out = dns.handlePacket(packet, 'udp');
    if (out instanceof Promise) out = await out;
    if (!out) continue;
    replies++;
    const problem = checkReply(packet, out);
    if (problem && failures.length < 5) failures.push(`${problem}: ${packet.toString('hex')}`);
  }
  t.deepEqual(failures, []);
  t.true(replies > IN_PROCESS / 4, `${replies} replies`);
  const ok = decodeMessage((await dns.handlePacket(query('web.default.svc.cluster.local', Type.A), 'udp'))!);
  t.true(ok.ok && ok.message.answers[0]?.data === '10.96.0.10');
});

test.serial(`${OVER_UDP} random and mutated packets over the UDP socket; valid queries answered during and after`, async (t) => {
  const rand = rng(SEED + 1);
  const seeds = await corpus();
  const port = dns.endpoints().dns[0]!.port;
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const waiting = new Map<number, (m: Message) => void>();
  sock.on('message', (m) => {
    const d = decodeMessage(m);
    if (d.ok) waiting.get(d.message.id)?.(d.message);
  });
  const probe = (id: number) =>
    new Promise<Message | undefined>((resolve) => {
      const timer = setTimeout(() => { waiting.delete(id); resolve(undefined); }, 1000);
      waiting.set(id, (m) => { clearTimeout(timer); waiting.delete(id); resolve(m); });
      sock.send(query('headless.default.svc.cluster.local', Type.A, { id }), port, LISTEN);
    });
  const BATCH = 300;
  let answered = 0;
  let probes = 0;
  for (let sent = 0; sent < OVER_UDP; sent += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      const packet = rand() < 0.35 ? randomPacket(rand) : mutate(seeds[Math.floor(rand() * seeds.length)]!, rand);
      if (packet.length >= 2) packet.writeUInt16BE(0xfff0 & packet.readUInt16BE(0), 0); // keep probe IDs (1..15) unique
      sock.send(packet, port, LISTEN);
    }
    probes++;
    const id = 1 + (probes % 15);
    const m = await probe(id);
    if (m && m.answers.length === 3) answered++;
  }
  t.true(answered >= probes * 0.95, `valid queries answered during the fuzzing: ${answered}/${probes}`);
  const after = await probe(1);
  t.is(after?.answers.length, 3, 'still answering after');
  t.true(dns.health().healthy);
});
