import cluster from 'node:cluster';
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { networkError } from '../errors.js';
import type { RateLimitedLog } from '../log.js';
import type { NormalizedServerOptions } from '../options.js';
import { countError, type ServerStats } from '../stats.js';
import type { Tracer } from '../trace.js';
import { createDatagramHandler, type DatagramOptions, DatagramPolicy } from '../udp/handler.js';
import { NativeUdpListener } from '../udp/native.js';
import { chooseNativeUdp } from './transport-choice.js';

/** Receive and send buffers of the UDP socket, both transports (native/udp_batch.c sets the same). */
const UDP_BUFFER_BYTES = 4 << 20;

/** A bound UDP listener, whichever transport serves it. */
export interface UdpListener {
  readonly transport: 'native' | 'dgram';
  readonly port: number;
  close(): Promise<void>;
}

/** What the UDP side of a server needs: its options, and where to count, log and trace. */
export interface UdpContext {
  options: Pick<NormalizedServerOptions, 'udpTransport' | 'udpRateLimit' | 'udpRateBurst' | 'udpAllowLowPorts' | 'dropRate'>;
  stats: ServerStats;
  logger: Logger;
  warnings: RateLimitedLog;
  tracer: Tracer | null;
}

/**
 * Binds the UDP side of a server on `address`:`port` with the transport the
 * options choose (src/server/transport-choice.ts); both answer through the same
 * {@link DatagramPolicy}. Rejects with a `NetworkError` (`UPCASE_ERR_LISTEN`).
 */
export async function bindUdp(address: string, port: number, context: UdpContext): Promise<UdpListener> {
  const inWorker = cluster.isWorker;
  const native = chooseNativeUdp(context.options.udpTransport, context.tracer !== null, inWorker, context.logger);
  if (native !== null) {
    try {
      const policy = new DatagramPolicy(datagramOptions(context));
      const listener = new NativeUdpListener(native, address, port, net.isIPv6(address) ? 6 : 4, policy, context.logger, inWorker);
      policy.localPort = listener.port; // the loop guard, as for node:dgram
      return { transport: 'native', port: listener.port, close: async () => listener.close() };
    } catch (err) {
      throw networkError({ op: 'listen' }, { transport: 'udp', address, port }, err);
    }
  }
  const socket = await bindDgram(address, port, context);
  return {
    transport: 'dgram',
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function datagramOptions(context: UdpContext): DatagramOptions {
  const { options } = context;
  return {
    stats: context.stats,
    logger: context.logger,
    warnings: context.warnings,
    udpRateLimit: options.udpRateLimit,
    udpRateBurst: options.udpRateBurst,
    udpAllowLowPorts: options.udpAllowLowPorts,
    dropRate: options.dropRate,
    tracer: context.tracer ?? undefined,
  };
}

function bindDgram(address: string, port: number, context: UdpContext): Promise<dgram.Socket> {
  const type = net.isIPv6(address) ? 'udp6' : 'udp4';
  // As the native transport: room for bursts (the kernel's default, about 208 KiB, holds a few
  // thousand small datagrams; a burst from many sources overflows it). Capped at net.core.[rw]mem_max.
  const socket = dgram.createSocket({ type, ipv6Only: false, recvBufferSize: UDP_BUFFER_BYTES, sendBufferSize: UDP_BUFFER_BYTES });
  return new Promise((resolve, reject) => {
    const onBindError = (err: Error): void => {
      socket.close();
      reject(networkError({ op: 'listen' }, { transport: 'udp', address, port }, err));
    };
    socket.once('error', onBindError);
    // Not exclusive: in a cluster worker the primary binds the socket once and shares
    // the handle, so every worker reads the same port (src/server/cluster.ts).
    // Outside a cluster this flag changes nothing.
    socket.bind({ address, port, exclusive: false }, () => {
      socket.off('error', onBindError);
      socket.on('error', (err: NodeJS.ErrnoException) => {
        countError(context.stats, err.code);
        context.warnings.warn(`udp:${err.code}`, { transport: 'udp', code: err.code }, 'udp socket error');
      });
      socket.on('message', createDatagramHandler(socket, { ...datagramOptions(context), localPort: socket.address().port }));
      resolve(socket);
    });
  });
}
