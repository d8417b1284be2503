/**
 * Plain counters, bumped on the hot path without allocation or label lookups.
 * The metrics module reads them at scrape time (prom-client `collect`).
 */

/** Why a UDP request got no reply. */
export type UdpDropReason =
  | 'port_zero' // source port 0 cannot be replied to
  | 'low_port' // source port < 1024 (loop protection)
  | 'loop' // source port == the server's own port (another upcase server: loop protection)
  | 'rate_limited' // per-source token bucket empty
  | 'simulated' // --drop-rate
  | 'too_large' // reply over the UDP maximum payload
  | 'send_error'; // the OS refused the send

/** Every reason a datagram can be dropped for, the keys of `stats.udpDrops`. */
export const UDP_DROP_REASONS: readonly UdpDropReason[] = [
  'port_zero',
  'low_port',
  'loop',
  'rate_limited',
  'simulated',
  'too_large',
  'send_error',
];

/** Why a TCP connection was closed under `proxyProtocol` before it was served. */
export type ProxyRejectReason =
  | 'untrusted' // the peer is not in trustedProxies (refused at once)
  | 'missing' // the first bytes are not a PROXY header
  | 'malformed' // a PROXY header with invalid fields
  | 'too_large' // v1 line without CRLF in 107 bytes, or v2 header over the limit
  | 'truncated' // the peer ended or reset the connection mid-header
  | 'timeout'; // no complete header within proxyHeaderTimeout

/** Every reason a PROXY header can be rejected for, the keys of `stats.proxyRejected`. */
export const PROXY_REJECT_REASONS: readonly ProxyRejectReason[] = [
  'untrusted',
  'missing',
  'malformed',
  'too_large',
  'truncated',
  'timeout',
];

/** The counters a server keeps (`server.stats`); the metrics endpoint exports them. */
export interface ServerStats {
  /** TCP connections open now (plain and TLS). */
  connectionsOpen: number;
  /** TCP connections accepted since start (plain and TLS, counted before the TLS handshake). */
  connectionsTotal: number;
  /** TCP connections closed at once because `maxConnections` was reached. */
  connectionsRefused: number;
  /** TCP connections closed at once because their source had `maxConnectionsPerSource` open. */
  connectionsRefusedPerSource: number;
  /** TCP connections closed by the idle timeout. */
  idleTimeouts: number;
  /** TCP connections closed because the client left replies unread past `writeTimeout`. */
  writeTimeouts: number;
  /** Payload bytes over plain TCP (TLS connections count in `tlsBytesIn/Out`). */
  tcpBytesIn: number;
  tcpBytesOut: number;
  /** TLS handshakes completed (connections then served). */
  tlsHandshakes: number;
  /** TLS handshakes that failed: bad or plaintext input, timeout, reset (by code in `errors`). */
  tlsHandshakeErrors: number;
  /** Payload (decrypted) bytes over TLS. */
  tlsBytesIn: number;
  tlsBytesOut: number;
  udpDatagramsIn: number;
  udpDatagramsOut: number;
  udpBytesIn: number;
  udpBytesOut: number;
  udpDrops: Record<UdpDropReason, number>;
  /** TCP connections whose PROXY header was accepted (`proxyProtocol` on). */
  proxyAccepted: number;
  /** TCP connections closed for their PROXY header or peer, by reason. */
  proxyRejected: Record<ProxyRejectReason, number>;
  /** Errors by code (OS code such as ECONNRESET, or an UPCASE_ERR_* code). */
  errors: Record<string, number>;
}

/** A zeroed set of server counters, e.g. for {@link handleConnection} used on its own. */
export function createStats(): ServerStats {
  return {
    connectionsOpen: 0,
    connectionsTotal: 0,
    connectionsRefused: 0,
    connectionsRefusedPerSource: 0,
    idleTimeouts: 0,
    writeTimeouts: 0,
    tcpBytesIn: 0,
    tcpBytesOut: 0,
    tlsHandshakes: 0,
    tlsHandshakeErrors: 0,
    tlsBytesIn: 0,
    tlsBytesOut: 0,
    udpDatagramsIn: 0,
    udpDatagramsOut: 0,
    udpBytesIn: 0,
    udpBytesOut: 0,
    udpDrops: { port_zero: 0, low_port: 0, loop: 0, rate_limited: 0, simulated: 0, too_large: 0, send_error: 0 },
    proxyAccepted: 0,
    proxyRejected: { untrusted: 0, missing: 0, malformed: 0, too_large: 0, truncated: 0, timeout: 0 },
    errors: {},
  };
}

/**
 * Counts kept outside a {@link ServerStats}: the native TCP transport counts in C, into
 * its own array, at the moment things happen (src/tcp/native.ts).
 */
export interface TcpCounts {
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly idleTimeouts: number;
  readonly writeTimeouts: number;
}

/**
 * What a reader of both sources sees: a copy of `stats` with `tcp` added to the
 * plain-TCP bytes and the timeouts (null: nothing counted elsewhere). Frozen: a
 * snapshot never changes, so a reader that keeps it would read stale numbers.
 */
export function sumStats(stats: ServerStats, tcp: TcpCounts | null): ServerStats {
  return Object.freeze({
    ...stats,
    idleTimeouts: stats.idleTimeouts + (tcp?.idleTimeouts ?? 0),
    writeTimeouts: stats.writeTimeouts + (tcp?.writeTimeouts ?? 0),
    tcpBytesIn: stats.tcpBytesIn + (tcp?.bytesIn ?? 0),
    tcpBytesOut: stats.tcpBytesOut + (tcp?.bytesOut ?? 0),
    udpDrops: Object.freeze({ ...stats.udpDrops }),
    proxyRejected: Object.freeze({ ...stats.proxyRejected }),
    errors: Object.freeze({ ...stats.errors }),
  });
}

export function countError(stats: ServerStats, code: string | undefined): void {
  const key = code ?? 'UNKNOWN';
  stats.errors[key] = (stats.errors[key] ?? 0) + 1;
}
