import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import { ClosedError } from '../errors.js';
import { RateLimitedLog, silentLogger } from '../log.js';
import { normalizeServerOptions, type NormalizedServerOptions, type ServerOptions } from '../options.js';
import { parseCidr, TrustList } from '../proxy/trust.js';
import { countError, createStats, type ServerStats, sumStats } from '../stats.js';
import { NativeTcpTransport, tcpCodecPath } from '../tcp/native.js';
import { type CertificateInfo, loadTlsCredentials, type PemSource, type TlsCredentials } from '../tls/credentials.js';
import { TlsAcceptor } from '../tls/server.js';
import type { Tracer } from '../trace.js';
import { udpKernelDrops } from '../udp/kernel-drops.js';
import { UPCASE_VERSION } from '../version.js';
import { Admission } from './admission.js';
import type { ConnectionsPage, ConnectionsQuery } from './connections.js';
import { TcpDispatch } from './dispatch.js';
import { connectionsThatFit } from './fd-limit.js';
import type { ServerInfo } from './info.js';
import { bindListeners, closeServer, type Listeners, listenTcp, type ServerAddress, type TcpListenerHandlers } from './listeners.js';
import { chooseNativeTcp, refuseTracedNative } from './transport-choice.js';
import { bindUdp } from './udp.js';

export type { ServerAddress } from './listeners.js';

/**
 * The server's facade and lifecycle: listen, close (with drain), TLS reload. The
 * parts it wires together, from the bottom: transport-choice.ts (which transports),
 * listeners.ts (binding TCP and UDP on one port), udp.ts (the UDP side),
 * admission.ts (limits, trust, PROXY header, one close path per connection),
 * dispatch.ts (native, stream or TLS for each admitted connection).
 */

/** A server's lifecycle: `new` → `listening` → (`draining` →) `closed`. */
export type ServerState = 'new' | 'listening' | 'draining' | 'closed';

/** Options of {@link UpcaseServer.close}. */
export interface CloseOptions {
  /**
   * Let open TCP connections finish for up to `drainTimeout` seconds (from the
   * server options) before closing them. Default false: close them at once.
   */
  drain?: boolean;
}

export interface ServerHooks {
  /**
   * Reports each socket step (`upcase serve --trace`), payload included. The
   * native transports do not report reads to JavaScript, so with a tracer `auto`
   * picks the stream and dgram transports, and `native` is refused.
   */
  tracer?: Tracer;
}

/**
 * The upcase server: TCP and UDP on one port number. Use {@link startServer}, or
 * `new UpcaseServer(options)` then `await server.listen()`.
 *
 * Events: `'listening'` (address), `'draining'`, `'close'`.
 */
export class UpcaseServer extends EventEmitter {
  readonly options: NormalizedServerOptions;
  readonly logger: Logger;
  /** What JavaScript counts (plain numbers); the native TCP transport counts apart (see {@link stats}). */
  private readonly counts: ServerStats = createStats();
  private readonly warnings: RateLimitedLog;
  private readonly tracer: Tracer | null;
  private readonly admission: Admission;
  private readonly dispatch: TcpDispatch;
  private bound: Listeners | null = null;
  /** Where the TLS certificate and key come from; reloadTls() reads them again. */
  private tlsSources: { cert: PemSource; key: PemSource } | null = null;
  private stateValue: ServerState = 'new';
  private closing: Promise<void> | null = null;
  private listening: Promise<ServerAddress> | null = null;
  private readonly startTime = Date.now() / 1000;

  constructor(options: ServerOptions = {}, hooks: ServerHooks = {}) {
    super();
    this.options = normalizeServerOptions(options);
    this.tracer = hooks.tracer ?? null;
    if (this.tracer !== null) refuseTracedNative(this.options);
    this.logger = this.options.logger ?? silentLogger();
    this.warnings = new RateLimitedLog(this.logger);
    const { tlsCert, tlsKey, idleTimeout, writeTimeout } = this.options;
    if (tlsCert !== undefined && tlsKey !== undefined) this.tlsSources = { cert: tlsCert, key: tlsKey };
    const context = { stats: this.counts, logger: this.logger, warnings: this.warnings };
    this.dispatch = new TcpDispatch({
      ...context,
      idleTimeoutMs: idleTimeout * 1000,
      writeTimeoutMs: writeTimeout * 1000,
      tracer: this.tracer,
    });
    this.admission = new Admission(
      {
        ...context,
        maxConnections: this.options.maxConnections,
        maxConnectionsPerSource: this.options.maxConnectionsPerSource,
        trustedProxies: this.options.proxyProtocol ? new TrustList(this.options.trustedProxies.map((c) => parseCidr(c)!)) : null,
        proxyHeaderTimeoutMs: this.options.proxyHeaderTimeout * 1000,
      },
      this.dispatch,
    );
  }

