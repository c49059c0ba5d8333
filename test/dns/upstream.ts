/** A tiny upstream DNS server for the tests, on a 127.0.0.x address, built on keelson's codec. */
import dgram from 'node:dgram';
import net from 'node:net';
import { decodeMessage, encodeMessage, type Message } from '../../dns/codec';

export interface TestUpstream {
  address: string;
  port: number;
  queries: { name: string; type: number; proto: 'udp' | 'tcp' }[];
  /** Stop answering (simulates a dead upstream) or resume. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

/** `answer` returns the reply (id/question filled in), or undefined to drop the query. */
export async function startUpstream(address: string, answer: (q: Message, proto: 'udp' | 'tcp') => Partial<Message> | undefined, port = 0): Promise<TestUpstream> {
  const queries: TestUpstream['queries'] = [];
  let down = false;
  const respond = (buf: Buffer, proto: 'udp' | 'tcp'): Buffer | undefined => {
    if (down) return undefined;
    const d = decodeMessage(buf);
    if (!d.ok) return undefined;
    const q = d.message;
    queries.push({ name: q.questions[0]?.name ?? '', type: q.questions[0]?.type ?? 0, proto });
    const a = answer(q, proto);
    if (!a) return undefined;
    const msg: Message = { id: q.id, qr: true, opcode: 0, aa: false, tc: false, rd: q.rd, ra: true, ad: false, cd: false, rcode: 0, questions: q.questions, answers: [], authorities: [], additionals: [], ...a };
    return encodeMessage(msg, proto === 'udp' ? 4096 : 65535);
  };
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(port, address, () => r()));
  const bound = udp.address().port;
  udp.on('message', (msg, rinfo) => {
    const out = respond(msg, 'udp');
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  const tcp = net.createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on('error', () => {});
    conn.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const out = respond(buf.subarray(2, 2 + len), 'tcp');
        buf = buf.subarray(2 + len);
        if (out) {
          const f = Buffer.alloc(2 + out.length);
          f.writeUInt16BE(out.length, 0);
          out.copy(f, 2);
          conn.write(f);
        }
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(bound, address, () => r()));
  return {
    address, port: bound, queries,
    setDown: (d) => { down = d; },
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}
