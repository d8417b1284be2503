import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { upcaseOwned } from '../codec/upcase.js';
import { RateLimitedLog, safeAddress } from '../server/log.js';
import { countError, type ServerStats, type UdpDropReason } from '../server/stats.js';
import { RateLimiter, sourceKey } from './rate-limit.js';

/** Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP) and over IPv6 (65535 − 8). */
export const MAX_UDP_PAYLOAD_IPV4 = 65_507;
export const MAX_UDP_PAYLOAD_IPV6 = 65_527;

export function maxPayloadFor(address: string, family: string): number {
  // An IPv4 peer of a dual-stack socket shows up as ::ffff:a.b.c.d.
  return family === 'IPv4' || address.startsWith('::ffff:') ? MAX_UDP_PAYLOAD_IPV4 : MAX_UDP_PAYLOAD_IPV6;
}

/** Source ports below this get no reply unless `udpAllowLowPorts` (loop protection). */
export const LOWEST_REPLY_PORT = 1024;

export interface DatagramOptions {
  stats: ServerStats;
  logger: Logger;
  warnings: RateLimitedLog;
  /** Datagrams per second per source (IPv6: per /64); 0 disables the limit. */
  udpRateLimit: number;
  /** Bucket size of the rate limit, in datagrams. */
  udpRateBurst: number;
  udpAllowLowPorts: boolean;
  dropRate: number;
  /**
   * The server's own port: datagrams from this source port get no reply, since
   * they come from another upcase server (or this one, spoofed), and two servers
   * answering each other would loop forever. 0 turns the check off.
   */
  localPort?: number;
  /** Monotonic milliseconds for the rate limit; tests inject one. Default `performance.now`. */
  clock?: () => number;
}

/**
 * Answers each request datagram with one reply datagram to its sender, after
 * the abuse guards (docs/security.md): no reply to port 0, none to ports below
 * 1024 unless allowed, none to the server's own port, a per-source rate limit,
 * and no reply over the maximum UDP payload. Every drop is counted by reason in
 * `stats.udpDrops`. Returns the `message` listener for a dgram socket.
 */
export function createDatagramHandler(socket: DgramSocket, options: DatagramOptions): (msg: Buffer, rinfo: RemoteInfo) => void {
  const { stats, logger, warnings, dropRate } = options;
  const localPort = options.localPort ?? 0;
  const clock = options.clock ?? (() => performance.now());
  const limiter = options.udpRateLimit > 0 ? new RateLimiter(options.udpRateLimit, options.udpRateBurst) : null;

  const drop = (reason: UdpDropReason, rinfo: RemoteInfo, level: 'debug' | 'warn'): void => {
    stats.udpDrops[reason]++;
    const fields = { transport: 'udp', remoteAddress: safeAddress(rinfo.address), remotePort: rinfo.port, reason };
    if (level === 'warn') warnings.warn(`udp:${reason}`, fields, 'udp request dropped');
    else logger.debug(fields, 'udp request dropped');
  };

  const onSendError = (err: NodeJS.ErrnoException | null): void => {
    if (err === null) return;
    stats.udpDrops.send_error++;
    countError(stats, err.code);
    warnings.warn('udp:send_error', { transport: 'udp', code: err.code }, 'udp send failed');
  };

  return (msg, rinfo) => {
    stats.udpDatagramsIn++;
    stats.udpBytesIn += msg.length;
    if (rinfo.port === 0) return drop('port_zero', rinfo, 'warn');
    if (rinfo.port < LOWEST_REPLY_PORT && !options.udpAllowLowPorts) return drop('low_port', rinfo, 'warn');
    if (rinfo.port === localPort) return drop('loop', rinfo, 'warn');
    if (limiter !== null && !limiter.take(sourceKey(rinfo.address), clock())) return drop('rate_limited', rinfo, 'warn');
    if (dropRate > 0 && Math.random() < dropRate) return drop('simulated', rinfo, 'debug');
    const reply = upcaseOwned(msg);
    if (reply.length > maxPayloadFor(rinfo.address, rinfo.family)) {
      countError(stats, 'UPCASE_ERR_MESSAGE_TOO_LARGE');
      return drop('too_large', rinfo, 'warn');
    }
    stats.udpDatagramsOut++;
    stats.udpBytesOut += reply.length;
    socket.send(reply, rinfo.port, rinfo.address, onSendError);
  };
}
