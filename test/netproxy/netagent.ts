/**
 * A tiny network agent run inside test namespaces with the pinned node binary:
 *   serve NAME TCPPORT UDPPORT        answers every TCP connection and UDP datagram with NAME
 *   probe tcp|udp HOST PORT COUNT     connects COUNT times, prints a JSON array of answers
 *                                     ('ERR:<code>' for a failed attempt)
 */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

async function probeOnce(proto: string, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('ERR:TIMEOUT'), 1500);
    let finished = false;
    const done = (v: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve(v);
    };
    if (proto === 'udp') {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      s.on('message', (m) => {
        done(m.toString());
        s.close();
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        done(`ERR:${e.code}`);
        s.close();
      });
      s.send('hi', port, host);
      timer.refresh();
      return;
    }
    const sock = connect({ host, port });
    timer.unref();
    setTimeout(() => sock.destroy(), 1500).unref();
    let data = '';
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', () => done(data));
    sock.on('error', (e: NodeJS.ErrnoException) => done(`ERR:${e.code}`));
  });
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'serve') {
    const [name, tcpPort, udpPort] = args;
    createServer((c) => c.end(name)).listen(Number(tcpPort), '::');
    const u = createSocket('udp6');
    u.on('message', (_m, rinfo) => u.send(name!, rinfo.port, rinfo.address));
    u.bind(Number(udpPort), '::', () => console.log('ready'));
    return;
  }
  if (cmd === 'probe') {
    const [proto, host, port, count] = args;
    const out: string[] = [];
    for (let i = 0; i < Number(count); i++) out.push(await probeOnce(proto!, host!, Number(port)));
    console.log(JSON.stringify(out));
    process.exit(0);
  }
  console.error('usage: serve NAME TCPPORT UDPPORT | probe PROTO HOST PORT COUNT');
  process.exit(2);
}

void main();
