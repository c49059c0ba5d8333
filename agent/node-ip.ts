/** The node's InternalIP when --node-ip is not given: the IPv4 address of the default route's interface. */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

export function defaultRouteInterface(routeTable = '/proc/net/route'): string | undefined {
  let text: string;
  try {
    text = readFileSync(routeTable, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

export function detectNodeIP(): string | undefined {
  const ifaces = networkInterfaces();
  const preferred = defaultRouteInterface();
  const candidates = preferred ? [preferred, ...Object.keys(ifaces)] : Object.keys(ifaces);
  for (const name of candidates) {
    const addr = ifaces[name]?.find((a) => a.family === 'IPv4' && !a.internal);
    if (addr) return addr.address;
  }
  return undefined;
}
