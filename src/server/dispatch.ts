import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { RateLimitedLog } from '../log.js';
import { countError, type ServerStats } from '../stats.js';
import { logConnectionEnd, StreamSettings, serveStream } from '../tcp/connection.js';
import type { NativeCloseReason, NativeTcpTransport } from '../tcp/native.js';
import type { TlsAcceptor } from '../tls/server.js';
import type { Tracer } from '../trace.js';
import type { AdmittedConnection, ConnectionHandoff } from './admission.js';

/**
 * Transport dispatch: an admitted TCP connection is served by the native addon
 * (plain TCP, when it is in use and can take the socket), by node:net streams, or,
 * on the TLS listener, by streams after the TLS handshake. Every path counts and
 * logs as the others do (docs/protocol.md, the TCP connection table).
 */

export interface DispatchOptions {
  stats: ServerStats;
  logger: Logger;
  warnings: RateLimitedLog;
  /** Milliseconds; 0 = never. */
  idleTimeoutMs: number;
  writeTimeoutMs: number;
  /** Reports each socket step (`upcase serve --trace`); null when not tracing. */
  tracer: Tracer | null;
}

export class TcpDispatch implements ConnectionHandoff {
  /** Serves plain TCP when the native transport is in use; set while the server binds. */
  native: NativeTcpTransport | null = null;
  /** Does the handshakes of the TLS listener; set while the server binds, with TLS on. */
  tls: TlsAcceptor | null = null;
  private readonly options: DispatchOptions;
  private tcpSettings: StreamSettings | null = null;
  private tlsSettings: StreamSettings | null = null;
  /** Connection sockets accepted so far, numbered for the trace. */
  private accepted = 0;

  constructor(options: DispatchOptions) {
    this.options = options;
  }

  serve(conn: AdmittedConnection, socket: net.Socket, closed: (conn: AdmittedConnection) => void): boolean {
    const trace = this.traceAccept(conn);
    if (conn.transport === 'tls' && this.tls !== null) {
      // Served on the TLS socket over this one: this socket's close stays the end.
      this.handshake(conn, socket, this.tls, trace);
      return false;
    }
    this.options.logger.debug(conn.logFields, 'connection open');
    if (this.native !== null && this.adopt(conn, socket, this.native, closed)) return true;
    // The stream transport's own 'close' listener reports the end: the socket needs no second one.
    this.stream(conn, socket, this.streamSettings(false, closed), trace);
    return true;
  }

  /** Hands the connection to the addon; false when it cannot take this socket (serve it with streams). */
  private adopt(
    conn: AdmittedConnection,
    socket: net.Socket,
    native: NativeTcpTransport,
    closed: (conn: AdmittedConnection) => void,
  ): boolean {
    // Before adopt, which destroys the socket: its 'close' is then not this connection's end.
    conn.engine = 'native';
    conn.served = native.adopt(socket, (reason, code, message) => {
      this.nativeClosed(reason, code, message, conn);
      closed(conn);
    });
    if (conn.served === null) {
      conn.engine = null;
      return false;
    }
    // The destroyed socket is not kept alive for the connection's whole life.
    conn.socket = null;
    return true;
  }

  private stream(
    conn: AdmittedConnection,
    stream: Duplex,
    settings: StreamSettings,
    trace: { tracer: Tracer; id: number } | undefined,
  ): void {
    conn.engine = 'stream';
    // The connection's record is the stream transport's state for it too (one object).
    serveStream(stream, settings, conn, trace);
  }

  /**
   * What the stream transport's connections share, made once per listener kind. Plain
   * TCP is served on the accepted socket: the stream's close is the connection's end,
   * reported to `closed`. TLS is served on a socket over it, whose close admission watches.
   */
  private streamSettings(tls: boolean, closed?: (conn: AdmittedConnection) => void): StreamSettings {
    const made = tls ? this.tlsSettings : this.tcpSettings;
    if (made !== null) return made;
    const { stats, logger, idleTimeoutMs, writeTimeoutMs } = this.options;
    const settings = new StreamSettings({
      stats,
      logger,
      ownsChunks: true,
      idleTimeoutMs,
      writeTimeoutMs,
      tls,
      // Every connection served here is an AdmittedConnection (see stream()).
      closed: closed === undefined ? undefined : (connection) => closed(connection as AdmittedConnection),
    });
    if (tls) this.tlsSettings = settings;
    else this.tcpSettings = settings;
    return settings;
  }

  private handshake(
    conn: AdmittedConnection,
    socket: net.Socket,
    tls: TlsAcceptor,
    trace: { tracer: Tracer; id: number } | undefined,
  ): void {
    conn.state = 'handshake';
    tls.accept(socket, {
      secure: (secure) => {
        conn.state = 'open';
        this.options.stats.tlsHandshakes++;
        conn.tlsProtocol = secure.getProtocol();
        this.options.logger.debug(conn.logFields, 'connection open');
        this.stream(conn, secure, this.streamSettings(true), trace);
      },
      failed: (err) => this.tlsHandshakeFailed(err, conn.logFields),
    });
  }

  /** accept() has made connection socket #n; undefined when not tracing. */
  private traceAccept(conn: AdmittedConnection): { tracer: Tracer; id: number } | undefined {
    const { tracer } = this.options;
    if (tracer === null) return undefined;
    const id = ++this.accepted;
    const client = { address: conn.clientAddress ?? '?', port: conn.clientPort ?? 0 };
    tracer({ type: 'accept', transport: conn.transport, id, client });
    return { tracer, id };
  }

  /** Counts and logs how a natively served connection ended, as handleConnection does. */
  private nativeClosed(reason: NativeCloseReason, code: string | undefined, message: string | undefined, conn: AdmittedConnection): void {
    // The addon counted timeouts already (NativeTcpCounters), as they happened.
    if (reason === 'error') countError(this.options.stats, code);
    if (reason === 'idle' || reason === 'stall' || reason === 'error') {
      logConnectionEnd(this.options.logger, conn, reason, { code, message });
    }
  }

  private tlsHandshakeFailed(err: NodeJS.ErrnoException, logFields: Record<string, unknown>): void {
    const { stats, logger, warnings } = this.options;
    stats.tlsHandshakeErrors++;
    countError(stats, err.code);
    const fields = { ...logFields, code: err.code, err: err.message };
    if (err.code === 'ECONNRESET') {
      // Connect-then-close (health checks, port scans) is not worth a warning.
      logger.debug(fields, 'tls handshake: peer went away');
    } else {
      warnings.warn(`tls:handshake:${err.code}`, fields, 'tls handshake failed; closing');
    }
  }
}
