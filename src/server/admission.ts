import type net from 'node:net';
import type { Logger } from 'pino';
import { type RateLimitedLog, safeAddress } from '../log.js';
import { type ProxyHeaderResult, readProxyHeader } from '../proxy/accept.js';
import type { TrustList } from '../proxy/trust.js';
import { countError, type ServerStats } from '../stats.js';
import { StreamConnection } from '../tcp/connection.js';
import {
  type ConnectionFigures,
  type ConnectionsPage,
  type ConnectionsQuery,
  ConnectionTable,
  type ConnectionEntry,
  type TableLinks,
} from './connections.js';
import { SourceLimit } from './source-limit.js';

/**
 * Admission: which accepted TCP connections are served, as one flat sequence
 * (docs/protocol.md, the *accepted* row): the connection limit, the trust list,
 * then (without PROXY protocol) the per-source limit, or (with it) the PROXY header
 * and then the per-source limit on the client it names; then the hand-over to a
 * transport ({@link ConnectionHandoff}). Each step refuses with an early return.
 *
 * An admitted connection has one close path, {@link Admission.release}: it gives
 * back the connection's slot, its per-source count and its `/connections` entry,
 * whatever ended it (the client, a timeout, a bad PROXY header, a failed TLS
 * handshake, a refusal after the header, the server closing). It runs when the
 * socket closes, or, for a connection the native transport took off its socket,
 * when the transport reports the end.
 */

const CLOCK_BASE = Date.now();

/** What serves an admitted connection's bytes when the addon does: its connection there. */
export interface ServedConnection {
  /** Its counters as of `now` (`Date.now()`); null once the transport has forgotten it. */
  figures(now: number): ConnectionFigures | null;
  destroy(): void;
}

/**
 * An admitted connection: its `/connections` entry and, served by the stream transport,
 * that transport's state for it, in one object: it extends the stream transport's record
 * ({@link StreamConnection}, filled in only if the stream transport serves it). It is all
 * admission keeps per connection (docs/benchmarks.md, memory per idle connection): its
 * log fields are built when a line is logged, its counters are the transport's, and its
 * socket's 'close' listener is one function shared by every connection. Admission still
 * serves nothing itself: the hand-over is {@link ConnectionHandoff}.
 */
export class AdmittedConnection extends StreamConnection implements ConnectionEntry, TableLinks<AdmittedConnection> {
  // Milliseconds since CLOCK_BASE: a small integer, kept in the object (an epoch
  // millisecond count is a boxed double: 16 bytes more per connection).
  // (Math.round hands back the integer as such; a bare subtraction leaves a double.)
  private readonly openedSince = Math.round(Date.now() - CLOCK_BASE);
  /**
   * `native` once the native transport has taken the connection off its socket: the
   * socket's close is then not the connection's end, the transport reports that.
   */
  engine: 'stream' | 'native' | null = null;
  state: 'proxy' | 'handshake' | 'open' = 'open';
  clientAddress: string | undefined;
  clientPort: number | undefined;
  proxy: { address: string | undefined; port: number | undefined; version: 1 | 2 } | null = null;
  /** The TLS protocol negotiated, for log lines; null without TLS or before the handshake. */
  tlsProtocol: string | null = null;
  /** The per-source key it is counted under; null while not counted (waiting for the PROXY header, or refused). */
  source: string | null = null;
  /** What serves its bytes when the native transport does; the stream transport serves it as this object. */
  served: ServedConnection | null = null;
  /** The accepted socket; null once the native transport has taken the connection off it (it is destroyed then). */
  socket: net.Socket | null;
  tablePrev: AdmittedConnection | null = null;
  tableNext: AdmittedConnection | null = null;

  constructor(
    readonly id: number,
    readonly transport: 'tcp' | 'tls',
    socket: net.Socket,
    /** Its close path ({@link Admission.release}), shared by every connection of its server. */
    readonly closed: (conn: AdmittedConnection) => void,
  ) {
    super();
    this.socket = socket;
    this.clientAddress = socket.remoteAddress;
    this.clientPort = socket.remotePort;
  }