  /**
   * The server's counters as of this read: a plain snapshot, what JavaScript counts
   * plus what the native TCP transport counts in C. Read it again for newer values
   * (pass `() => server.stats` to {@link createMetricsRegistry}).
   */
  get stats(): ServerStats {
    return sumStats(this.counts, this.dispatch.native);
  }

  /**
   * The TCP connection limit in force: `maxConnections`, or less when the
   * open-file limit cannot hold that many (see docs/security.md).
   */
  get maxConnections(): number {
    return this.admission.maxConnections;
  }

  /**
   * What this server runs with: build, transports, the limits in force and the TLS
   * certificate (for `upcase_build_info` and the limit gauges). Null until it listens.
   */
  info(): ServerInfo | null {
    if (this.bound === null || this.stateValue === 'new') return null;
    const { idleTimeout, writeTimeout, udpRateLimit, udpRateBurst } = this.options;
    const tcpTransport = this.tcpTransport ?? 'none';
    const certificate = this.dispatch.tls?.credentials.certificate;
    return {
      version: UPCASE_VERSION,
      nodeVersion: process.versions.node,
      tcpTransport,
      tcpCodec: tcpTransport === 'native' ? (tcpCodecPath() ?? 'none') : tcpTransport === 'stream' ? 'js' : 'none',
      udpTransport: this.udpTransport ?? 'none',
      tls: this.dispatch.tls !== null,
      maxConnections: this.admission.maxConnections,
      idleTimeout,
      writeTimeout,
      udpRateLimit,
      udpRateBurst,
      certificate:
        certificate === undefined ? null : { serialNumber: certificate.serialNumber, notAfter: certificate.validTo.getTime() / 1000 },
      startTime: this.startTime,
    };
  }

  /**
   * One page of the open TCP connections, oldest first: addresses, transport, age,
   * bytes, idle time and whether a reply is owed; never payload (docs/operations.md).
   */
  listConnections(query: ConnectionsQuery): ConnectionsPage {
    return this.admission.page(query);
  }

  /** `new` → `listening` → (`draining` →) `closed`. */
  get state(): ServerState {
    return this.stateValue;
  }

  /** The bound address, once listening. */
  address(): ServerAddress {
    if (this.bound === null) throw new ClosedError('the server is not listening');
    return this.bound.address;
  }

  /** Which transport serves plain TCP: `native` or `stream`, or null before listening (or without TCP). */
  get tcpTransport(): 'native' | 'stream' | null {
    if (this.bound?.tcp == null) return null;
    return this.dispatch.native === null ? 'stream' : 'native';
  }

  /** Which transport serves UDP: `native` or `dgram`, or null before listening (or without UDP). */
  get udpTransport(): 'native' | 'dgram' | null {
    return this.bound?.udp?.transport ?? null;
  }

  /**
   * Datagrams the kernel dropped for the UDP port (receive buffer full), since the socket
   * was bound; null without UDP, before listening, or off Linux. Exported as
   * `upcase_udp_kernel_drops_total`.
   */
  udpKernelDrops(): number | null {
    const udp = this.bound?.udp ?? null;
    return udp === null ? null : udpKernelDrops(udp.port);
  }

  /** Open TCP connections now. */
  get connectionCount(): number {
    return this.admission.size;
  }

  /**
   * Binds the listeners. Rejects with a `NetworkError` (`UPCASE_ERR_LISTEN`) naming
   * port and transport, or `UPCASE_ERR_CLOSED` if `close()` is called meanwhile.
   */
  listen(): Promise<ServerAddress> {
    if (this.stateValue !== 'new') {
      return Promise.reject(new ClosedError(`cannot listen: the server is ${this.stateValue}`));
    }
    if (this.listening !== null) {
      return Promise.reject(new ClosedError('cannot listen: listen() is already in progress'));
    }
    const listening = this.bind();
    this.listening = listening;
    // After a failed listen() (port in use, …) the server may try again.
    listening.catch(() => {
      if (this.listening === listening && this.closing === null) this.listening = null;
    });
    return listening;
  }

