/**
 * upcase: the textbook uppercase service (Kurose & Ross §2.7) as a library.
 *
 * - The codec: {@link upcase} (one-shot), {@link Upcaser} (streaming), {@link createUpcaseStream}.
 * - The server: {@link startServer} / {@link UpcaseServer}, TCP and UDP on one port, TCP over TLS on another.
 * - {@link handleConnection}: the TCP conversation over any Duplex.
 * - The clients: {@link tcpRequest}, {@link tcpStream}, {@link connectTcp}, {@link UdpClient}, {@link Pinger}.
 * - {@link parseProxyHeader} / {@link ProxyHeaderReader}: the PROXY protocol v1/v2 header codec.
 * - Operations: {@link startMetricsServer} (status page /, Prometheus /metrics, /connections, /healthz, /readyz), {@link ClusterPrimary} / {@link ClusterWorker} (multi-core).
 * - Errors: {@link UpcaseError} and one subclass per code (docs/protocol.md, Error codes); {@link exitStatusOf}.
 *
 * The load generator is at `upcase/bench`.
 */

// The codec (bytes in, bytes out; no sockets).
export {
  upcase,
  upcaseOwned,
  Upcaser,
  createUpcaseStream,
  type PushOptions,
} from './codec/upcase.js';

// Errors: one class per code.
export {
  UpcaseError,
  InvalidArgumentError,
  NetworkError,
  ListenError,
  ConnectError,
  ResolveError,
  SocketError,
  TimeoutError,
  MessageTooLargeError,
  ProxyProtocolError,
  TlsError,
  ClosedError,
  WorkerError,
  exitStatusOf,
  type UpcaseErrorCode,
  type Transport,
  type NetworkLocation,
} from './errors.js';

// The server.
export {
  SERVER_DEFAULTS,
  type ServerOptions,
  type NormalizedServerOptions,
  type UdpTransportChoice,
  type TcpTransportChoice,
} from './options.js';
export { UpcaseServer, startServer, type ServerAddress, type ServerState, type CloseOptions } from './server/server.js';
export {
  createStats,
  type ServerStats,
  type UdpDropReason,
  UDP_DROP_REASONS,
  type ProxyRejectReason,
  PROXY_REJECT_REASONS,
} from './stats.js';
export { handleConnection, type ConnectionOptions } from './tcp/connection.js';
export { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from './udp/limits.js';
export { udpTransportName } from './udp/native.js';
export { tcpTransportName } from './tcp/native.js';
export type { CertificateInfo, PemSource } from './tls/credentials.js';

// The PROXY protocol header codec.
export {
  parseProxyHeader,
  ProxyHeaderReader,
  type ProxyHeader,
  type ProxyEndpoint,
  type ProxyCommand,
  type ProxyFamily,
  type ProxyTransport,
} from './proxy/header.js';

// Operations: metrics and multi-core.
export {
  createMetricsRegistry,
  startMetricsServer,
  MetricsServer,
  type MetricsRegistryOptions,
  type MetricsServerOptions,
  type MetricsSource,
} from './server/metrics.js';
export type { ServerInfo } from './server/info.js';
export {
  CONNECTIONS_PAGE,
  type ConnectionView,
  type ConnectionsPage,
  type ConnectionsQuery,
} from './server/connections.js';
export {
  ClusterPrimary,
  ClusterWorker,
  clusterWorkerPort,
  type ClusterOptions,
  type ClusterState,
  type RestartBackoff,
  type ClusterModule,
  type WorkerHandle,
  type PrimaryChannel,
} from './server/cluster.js';

// The clients.
export { tcpRequest, tcpStream, connectTcp, type TcpStreamResult } from './client/tcp.js';
export { UdpClient, sendLines, type UdpClientStats, type LinesOptions, type LinesResult } from './client/udp.js';
export {
  Pinger,
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
export {
  CLIENT_DEFAULTS,
  PING_DEFAULTS,
  type ClientOptions,
  type TlsClientOptions,
  type PingOptions,
} from './client/options.js';
export {
  createTraceWriter,
  describe as describeTraceEvent,
  TRACE_NOTICE,
  TRACE_PAYLOAD_BYTES,
  type Endpoint,
  type TraceEvent,
  type Tracer,
  type TraceWriterOptions,
} from './trace.js';
