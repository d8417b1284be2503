/**
 * upcase: the textbook uppercase service (Kurose & Ross §2.7) as a library.
 *
 * - The codec: {@link upcase} (one-shot), {@link Upcaser} (streaming), {@link createUpcaseStream}.
 * - The server: {@link startServer} / {@link UpcaseServer}, TCP and UDP on one port, TCP over TLS on another.
 * - {@link handleConnection}: the TCP conversation over any Duplex.
 * - {@link parseProxyHeader} / {@link ProxyHeaderReader}: the PROXY protocol v1/v2 header codec.
 * - Operations: {@link startMetricsServer} (Prometheus /metrics, /healthz, /readyz), {@link ClusterPrimary} / {@link ClusterWorker} (multi-core).
 */
export { upcase, upcaseOwned, Upcaser, createUpcaseStream, type PushOptions } from './codec/upcase.js';
export { sequenceLength, incompleteTailStart, INCOMPLETE } from './codec/utf8.js';
export {
  UpcaseError,
  InvalidArgumentError,
  NetworkError,
  MessageTooLargeError,
  TimeoutError,
  ProxyProtocolError,
  TlsError,
  type UpcaseErrorCode,
  type Transport,
} from './errors.js';
export {
  SERVER_DEFAULTS,
  normalizeServerOptions,
  type ServerOptions,
  type NormalizedServerOptions,
  type UdpTransportChoice,
  type TcpTransportChoice,
} from './options.js';
export {
  UpcaseServer,
  startServer,
  type ServerAddress,
  type ServerState,
  type CloseOptions,
} from './server/server.js';
export {
  type ServerStats,
  type UdpDropReason,
  UDP_DROP_REASONS,
  type ProxyRejectReason,
  PROXY_REJECT_REASONS,
} from './server/stats.js';
export {
  parseProxyHeader,
  ProxyHeaderReader,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  type ProxyEndpoint,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyTransport,
} from './proxy/header.js';
export { readProxyHeader, type ProxyHeaderResult } from './proxy/accept.js';
export { handleConnection, type ConnectionOptions } from './tcp/connection.js';
export { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6, DatagramPolicy, createDatagramHandler, type DatagramOptions } from './udp/handler.js';
export { udpTransportName } from './udp/native.js';
export { tcpTransportName } from './tcp/native.js';
export {
  createMetricsRegistry,
  startMetricsServer,
  MetricsServer,
  metricsUrl,
  METRICS_DEFAULT_HOST,
  type MetricsRegistryOptions,
  type MetricsServerOptions,
  type MetricsSource,
} from './server/metrics.js';
export {
  ClusterPrimary,
  ClusterWorker,
  clusterWorkerPort,
  clusterWorkerSlot,
  resolveWorkerCount,
  restartDelay,
  RESTART_BACKOFF,
  type ClusterOptions,
  type ClusterState,
  type RestartBackoff,
} from './server/cluster.js';
export { tcpRequest, tcpStream, connectTcp, type TcpStreamResult } from './client/tcp.js';
export {
  loadTlsCredentials,
  TLS_MIN_VERSION,
  type CertificateInfo,
  type PemSource,
  type TlsCredentials,
} from './tls/credentials.js';
export { TlsAcceptor, type TlsAcceptorOptions, type TlsHandshakeHandlers } from './tls/server.js';
export { UdpClient, sendLines, type UdpClientStats, type LinesOptions, type LinesResult } from './client/udp.js';
export {
  Pinger,
  RttStats,
  looksRateLimited,
  durationStats,
  type DurationStats,
  type PingReply,
  type PingFailure,
  type PingSummary,
  type ProbeRecord,
  type ExtraReply,
} from './client/ping.js';
export { TcpPinger, type TcpProbeRecord, type TcpPingSummary } from './client/tcp-ping.js';
export { sweep, parseSweep, sweepSizes, SWEEP_DEFAULTS, type SweepOptions, type SweepStep, type SweepResult } from './client/sweep.js';
export { IncompleteReplyError } from './client/errors.js';
export {
  CLIENT_DEFAULTS,
  PING_DEFAULTS,
  type ClientOptions,
  type TlsClientOptions,
  type PingOptions,
} from './client/options.js';
export * from './bench/index.js';
