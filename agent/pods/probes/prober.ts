/**
 * Runs one resolved action (probes/handler.ts) against a container: exec through CRI ExecSync
 * with the timeout, httpGet, tcpSocket and grpc from the node. An outcome is success or failure;
 * a thrown error means the probe could not run (kubelet: "probe errored") and decides nothing.
 */
import type { PodRuntime } from '../runtime';
import type { Action } from './handler';
import { grpcHealthCheck } from './grpc';
import { httpGet, type ProbeOutcome } from './http';
import { tcpConnect } from './tcp';

export type { ProbeOutcome };

export interface Prober {
  run(action: Action, containerId: string, timeoutMs: number): Promise<ProbeOutcome>;
}

const MAX_OUTPUT = 10 * 1024;

export function createProber(runtime: PodRuntime): Prober {
  return {
    async run(action, containerId, timeoutMs) {
      switch (action.kind) {
        case 'exec': {
          if (!runtime.execSync) throw new Error('the runtime does not support exec');
          const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
          try {
            const res = await runtime.execSync(containerId, action.command, seconds);
            const output = Buffer.concat([res.stdout, res.stderr]).toString('utf8').slice(0, MAX_OUTPUT);
            return { ok: res.exitCode === 0, output: res.exitCode === 0 ? output : `command ${JSON.stringify(action.command.join(' '))} exited with ${res.exitCode}: ${output}` };
          } catch (err) {
            const message = (err as Error).message;
            if (/timeout|deadline/i.test(message)) return { ok: false, output: `command ${JSON.stringify(action.command.join(' '))} timed out` };
            throw err;
          }
        }
        case 'httpGet':
          return httpGet(action, timeoutMs);
        case 'tcpSocket':
          return tcpConnect(action.host, action.port, timeoutMs);
        case 'grpc':
          return grpcHealthCheck(action.host, action.port, action.service, timeoutMs);
        case 'sleep':
          await new Promise((r) => setTimeout(r, Math.min(action.seconds * 1000, timeoutMs)));
          return { ok: true, output: '' };
      }
    },
  };
}