  /** `Date.now()` when it was accepted. */
  get openedAt(): number {
    return CLOCK_BASE + this.openedSince;
  }

  /**
   * Log fields of this connection's lines, built afresh for each line: the client, with
   * PROXY protocol the balancer, with TLS the protocol. Never payload.
   */
  override get logFields(): Record<string, unknown> {
    const fields: Record<string, unknown> = {
      transport: this.transport,
      remoteAddress: safeAddress(this.clientAddress),
      remotePort: this.clientPort,
    };
    if (this.proxy !== null) {
      fields.proxyAddress = safeAddress(this.proxy.address);
      fields.proxyVersion = this.proxy.version;
    }
    if (this.tlsProtocol !== null) fields.tlsProtocol = this.tlsProtocol;
    return fields;
  }

  figures(now: number): ConnectionFigures | null {
    if (this.engine === 'stream') return this.streamFigures();
    return this.served === null ? null : this.served.figures(now);
  }

  /** Closes it now, wherever it is; its close path follows. */
  destroy(): void {
    if (this.engine === 'native') this.served?.destroy();
    else this.socket?.destroy();
  }
}

const kAdmitted = Symbol('upcase.admitted');
type AdmittedSocket = net.Socket & { [kAdmitted]: AdmittedConnection };

// The 'close' listener of a socket whose close is its connection's end: one function for
// every connection, not a closure each.
function onAdmittedSocketClose(this: net.Socket): void {
  const conn = (this as AdmittedSocket)[kAdmitted];
  conn.closed(conn);
}

/** Where admitted connections go: the transports (src/server/dispatch.ts). */
export interface ConnectionHandoff {
  /**
   * Serves `conn`, accepted on `socket`, whose client is known. Returns true when the
   * transport reports the connection's end itself, calling `closed(conn)` once (the
   * native transport, which takes the connection off its socket and sets
   * `conn.engine = 'native'` first; the stream transport on the socket itself);
   * false when the socket's close is the end (TLS, served on a socket over it).
   */
  serve(conn: AdmittedConnection, socket: net.Socket, closed: (conn: AdmittedConnection) => void): boolean;
}

export interface AdmissionOptions {
  /** Open connections at most, both listeners together. */
  maxConnections: number;
  /** Open connections per source at most; 0: no limit. */
  maxConnectionsPerSource: number;
  /** Peers allowed to send PROXY headers; null when PROXY protocol is off. */
  trustedProxies: TrustList | null;
  /** Milliseconds a PROXY header may take. */
  proxyHeaderTimeoutMs: number;
  stats: ServerStats;
  logger: Logger;
  warnings: RateLimitedLog;
}

/** The connections one server admits and holds open. */
export class Admission {
  /** The connection limit in force (the server may lower it to fit the open-file limit). */
  maxConnections: number;
  private readonly options: AdmissionOptions;
  private readonly handoff: ConnectionHandoff;
  /** The open connections, oldest first; its size is the slots in use. */
  private readonly table = new ConnectionTable<AdmittedConnection>();
  private readonly perSource: SourceLimit;
  private emptied: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Set by {@link destroyAll}: the server is closing its connections itself. */
  private closing = false;
  // One function for every connection's close path.
  private readonly closed = (conn: AdmittedConnection): void => this.release(conn);

  constructor(options: AdmissionOptions, handoff: ConnectionHandoff) {
    this.options = options;
    this.handoff = handoff;
    this.maxConnections = options.maxConnections;
    this.perSource = new SourceLimit(options.maxConnectionsPerSource);
  }

