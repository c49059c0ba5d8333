/**
 * A tiny grpc.health.v1 server for the gRPC probe feature test, run inside the node's network
 * namespace. argv: host port. Answers Check for the empty service with the current status;
 * stdin lines `SERVING` / `NOT_SERVING` change it. Prints `listening <port>` once bound.
 */
import * as grpc from '@grpc/grpc-js';
import { createInterface } from 'node:readline';
import { decodeHealthCheckRequest, encodeHealthCheckResponse, HEALTH_CHECK_PATH, SERVING_STATUS } from '../../agent/pods/probes/grpc';

let status = 1;
const server = new grpc.Server();
server.register(
  HEALTH_CHECK_PATH,
  (call: grpc.ServerUnaryCall<{ service: string }, number>, callback: grpc.sendUnaryData<number>) => {
    if (call.request.service) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
    else callback(null, status);
  },
  encodeHealthCheckResponse,
  (b: Buffer) => ({ service: decodeHealthCheckRequest(b) }),
  'unary',
);
server.bindAsync(`${process.argv[2]}:${process.argv[3]}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.log(`failed ${err.message}`);
    process.exit(1);
  }
  console.log(`listening ${port}`);
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const next = SERVING_STATUS.indexOf(line.trim() as (typeof SERVING_STATUS)[number]);
  if (next >= 0) status = next;
});
process.stdin.on('end', () => server.forceShutdown());
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
