/** tcpSocket probes: success when a TCP connection opens within the timeout (then closed at once). */
import net from 'node:net';
import type { ProbeOutcome } from './http';

export function tcpConnect(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (outcome: ProbeOutcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done({ ok: false, output: `dial tcp ${host}:${port}: i/o timeout` }), timeoutMs);
    socket.once('connect', () => done({ ok: true, output: '' }));
    socket.once('error', (err) => done({ ok: false, output: `dial tcp ${host}:${port}: ${err.message}` }));
  });
}