  /** Admits, or refuses, a connection a listener has just accepted. */
  admit(socket: net.Socket, transport: 'tcp' | 'tls'): void {
    const { stats, trustedProxies } = this.options;
    if (this.table.size >= this.maxConnections) {
      // Each listener's own maxConnections only counts its own connections.
      this.dropped(transport, socket.remoteAddress);
      socket.destroy();
      return;
    }
    if (trustedProxies !== null && socket.remoteAddress === undefined) {
      // Reset before we got to it (as HAProxy's health checks do): nobody to refuse.
      stats.proxyRejected.truncated++;
      socket.destroy();
      return;
    }
    if (trustedProxies !== null && !trustedProxies.has(socket.remoteAddress)) {
      // PROXY protocol is on: only a trusted balancer may speak here, or anyone could claim any address.
      stats.proxyRejected.untrusted++;
      this.options.warnings.warn(
        'tcp:proxy_untrusted',
        { transport, remoteAddress: safeAddress(socket.remoteAddress), remotePort: socket.remotePort, reason: 'untrusted' },
        'connection refused: peer is not a trusted proxy',
      );
      socket.resetAndDestroy();
      return;
    }
    // Without PROXY protocol the client is the peer: its per-source count is taken before
    // the connection is counted; with it, once the header has named the client.
    const source = trustedProxies === null ? this.perSource.acquire(socket.remoteAddress) : null;
    if (trustedProxies === null && source === null) {
      this.refusedPerSource(transport, socket.remoteAddress);
      socket.destroy();
      return;
    }
    const conn = this.open(socket, transport);
    this.counted(conn, source);
    if (trustedProxies === null) {
      this.serve(conn, socket);
      return;
    }
    conn.state = 'proxy';
    this.watchClose(conn, socket);
    readProxyHeader(socket, this.options.proxyHeaderTimeoutMs, (result) => this.proxyHeaderRead(conn, socket, result));
  }

  /** Counts and logs a connection refused because the connection limit was reached. */
  dropped(transport: 'tcp' | 'tls', remoteAddress: string | undefined): void {
    this.options.stats.connectionsRefused++;
    this.options.warnings.warn(
      'tcp:max_connections',
      { transport, remoteAddress: safeAddress(remoteAddress), limit: this.maxConnections },
      'connection refused: max connections reached',
    );
  }

  /** Open connections now (in every state: PROXY header, TLS handshake, served). */
  get size(): number {
    return this.table.size;
  }

  /** One page of the open connections, oldest first (`/connections`). */
  page(query: ConnectionsQuery): ConnectionsPage {
    return this.table.page(query);
  }

  /** Resolves once no connection is open (at once when none is). */
  whenEmpty(): Promise<void> {
    if (this.table.size === 0) return Promise.resolve();
    if (this.emptied === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.emptied = { promise, resolve };
    }
    return this.emptied.promise;
  }

  /**
   * Closes every open connection; each one's close path follows. The server is closing: a
   * PROXY header cut short by it is not the balancer's fault, and is neither counted nor logged.
   */
  destroyAll(): void {
    this.closing = true;
    for (const conn of this.table.values()) conn.destroy();
  }

  /** Counts the connection and gives it its `/connections` entry. */
  private open(socket: net.Socket, transport: 'tcp' | 'tls'): AdmittedConnection {
    const { stats } = this.options;
    stats.connectionsOpen++;
    stats.connectionsTotal++;
    const conn = new AdmittedConnection(this.table.nextId(), transport, socket, this.closed);
    this.table.add(conn);
    // Reading remoteAddress made Node cache the peer's address on the socket, an object of
    // about 56 bytes for the connection's whole life; the entry has the address, and the
    // socket reads it again from its handle if asked (net.Socket#_getpeername). Deleted,
    // not set to undefined: net.Socket's constructor has no such property, so that read
    // added it, last, and deleting the last property added takes V8 back to the socket's
    // shape before it (still fast properties), with one property less to keep.
    delete (socket as { _peername?: unknown })._peername;
    return conn;
  }

  /**
   * The connection is counted under `source` (null: not counted). An IPv4 client's key is
   * its address, one string shared by every connection from it: the connection keeps
   * that rather than a string of its own (32 bytes each).
   */
  private counted(conn: AdmittedConnection, source: string | null): void {
    conn.source = source;
    if (source !== null && source === conn.clientAddress) conn.clientAddress = source;
  }

