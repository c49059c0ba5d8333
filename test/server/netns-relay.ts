/**
 * Test helper run inside the simulated node's network namespace (containerd's streaming server
 * listens on 127.0.0.1 there, out of reach of the test process):
 *   node netns-relay.js SOCKET
 * listens on the unix socket SOCKET (a file path, reachable from every namespace); each connection
 * starts with one line `host:port\n`, and the rest is piped to that TCP address inside the namespace.
 */
import { connect, createServer } from 'node:net';
import { rmSync } from 'node:fs';

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write('usage: netns-relay SOCKET\n');
  process.exit(2);
}
rmSync(socketPath, { force: true });
const server = createServer((client) => {
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const nl = buffered.indexOf(0x0a);
    if (nl < 0) return;
    client.off('data', onData);
    client.pause();
    const [host, port] = buffered.subarray(0, nl).toString().trim().split(/:(?=\d+$)/);
    const rest = buffered.subarray(nl + 1);
    const upstream = connect({ host: host!, port: Number(port) }, () => {
      if (rest.length) upstream.write(rest);
      upstream.pipe(client);
      client.pipe(upstream);
      client.resume();
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  };
  client.on('data', onData);
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
