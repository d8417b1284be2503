import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { networkError, type Transport } from '../errors.js';

export interface Target {
  address: string;
  family: 4 | 6;
}

/**
 * Every address of `host`, in the resolver's order. A literal IP is returned
 * as it is. Rejects with a `ResolveError` (`UPCASE_ERR_RESOLVE`) naming host and transport.
 */
export async function resolveTargets(host: string, port: number, transport: Transport): Promise<Target[]> {
  const family = net.isIP(host);
  if (family !== 0) return [{ address: host, family: family as 4 | 6 }];
  try {
    const found = await lookup(host, { all: true });
    if (found.length === 0) throw Object.assign(new Error('no addresses'), { code: 'ENOTFOUND' });
    return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  } catch (err) {
    throw networkError({ op: 'connect' }, { transport, address: host, port }, err);
  }
}

/**
 * A UDP socket connected to `target`, so that only its datagrams arrive and a "port
 * unreachable" comes back as `ECONNREFUSED`. Rejects with the network error for
 * `host`:`port` (`op: 'connect'`), the socket closed.
 */
export async function connectUdpSocket(target: Target, host: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket(target.family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, target.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    throw networkError({ op: 'connect' }, { transport: 'udp', address: host, port }, err);
  }
  return socket;
}