  /** Hands the connection over; from then on its end is the transport's report, or its socket's close. */
  private serve(conn: AdmittedConnection, socket: net.Socket): void {
    // Before serve() returns nothing can have closed: a socket's 'close' is emitted on a later tick.
    if (this.handoff.serve(conn, socket, this.closed)) this.unwatchClose(socket);
    else this.watchClose(conn, socket);
  }

  /** Makes the socket's close the connection's close path (while admission holds it, or for TLS). */
  private watchClose(conn: AdmittedConnection, socket: net.Socket): void {
    if ((socket as AdmittedSocket)[kAdmitted] === conn) return;
    (socket as AdmittedSocket)[kAdmitted] = conn;
    socket.on('close', onAdmittedSocketClose);
  }

  private unwatchClose(socket: net.Socket): void {
    if ((socket as Partial<AdmittedSocket>)[kAdmitted] !== undefined) socket.off('close', onAdmittedSocketClose);
  }

  private proxyHeaderRead(conn: AdmittedConnection, socket: net.Socket, result: ProxyHeaderResult): void {
    if (!result.ok) {
      if (!this.closing) this.rejectProxyHeader(conn, result);
      socket.destroy();
      return;
    }
    this.options.stats.proxyAccepted++;
    const { source, version } = result.header;
    // LOCAL (health checks), v1 UNKNOWN and v2 UNSPEC/UNIX carry no client address: the peer stands.
    if (source !== null) {
      // Until now the client was the peer: the balancer.
      conn.proxy = { address: conn.clientAddress, port: conn.clientPort, version };
      conn.clientAddress = source.address;
      // Log lines name the client from the header, with the balancer as proxyAddress.
      conn.clientPort = source.port;
    }
    // Behind a balancer the per-source limit counts the client from the header (or, for
    // LOCAL/UNKNOWN, the balancer itself).
    this.counted(conn, this.perSource.acquire(conn.clientAddress));
    if (conn.source === null) {
      this.refusedPerSource(conn.transport, conn.clientAddress);
      socket.destroy();
      return;
    }
    conn.state = 'open';
    this.serve(conn, socket);
    // readProxyHeader leaves the socket paused with the bytes after the header unshifted;
    // TLS reads those itself (the socket must stay paused, or they would flow past it).
    if (conn.transport === 'tcp') socket.resume();
  }

  /**
   * The close path: gives back the connection's slot, its per-source count and its
   * `/connections` entry. Runs once per admitted connection.
   */
  private release(conn: AdmittedConnection): void {
    if (!this.table.delete(conn)) return;
    this.options.stats.connectionsOpen--;
    if (conn.source !== null) this.perSource.release(conn.source);
    conn.source = null;
    // The fields are built only when the line is written (every close passes here).
    if (this.options.logger.isLevelEnabled('debug')) this.options.logger.debug(conn.logFields, 'connection closed');
    if (this.table.size === 0 && this.emptied !== null) {
      this.emptied.resolve();
      this.emptied = null;
    }
  }

  private refusedPerSource(transport: 'tcp' | 'tls', remoteAddress: string | undefined): void {
    this.options.stats.connectionsRefusedPerSource++;
    this.options.warnings.warn(
      'tcp:max_connections_per_source',
      { transport, remoteAddress: safeAddress(remoteAddress), limit: this.options.maxConnectionsPerSource },
      'connection refused: max connections per source reached',
    );
  }

  private rejectProxyHeader(conn: AdmittedConnection, result: Extract<ProxyHeaderResult, { ok: false }>): void {
    const { stats } = this.options;
    stats.proxyRejected[result.reason]++;
    if (result.error !== undefined) countError(stats, result.error.code);
    const fields = { ...conn.logFields, reason: result.reason, code: 'UPCASE_ERR_PROXY_PROTOCOL', err: result.message };
    if (result.reason === 'truncated' && result.bytes === 0) {
      // Connect-then-close is what plain TCP health checks do: not worth a warning.
      this.options.logger.debug(fields, 'connection closed before a PROXY header');
    } else {
      this.options.warnings.warn(`tcp:proxy_${result.reason}`, fields, 'PROXY header rejected; closing');
    }
  }
}
