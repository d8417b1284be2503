import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { upcaseOwned } from '../codec/upcase.js';
import { type RateLimitedLog, safeAddress } from '../log.js';
import { countError, type ServerStats, type UdpDropReason } from '../stats.js';
import { maxPayloadFor } from './limits.js';
import type { Tracer } from '../trace.js';
import { RateLimiter, sourceKey } from './rate-limit.js';

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
  /** Reports each recvfrom and sendto (`upcase serve --trace`); node:dgram only. */
  tracer?: Tracer;
}

/** Why a request got no reply, for the trace. */
const DROP_WORDS: Record<UdpDropReason, string> = {
  port_zero: 'source port 0 cannot be answered',
  low_port: 'source port below 1024 (loop guard; --udp-allow-low-ports)',
  loop: "source port is the server's own (loop guard)",
  rate_limited: 'over the rate limit for this source (--udp-rate-limit)',
  simulated: 'dropped on purpose to simulate loss (--drop-rate)',
  too_large: 'the reply would not fit in one datagram',
  send_error: 'sendto() failed',
};

/**
 * What to answer to one request datagram: the abuse guards (docs/security.md):
 * no reply to port 0, none to ports below 1024 unless allowed, none to the
 * server's own port, a per-source rate limit, and no reply over the maximum UDP
 * payload; every drop is counted by reason in `stats.udpDrops`. Then the uppercase reply. Shared by both UDP transports (node:dgram and the
 * optional native batch transport) so that they behave identically.
 */
export class DatagramPolicy {
  private readonly limiter: RateLimiter | null;
  private readonly clock: () => number;
  /** The server's own port (loop guard); 0 = off. Set once the port is known. */
  localPort: number;
  /** Why the last request that got no reply was dropped. */
  lastDrop: UdpDropReason | null = null;

  constructor(private readonly options: DatagramOptions) {
    this.limiter = options.udpRateLimit > 0 ? new RateLimiter(options.udpRateLimit, options.udpRateBurst) : null;
    this.clock = options.clock ?? (() => performance.now());
    this.localPort = options.localPort ?? 0;
  }

  /**
   * The reply to send to `address`:`port`, or null when the request is dropped
   * (counted by reason). `msg` is owned by the caller and may be uppercased in
   * place. `maxPayload` is the largest datagram the peer's family can carry.
   */
  reply(msg: Buffer, port: number, address: string, maxPayload: number): Buffer | null {
    const { stats } = this.options;
    stats.udpDatagramsIn++;
    stats.udpBytesIn += msg.length;
    if (port === 0) return this.drop('port_zero', address, port, 'warn');
    if (port < LOWEST_REPLY_PORT && !this.options.udpAllowLowPorts) return this.drop('low_port', address, port, 'warn');
    if (port === this.localPort) return this.drop('loop', address, port, 'warn');
    if (this.limiter !== null && !this.limiter.take(sourceKey(address), this.clock()))
      return this.drop('rate_limited', address, port, 'warn');
    if (this.options.dropRate > 0 && Math.random() < this.options.dropRate) return this.drop('simulated', address, port, 'debug');
    const reply = upcaseOwned(msg);
    if (reply.length > maxPayload) {
      countError(stats, 'UPCASE_ERR_MESSAGE_TOO_LARGE');
      return this.drop('too_large', address, port, 'warn');
    }
    stats.udpDatagramsOut++;
    stats.udpBytesOut += reply.length;
    return reply;
  }

  /** Counts a reply the OS refused to send. */
  sendFailed(code: string | undefined): void {
    const { stats } = this.options;
    stats.udpDatagramsOut--;
    stats.udpDrops.send_error++;
    countError(stats, code);
    this.options.warnings.warn('udp:send_error', { transport: 'udp', code }, 'udp send failed');
  }

  private drop(reason: UdpDropReason, address: string, port: number, level: 'debug' | 'warn'): null {
    this.lastDrop = reason;
    this.options.stats.udpDrops[reason]++;
    const fields = { transport: 'udp', remoteAddress: safeAddress(address), remotePort: port, reason };
    if (level === 'warn') this.options.warnings.warn(`udp:${reason}`, fields, 'udp request dropped');
    else this.options.logger.debug(fields, 'udp request dropped');
    return null;
  }
}

/** The `message` listener for a node:dgram socket: one reply datagram per request datagram. */
export function createDatagramHandler(socket: DgramSocket, options: DatagramOptions): (msg: Buffer, rinfo: RemoteInfo) => void {
  const policy = new DatagramPolicy(options);
  const onSendError = (err: NodeJS.ErrnoException | null): void => {
    if (err !== null) policy.sendFailed(err.code);
  };
  const tracer = options.tracer ?? null;
  return (msg, rinfo) => {
    // Before reply(): it uppercases the message in place.
    if (tracer !== null) tracer({ type: 'recvfrom', client: rinfo, data: msg });
    const reply = policy.reply(msg, rinfo.port, rinfo.address, maxPayloadFor(rinfo.address, rinfo.family));
    if (tracer !== null) {
      if (reply !== null) tracer({ type: 'sendto', client: rinfo, data: reply });
      else tracer({ type: 'no-reply', client: rinfo, reason: DROP_WORDS[policy.lastDrop ?? 'send_error'] });
    }
    if (reply !== null) socket.send(reply, rinfo.port, rinfo.address, onSendError);
  };
}
