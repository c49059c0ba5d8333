/**
 * `pods/log`: kube-apiserver forwards it to the kubelet of the pod's node
 * (`https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>`),
 * authenticating with its kubelet client certificate (CN kube-apiserver-kubelet-client,
 * O system:masters) and, like a default kube-apiserver, not verifying the kubelet's certificate.
 * The kubelet's answer (status and body, streamed for follow=true) is passed through.
 */
import { request } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { IssuedCert } from '../pki';
import type { Registry } from './registry';
import { resourceForKind } from './resources';
import { ApiError, errors } from './status';
import type { Obj } from './store';

const LOG_PARAMS = ['follow', 'previous', 'sinceSeconds', 'sinceTime', 'timestamps', 'tailLines', 'limitBytes'];

export interface KubeletProxy {
  podLog(namespace: string, name: string, query: URLSearchParams, res: ServerResponse): Promise<void>;
  /**
   * `pods/exec`, `pods/attach`, `pods/portforward` upgrade requests (SPDY or WebSocket), proxied
   * byte for byte to the kubelet's `/exec|/attach/<ns>/<pod>/<container>` or `/portForward/<ns>/<pod>`
   * with the kubelet client certificate. Throws ApiError before anything was written.
   */
  podStream(namespace: string, name: string, subresource: string, query: URLSearchParams, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

function nodeAddress(node: Obj): string | undefined {
  const addresses = (node.status?.addresses ?? []) as Obj[];
  return (addresses.find((a) => a.type === 'InternalIP') ?? addresses.find((a) => a.type === 'ExternalIP') ?? addresses.find((a) => a.type === 'Hostname'))?.address;
}

const STREAM_PATHS: Record<string, string> = { exec: 'exec', attach: 'attach', portforward: 'portForward' };

export function createKubeletProxy(registry: Registry, clientCert: () => Promise<IssuedCert>): KubeletProxy {
  const pods = resourceForKind('Pod', 'v1')!;
  const nodes = resourceForKind('Node', 'v1')!;
  return {
    async podStream(namespace, name, subresource, query, req, socket, head) {
      const kind = STREAM_PATHS[subresource];
      if (!kind) throw errors.notFound({ plural: 'pods', group: '' }, `${name}/${subresource}`);
      const pod = registry.get(pods, namespace, name);
      const nodeName: string | undefined = pod.spec?.nodeName;
      if (!nodeName) throw errors.badRequest(`pod ${name} does not have a host assigned`);
      const node = registry.get(nodes, undefined, nodeName);
      const host = nodeAddress(node);
      const port = Number(node.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 10250);
      if (!host) throw errors.badRequest(`node ${nodeName} has no address`);
      let path = `/${kind}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
      if (kind !== 'portForward') {
        const containers = ((pod.spec?.containers ?? []) as Obj[]).map((c) => c.name as string);
        const container = query.get('container') || (containers.length === 1 ? containers[0]! : '');
        if (!container) throw errors.badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
        path += `/${encodeURIComponent(container)}`;
      }
      const params = new URLSearchParams(query);
      params.delete('container');
      const cert = await clientCert();
      const lines = [`${req.method ?? 'GET'} ${path}${params.size ? '?' + params.toString() : ''} HTTP/1.1`, `Host: ${host}:${port}`];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        if (!['host', 'authorization'].includes(req.rawHeaders[i]!.toLowerCase())) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      await new Promise<void>((resolve) => {
        const upstream = tlsConnect({ host, port, cert: cert.certPem, key: cert.keyPem, rejectUnauthorized: false }, () => {
          upstream.write(lines.join('\r\n') + '\r\n\r\n');
          if (head.length) upstream.write(head);
          upstream.pipe(socket);
          socket.pipe(upstream);
        });
        const done = () => {
          upstream.destroy();
          socket.destroy();
          resolve();
        };
        upstream.on('error', done);
        upstream.on('close', done);
        socket.on('error', done);
        socket.on('close', done);
      });
    },
    async podLog(namespace, name, query, res) {
      const pod = registry.get(pods, namespace, name);
      const containers = ((pod.spec?.containers ?? []) as Obj[]).map((c) => c.name as string);
      let container = query.get('container') ?? '';
      if (!container) {
        if (containers.length !== 1) {
          throw errors.badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
        }
        container = containers[0]!;
      }
      const all = [...containers, ...((pod.spec?.initContainers ?? []) as Obj[]).map((c) => c.name as string)];
      if (!all.includes(container)) throw errors.badRequest(`container ${container} is not valid for pod ${name}`);
      const nodeName: string | undefined = pod.spec?.nodeName;
      if (!nodeName) throw errors.badRequest(`pod ${name} does not have a host assigned`);
      const node = registry.get(nodes, undefined, nodeName);
      const host = nodeAddress(node);
      const port = Number(node.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 10250);
      if (!host) throw errors.badRequest(`node ${nodeName} has no address`);
      const params = new URLSearchParams();
      for (const key of LOG_PARAMS) {
        const value = query.get(key);
        if (value !== null) params.set(key, value);
      }
      const cert = await clientCert();
      const path = `/containerLogs/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${encodeURIComponent(container)}${params.size ? '?' + params.toString() : ''}`;
      await new Promise<void>((resolve, reject) => {
        const upstream = request(
          { host, port, path, method: 'GET', cert: cert.certPem, key: cert.keyPem, rejectUnauthorized: false, agent: false },
          (reply) => {
            res.writeHead(reply.statusCode ?? 502, { 'Content-Type': String(reply.headers['content-type'] ?? 'text/plain'), 'Cache-Control': 'no-cache, private' });
            reply.pipe(res);
            reply.on('end', () => resolve());
            reply.on('error', () => resolve());
          },
        );
        res.on('close', () => upstream.destroy());
        upstream.on('error', (err) => {
          if (res.headersSent) {
            res.destroy();
            resolve();
          } else {
            reject(new ApiError(500, 'InternalError', `Get "https://${host}:${port}${path}": ${err.message}`));
          }
        });
        upstream.end();
      });
    },
  };
}