  private async bind(): Promise<ServerAddress> {
    const { host, port, tcp, udp } = this.options;
    if (this.tlsSources !== null) {
      // Certificate problems are found before anything is bound (TlsError, UPCASE_ERR_TLS).
      const credentials = await loadTlsCredentials(this.tlsSources.cert, this.tlsSources.key);
      this.dispatch.tls = new TlsAcceptor({ credentials, handshakeTimeoutMs: this.options.tlsHandshakeTimeout * 1000 });
    }
    // Before anything is bound, so that a failure here leaves nothing listening.
    if (tcp && this.dispatch.native === null) this.dispatch.native = this.createNativeTcp();
    const handlers: TcpListenerHandlers = {
      connection: (socket, transport) => this.admission.admit(socket, transport),
      // `maxConnections` is one budget for the plain and the TLS listener together.
      dropped: (transport, remoteAddress) => this.admission.dropped(transport, remoteAddress),
      acceptFailed: (transport, err) => {
        countError(this.counts, err.code);
        this.warnings.warn(`${transport}:accept:${err.code}`, { transport, code: err.code }, 'accept failed');
      },
    };
    const udpContext = { options: this.options, stats: this.counts, logger: this.logger, warnings: this.warnings, tracer: this.tracer };
    const listeners = await bindListeners(
      { host, port, tcp, udp, tlsPort: this.dispatch.tls === null ? null : this.options.tlsPort },
      {
        tcp: (address, p, transport) => listenTcp(address, p, transport, this.options.maxConnections, handlers),
        udp: (address, p) => bindUdp(address, p, udpContext),
      },
    );
    this.bound = listeners;
    if (this.closing !== null) {
      // close() was called while we were binding; it closes what we bound once we return.
      throw new ClosedError('the server was closed while it was starting');
    }
    this.fitConnectionLimit(listeners);
    this.stateValue = 'listening';
    const bound = listeners.address;
    const { idleTimeout, writeTimeout, udpRateLimit, udpRateBurst, udpAllowLowPorts } = this.options;
    const limits = {
      maxConnections: this.admission.maxConnections,
      idleTimeout,
      writeTimeout,
      udpRateLimit,
      udpRateBurst,
      udpAllowLowPorts,
    };
    const udpTransport = this.udpTransport ?? undefined;
    const tcpTransport = this.tcpTransport ?? undefined;
    // The C codec's block path (avx512, sse2, scalar): what bulk throughput depends on.
    const tcpCodec = tcpTransport === 'native' ? tcpCodecPath() : undefined;
    this.logger.info({ ...bound, transports: bound.transports.join('+'), tcpTransport, tcpCodec, udpTransport, ...limits }, 'listening');
    if (this.dispatch.tls !== null) this.logCertificate(this.dispatch.tls.credentials, 'tls certificate loaded');
    if (this.tracer !== null) this.traceListening(bound);
    this.emit('listening', bound);
    return bound;
  }

  /** The native TCP transport if chosen and built. */
  private createNativeTcp(): NativeTcpTransport | null {
    const binding = chooseNativeTcp(this.options.tcpTransport, this.tracer !== null, this.logger);
    if (binding === null) return null;
    const { idleTimeout, writeTimeout } = this.options;
    return new NativeTcpTransport(binding, { idleTimeoutMs: idleTimeout * 1000, writeTimeoutMs: writeTimeout * 1000 });
  }

  /**
   * Past the open-file limit, accept() fails and libuv silently sheds the
   * connections, so lower the limit to what fits: refusals are then counted and logged.
   */
  private fitConnectionLimit(listeners: Listeners): void {
    const servers = [listeners.tcp, listeners.tls].filter((s): s is net.Server => s !== null);
    if (servers.length === 0) return;
    const fit = connectionsThatFit();
    if (fit !== undefined && fit < this.options.maxConnections) {
      this.admission.maxConnections = fit;
      this.logger.warn(
        { maxConnections: this.options.maxConnections, effective: fit },
        'max connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE)',
      );
    }
    for (const server of servers) server.maxConnections = this.admission.maxConnections;
  }

