/**
 * upcase: the textbook uppercase service (Kurose & Ross §2.7) as a library.
 *
 * - The codec: {@link upcase} (one-shot), {@link Upcaser} (streaming), {@link createUpcaseStream}.
 * - The server: {@link startServer} / {@link UpcaseServer}, TCP and UDP on one port.
 * - {@link handleConnection}: the TCP conversation over any Duplex.
 */
export { upcase, upcaseOwned, Upcaser, createUpcaseStream, type PushOptions } from './codec/upcase.js';
export { sequenceLength, incompleteTailStart, INCOMPLETE } from './codec/utf8.js';
export {
  UpcaseError,
  InvalidArgumentError,
  NetworkError,
  MessageTooLargeError,
  TimeoutError,
  type UpcaseErrorCode,
  type Transport,
} from './errors.js';
export { SERVER_DEFAULTS, normalizeServerOptions, type ServerOptions, type NormalizedServerOptions } from './options.js';
export {
  UpcaseServer,
  startServer,
  type ServerAddress,
  type ServerState,
  type CloseOptions,
} from './server/server.js';
export { type ServerStats, type UdpDropReason, UDP_DROP_REASONS } from './server/stats.js';
export { handleConnection, type ConnectionOptions } from './tcp/connection.js';
export { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from './udp/handler.js';
export * from './bench/index.js';