  /** The listeners, in the textbook's words: the welcoming socket, the UDP server socket. */
  private traceListening(bound: ServerAddress): void {
    const tracer = this.tracer!;
    for (const transport of bound.transports) {
      const port = transport === 'tls' ? bound.tlsPort! : bound.port;
      tracer({ type: 'listening', transport, local: { address: bound.host, port } });
    }
  }

  private logCertificate(credentials: TlsCredentials, message: string): void {
    const { certificate: c, certName } = credentials;
    this.logger.info(
      {
        cert: certName,
        subject: c.subject,
        issuer: c.issuer,
        serialNumber: c.serialNumber,
        fingerprint256: c.fingerprint256,
        validTo: c.validTo.toISOString(),
      },
      message,
    );
    const now = Date.now();
    if (c.validTo.getTime() < now || c.validFrom.getTime() > now) {
      this.logger.warn(
        { cert: certName, validFrom: c.validFrom.toISOString(), validTo: c.validTo.toISOString(), code: 'UPCASE_ERR_TLS' },
        'tls certificate is not valid now: clients will refuse it',
      );
    }
  }

  /**
   * Reads the TLS certificate and key again (from their files) and uses them for
   * new connections; open connections go on with what they negotiated. With
   * `sources`, uses those from now on instead. Resolves to the new certificate's
   * details. If the new certificate or key is unusable, rejects with a
   * `TlsError` (`UPCASE_ERR_TLS`) and keeps the old ones; rejects with
   * `UPCASE_ERR_CLOSED` unless TLS is on and the server is listening.
   * `upcase serve` calls this on SIGHUP.
   */
  async reloadTls(sources?: { cert: PemSource; key: PemSource }): Promise<CertificateInfo> {
    const next = sources ?? this.tlsSources;
    if (this.dispatch.tls === null || next === null || this.stateValue !== 'listening') {
      throw new ClosedError(`cannot reload TLS: ${this.dispatch.tls === null ? 'TLS is not on' : `the server is ${this.stateValue}`}`);
    }
    const credentials = await loadTlsCredentials(next.cert, next.key);
    this.dispatch.tls.setCredentials(credentials);
    this.tlsSources = next;
    this.logCertificate(credentials, 'tls certificate reloaded');
    return credentials.certificate;
  }

  /**
   * Stops the listeners and closes UDP. With `{ drain: true }`, open TCP
   * connections may finish for up to `drainTimeout` seconds; the rest are then
   * destroyed. Idempotent: every call returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = this.doClose(options.drain === true);
    return this.closing;
  }

  private async doClose(drain: boolean): Promise<void> {
    const wasListening = this.stateValue === 'listening';
    this.stateValue = 'draining';
    this.emit('draining');
    // A listen() in progress is let finish (or fail) first, so that what it binds is closed here.
    if (this.listening !== null) await this.listening.catch(() => undefined);
    const listeners = this.bound;
    const tcpClosed = Promise.all([listeners?.tcp, listeners?.tls].map((server) => (server == null ? undefined : closeServer(server))));
    if (listeners?.udp != null) await listeners.udp.close();
    if (drain && this.admission.size > 0) await this.drain();
    this.admission.destroyAll();
    await Promise.all([tcpClosed, this.dispatch.native?.close()]);
    this.warnings.flush();
    this.stateValue = 'closed';
    if (wasListening) this.logger.info('closed');
    this.emit('close');
  }

  /** Waits up to `drainTimeout` seconds for the open connections to finish. */
  private async drain(): Promise<void> {
    const { drainTimeout } = this.options;
    this.logger.info({ connections: this.admission.size, drainTimeout }, 'draining');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, drainTimeout * 1000);
      timer.unref();
    });
    await Promise.race([this.admission.whenEmpty(), timeout]);
    clearTimeout(timer);
    if (this.admission.size > 0) {
      this.logger.warn({ connections: this.admission.size, drainTimeout }, 'drain timeout: closing open connections');
    }
  }
}

/** Creates a server and waits until it listens. */
export async function startServer(options: ServerOptions = {}, hooks: ServerHooks = {}): Promise<UpcaseServer> {
  const server = new UpcaseServer(options, hooks);
  await server.listen();
  return server;
}
