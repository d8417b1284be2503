import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import { type AddonUnavailable, addonFix } from '../addons.js';
import { ClosedError, InvalidArgumentError, type NetworkError, networkError } from '../errors.js';
import { normalizeServerOptions, type NormalizedServerOptions, type ServerOptions } from '../options.js';
import { readProxyHeader, type ProxyHeaderResult } from '../proxy/accept.js';
import { parseCidr, TrustList } from '../proxy/trust.js';
import { handleConnection } from '../tcp/connection.js';
import {
  loadNativeTcp,
  NativeTcpTransport,
  nativeTcpProblem,
  nativeTcpStatus,
  type NativeCloseReason,
  type NativeTcpCounters,
  tcpCodecPath,
} from '../tcp/native.js';
import { type CertificateInfo, loadTlsCredentials, type PemSource, type TlsCredentials } from '../tls/credentials.js';
import { TlsAcceptor } from '../tls/server.js';
import type { Tracer } from '../trace.js';
import { createDatagramHandler, DatagramPolicy, type DatagramOptions } from '../udp/handler.js';
import { udpKernelDrops } from '../udp/kernel-drops.js';
import { loadNativeUdp, NativeUdpListener, nativeUdpProblem, nativeUdpStatus } from '../udp/native.js';
import { UPCASE_VERSION } from '../version.js';
import {
  type ConnectionCounters,
  type ConnectionEntry,
  type ConnectionsPage,
  type ConnectionsQuery,
  ConnectionTable,
} from './connections.js';
import { connectionsThatFit } from './fd-limit.js';
import type { ServerInfo } from './info.js';
import { SourceLimit } from './source-limit.js';
import { RateLimitedLog, safeAddress, silentLogger } from '../log.js';
import { countError, createStats, type ServerStats } from '../stats.js';

/** A server's lifecycle: `new` → `listening` → (`draining` →) `closed`. */
export type ServerState = 'new' | 'listening' | 'draining' | 'closed';

/** Where a listening server is: the bound host and port, its transports, and the TLS port if TLS is on. */
export interface ServerAddress {
  /** The address the listeners are bound to, e.g. `::` or `127.0.0.1`. */
  host: string;
  /** The port, the same for TCP and UDP (the TLS port when neither runs). */
  port: number;
  /** Which transports are listening. */
  transports: Array<'tcp' | 'udp' | 'tls'>;
  /** The port of the TLS listener (same host), or null without TLS. */
  tlsPort: number | null;
}

/** Options of {@link UpcaseServer.close}. */
export interface CloseOptions {
  /**
   * Let open TCP connections finish for up to `drainTimeout` seconds (from the
   * server options) before closing them. Default false: close them at once.
   */
  drain?: boolean;
}

const DEFAULT_HOSTS = ['::', '0.0.0.0'];
/** Receive and send buffers of the UDP socket, both transports (native/udp_batch.c sets the same). */
const UDP_BUFFER_BYTES = 4 << 20;

export interface ServerHooks {
  /**
   * Reports each socket step (`upcase serve --trace`), payload included. The
   * native transports do not report reads to JavaScript, so with a tracer `auto`
   * picks the stream and dgram transports, and `native` is refused.
   */
  tracer?: Tracer;
}

/** A bound UDP listener, whichever transport serves it. */
interface UdpListener {
  readonly transport: 'native' | 'dgram';
  readonly port: number;
  close(): Promise<void>;
}
// With port 0 the OS picks a TCP port; if that number is taken for UDP, try another.
const EPHEMERAL_ATTEMPTS = 20;

/**
 * The upcase server: TCP and UDP on one port number. Use {@link startServer}, or
 * `new UpcaseServer(options)` then `await server.listen()`.
 *
 * Events: `'listening'` (address), `'draining'`, `'close'`.
 */
export class UpcaseServer extends EventEmitter {
  readonly options: NormalizedServerOptions;
  readonly stats: ServerStats = createStats();
  readonly logger: Logger;
  private readonly warnings: RateLimitedLog;
  /** Peers allowed to send PROXY headers; null when `proxyProtocol` is off. */
  private readonly trustedProxies: TrustList | null;
  private tcpServer: net.Server | null = null;
  private tlsServer: net.Server | null = null;
  private tls: TlsAcceptor | null = null;
  /** Where the TLS certificate and key come from; reloadTls() reads them again. */
  private tlsSources: { cert: PemSource; key: PemSource } | null = null;
  private udpSocket: UdpListener | null = null;
  /** Serves plain TCP connections when the native TCP transport is in use. */
  private nativeTcp: NativeTcpTransport | null = null;
  /** Open TCP connections: sockets, or natively served connections. */
  private readonly connections = new Set<{ destroy(): void }>();
  private bound: ServerAddress | null = null;
  private stateValue: ServerState = 'new';
  private closing: Promise<void> | null = null;
  private listening: Promise<ServerAddress> | null = null;
  private maxConnectionsValue: number;
  /** Open connections per source address (`maxConnectionsPerSource`). */
  private readonly perSource: SourceLimit;
  /** The open connections with their addresses and counters, for `/connections`. */
  private readonly table = new ConnectionTable();
  private readonly startTime = Date.now() / 1000;
  private readonly tracer: Tracer | null;
  /** Connection sockets accepted so far, numbered for the trace. */
  private accepted = 0;

  constructor(options: ServerOptions = {}, hooks: ServerHooks = {}) {
    super();
    this.options = normalizeServerOptions(options);
    this.tracer = hooks.tracer ?? null;
    if (this.tracer !== null) {
      if (this.options.tcpTransport === 'native') throw tracedNative('tcpTransport', 'stream');
      if (this.options.udpTransport === 'native') throw tracedNative('udpTransport', 'dgram');
    }
    this.logger = this.options.logger ?? silentLogger();
    this.warnings = new RateLimitedLog(this.logger);
    this.trustedProxies = this.options.proxyProtocol ? new TrustList(this.options.trustedProxies.map((c) => parseCidr(c)!)) : null;
    const { tlsCert, tlsKey } = this.options;
    if (tlsCert !== undefined && tlsKey !== undefined) this.tlsSources = { cert: tlsCert, key: tlsKey };
    this.maxConnectionsValue = this.options.maxConnections;
    this.perSource = new SourceLimit(this.options.maxConnectionsPerSource);
  }

  /**
   * The TCP connection limit in force: `maxConnections`, or less when the
   * open-file limit cannot hold that many (see docs/security.md).
   */
  get maxConnections(): number {
    return this.maxConnectionsValue;
  }

  /**
   * What this server runs with: build, transports, the limits in force and the TLS
   * certificate (for `upcase_build_info` and the limit gauges). Null until it listens.
   */
  info(): ServerInfo | null {
    if (this.bound === null || this.stateValue === 'new') return null;
    const { idleTimeout, writeTimeout, udpRateLimit, udpRateBurst } = this.options;
    const tcpTransport = this.tcpTransport ?? 'none';
    const certificate = this.tls?.credentials.certificate;
    return {
      version: UPCASE_VERSION,
      nodeVersion: process.versions.node,
      tcpTransport,
      tcpCodec: tcpTransport === 'native' ? (tcpCodecPath() ?? 'none') : tcpTransport === 'stream' ? 'js' : 'none',
      udpTransport: this.udpTransport ?? 'none',
      tls: this.tls !== null,
      maxConnections: this.maxConnectionsValue,
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
    return this.table.page(query);
  }

  /** `new` → `listening` → (`draining` →) `closed`. */
  get state(): ServerState {
    return this.stateValue;
  }

  /** The bound address, once listening. */
  address(): ServerAddress {
    if (this.bound === null) throw new ClosedError('the server is not listening');
    return this.bound;
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
    const listening = this.bindListeners();
    this.listening = listening;
    // After a failed listen() (port in use, …) the server may try again.
    listening.catch(() => {
      if (this.listening === listening && this.closing === null) this.listening = null;
    });
    return listening;
  }

  private async bindListeners(): Promise<ServerAddress> {
    const { host, port } = this.options;
    if (this.tlsSources !== null) {
      // Certificate problems are found before anything is bound (TlsError, UPCASE_ERR_TLS).
      const credentials = await loadTlsCredentials(this.tlsSources.cert, this.tlsSources.key);
      this.tls = new TlsAcceptor({ credentials, handshakeTimeoutMs: this.options.tlsHandshakeTimeout * 1000 });
    }
    // Before anything is bound, so that a failure here leaves nothing listening.
    if (this.options.tcp && this.nativeTcp === null) this.nativeTcp = this.createNativeTcp();
    const hosts = host === undefined ? DEFAULT_HOSTS : [await resolveHost(host, port, this.options.tcp ? 'tcp' : 'udp')];
    let lastError: unknown;
    for (const address of hosts) {
      try {
        this.bound = await this.bindAll(address, port);
        break;
      } catch (err) {
        lastError = err;
        // Without IPv6, `::` fails with EAFNOSUPPORT or EADDRNOTAVAIL: fall back to IPv4.
        const code = (err as NetworkError).syscallCode;
        if (host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
      }
    }
    if (this.bound === null) throw lastError;
    if (this.closing !== null) {
      // close() was called while we were binding; it closes what we bound once we return.
      throw new ClosedError('the server was closed while it was starting');
    }
    this.fitConnectionLimit();
    this.stateValue = 'listening';
    const { idleTimeout, writeTimeout, udpRateLimit, udpRateBurst, udpAllowLowPorts } = this.options;
    const limits = { maxConnections: this.maxConnectionsValue, idleTimeout, writeTimeout, udpRateLimit, udpRateBurst, udpAllowLowPorts };
    const udpTransport = this.udpTransport ?? undefined;
    const tcpTransport = this.tcpTransport ?? undefined;
    // The C codec's block path (avx512, sse2, scalar): what bulk throughput depends on.
    const tcpCodec = tcpTransport === 'native' ? tcpCodecPath() : undefined;
    this.logger.info(
      { ...this.bound, transports: this.bound.transports.join('+'), tcpTransport, tcpCodec, udpTransport, ...limits },
      'listening',
    );
    if (this.tls !== null) this.logCertificate(this.tls.credentials, 'tls certificate loaded');
    if (this.tracer !== null) this.traceListening(this.bound);
    this.emit('listening', this.bound);
    return this.bound;
  }

  private async bindAll(address: string, port: number): Promise<ServerAddress> {
    const { tcp, udp } = this.options;
    for (let attempt = 1; ; attempt++) {
      let tcpServer: net.Server | null = null;
      let actualPort = port;
      if (tcp) {
        tcpServer = await this.listenTcp(address, port);
        actualPort = (tcpServer.address() as net.AddressInfo).port;
      }
      if (udp) {
        try {
          this.udpSocket = await this.bindUdp(address, actualPort);
          if (!tcp) actualPort = this.udpSocket.port;
        } catch (err) {
          if (tcpServer !== null) await closeServer(tcpServer);
          const retry = port === 0 && tcp && (err as NetworkError).syscallCode === 'EADDRINUSE' && attempt < EPHEMERAL_ATTEMPTS;
          if (retry) continue;
          throw err;
        }
      }
      let tlsPort: number | null = null;
      if (this.tls !== null) {
        try {
          this.tlsServer = await this.listenTcp(address, this.options.tlsPort, 'tls');
        } catch (err) {
          if (tcpServer !== null) await closeServer(tcpServer);
          await this.udpSocket?.close();
          this.udpSocket = null;
          throw err;
        }
        tlsPort = (this.tlsServer.address() as net.AddressInfo).port;
        if (!tcp && !udp) actualPort = tlsPort;
      }
      this.tcpServer = tcpServer;
      const transports: ServerAddress['transports'] = [];
      if (tcp) transports.push('tcp');
      if (udp) transports.push('udp');
      if (tlsPort !== null) transports.push('tls');
      return { host: address, port: actualPort, transports, tlsPort };
    }
  }

  /**
   * Past the open-file limit, accept() fails and libuv silently sheds the
   * connections, so lower the limit to what fits: refusals are then counted and logged.
   */
  private fitConnectionLimit(): void {
    if (this.tcpServer === null && this.tlsServer === null) return;
    const fit = connectionsThatFit();
    if (fit !== undefined && fit < this.options.maxConnections) {
      this.maxConnectionsValue = fit;
      this.logger.warn(
        { maxConnections: this.options.maxConnections, effective: fit },
        'max connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE)',
      );
    }
    for (const server of [this.tcpServer, this.tlsServer]) if (server !== null) server.maxConnections = this.maxConnectionsValue;
  }

  /** A TCP listener; `transport` 'tls' hands its connections to the TLS layer after the PROXY header, if any. */
  private listenTcp(address: string, port: number, transport: 'tcp' | 'tls' = 'tcp'): Promise<net.Server> {
    // 64 KiB socket buffers (Node's default is 16 KiB): with a 64 KiB read, a 16 KiB
    // high-water mark pauses reading after nearly every reply in bulk transfers.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: 64 * 1024 }, (socket) =>
      this.onConnection(socket, transport),
    );
    server.maxConnections = this.options.maxConnections;
    // Node closes the accepted handle at once, then emits 'drop'.
    server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) => this.refused(transport, info?.remoteAddress));
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => reject(networkError({ op: 'listen' }, { transport, address, port }, err));
      server.once('error', onListenError);
      server.listen({ host: address, port, ipv6Only: false, backlog: 4096 }, () => {
        server.off('error', onListenError);
        // After listen, errors come from accept(). libuv handles EMFILE/ENFILE itself
        // (its reserve-fd trick sheds the pending connections without telling us), so
        // what arrives here is rarer; count it, log it rate-limited and go on.
        server.on('error', (err: NodeJS.ErrnoException) => {
          countError(this.stats, err.code);
          this.warnings.warn(`${transport}:accept:${err.code}`, { transport, code: err.code }, 'accept failed');
        });
        resolve(server);
      });
    });
  }

  /** The native TCP transport if chosen and built; what it counts joins the stats. */
  private createNativeTcp(): NativeTcpTransport | null {
    const choice = this.options.tcpTransport;
    const binding = choice === 'stream' || this.tracer !== null ? null : loadNativeTcp();
    const problem = nativeTcpProblem();
    if (choice === 'native' && binding === null) throw nativeMissing('TCP', nativeTcpStatus().unavailable!, 'stream');
    if (binding === null && choice === 'auto' && problem !== null) {
      this.logger.warn({ problem }, 'native TCP transport not used; serving TCP with streams');
    }
    if (binding === null) return null;
    const { idleTimeout, writeTimeout } = this.options;
    const transport = new NativeTcpTransport(binding, { idleTimeoutMs: idleTimeout * 1000, writeTimeoutMs: writeTimeout * 1000 });
    addNativeCounters(this.stats, transport);
    return transport;
  }

  /** Which transport serves plain TCP: `native` or `stream`, or null before listening (or without TCP). */
  get tcpTransport(): 'native' | 'stream' | null {
    if (this.tcpServer === null) return null;
    return this.nativeTcp === null ? 'stream' : 'native';
  }

  private datagramOptions(): DatagramOptions {
    return {
      stats: this.stats,
      logger: this.logger,
      warnings: this.warnings,
      udpRateLimit: this.options.udpRateLimit,
      udpRateBurst: this.options.udpRateBurst,
      udpAllowLowPorts: this.options.udpAllowLowPorts,
      dropRate: this.options.dropRate,
      tracer: this.tracer ?? undefined,
    };
  }

  /**
   * Datagrams the kernel dropped for the UDP port (receive buffer full), since the socket
   * was bound; null without UDP, before listening, or off Linux. Exported as
   * `upcase_udp_kernel_drops_total`.
   */
  udpKernelDrops(): number | null {
    return this.udpSocket === null ? null : udpKernelDrops(this.udpSocket.port);
  }

  /** Which transport serves UDP: `native` or `dgram`, or null before listening (or without UDP). */
  get udpTransport(): 'native' | 'dgram' | null {
    return this.udpSocket?.transport ?? null;
  }

  private async bindUdp(address: string, port: number): Promise<UdpListener> {
    const choice = this.options.udpTransport;
    // In a cluster worker, `auto` keeps node:dgram: node:cluster shares one socket between
    // workers. An explicit `native` gives each worker its own socket with SO_REUSEPORT.
    const inWorker = cluster.isWorker;
    const native = choice === 'dgram' || (choice === 'auto' && inWorker) || this.tracer !== null ? null : loadNativeUdp();
    const problem = nativeUdpProblem();
    if (choice === 'native' && native === null) throw nativeMissing('UDP', nativeUdpStatus().unavailable!, 'dgram');
    if (native === null && choice === 'auto' && problem !== null) {
      this.logger.warn({ problem }, 'native UDP transport not used; serving UDP with node:dgram');
    }
    if (native !== null) {
      try {
        const policy = new DatagramPolicy(this.datagramOptions());
        const listener = new NativeUdpListener(native, address, port, net.isIPv6(address) ? 6 : 4, policy, this.logger, inWorker);
        policy.localPort = listener.port; // the loop guard, as for node:dgram
        return { transport: 'native', port: listener.port, close: async () => listener.close() };
      } catch (err) {
        throw networkError({ op: 'listen' }, { transport: 'udp', address, port }, err);
      }
    }
    const socket = await this.bindDgram(address, port);
    return {
      transport: 'dgram',
      port: socket.address().port,
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    };
  }

  private bindDgram(address: string, port: number): Promise<dgram.Socket> {
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
          countError(this.stats, err.code);
          this.warnings.warn(`udp:${err.code}`, { transport: 'udp', code: err.code }, 'udp socket error');
        });
        socket.on('message', createDatagramHandler(socket, { ...this.datagramOptions(), localPort: socket.address().port }));
        resolve(socket);
      });
    });
  }

  /** `maxConnections` is one budget for the plain and the TLS listener together. */
  private refused(transport: 'tcp' | 'tls', remoteAddress: string | undefined): void {
    this.stats.connectionsRefused++;
    this.warnings.warn(
      'tcp:max_connections',
      { transport, remoteAddress: safeAddress(remoteAddress), limit: this.maxConnectionsValue },
      'connection refused: max connections reached',
    );
  }

  private refusedPerSource(transport: 'tcp' | 'tls', remoteAddress: string | undefined): void {
    this.stats.connectionsRefusedPerSource++;
    this.warnings.warn(
      'tcp:max_connections_per_source',
      { transport, remoteAddress: safeAddress(remoteAddress), limit: this.options.maxConnectionsPerSource },
      'connection refused: max connections per source reached',
    );
  }

  private onConnection(socket: net.Socket, transport: 'tcp' | 'tls' = 'tcp'): void {
    const { stats } = this;
    if (this.connections.size >= this.maxConnectionsValue) {
      // Each listener's own maxConnections only counts its own connections.
      this.refused(transport, socket.remoteAddress);
      socket.destroy();
      return;
    }
    if (this.trustedProxies !== null && socket.remoteAddress === undefined) {
      // Reset before we got to it (as HAProxy's health checks do): nobody to refuse.
      stats.proxyRejected.truncated++;
      socket.destroy();
      return;
    }
    if (this.trustedProxies !== null && !this.trustedProxies.has(socket.remoteAddress)) {
      // PROXY protocol is on: only a trusted balancer may speak here, or anyone could claim any address.
      stats.proxyRejected.untrusted++;
      this.warnings.warn(
        'tcp:proxy_untrusted',
        { transport, remoteAddress: safeAddress(socket.remoteAddress), remotePort: socket.remotePort, reason: 'untrusted' },
        'connection refused: peer is not a trusted proxy',
      );
      socket.resetAndDestroy();
      return;
    }
    // Without PROXY protocol the client is the peer: its per-source count is taken now, before
    // the connection is counted; with it, once the header has named the client (in serve()).
    let sourceHeld: string | null = null;
    if (this.trustedProxies === null) {
      sourceHeld = this.perSource.acquire(socket.remoteAddress);
      if (sourceHeld === null) {
        this.refusedPerSource(transport, socket.remoteAddress);
        socket.destroy();
        return;
      }
    }
    stats.connectionsOpen++;
    stats.connectionsTotal++;
    this.connections.add(socket);
    const entry = this.table.open(transport, { address: socket.remoteAddress, port: socket.remotePort });
    if (this.trustedProxies !== null) entry.state = 'proxy';
    // Log lines name the client: the real peer, or with PROXY protocol the address from the
    // header (filled in below, once it has arrived), with the balancer as proxyAddress.
    const logFields: Record<string, unknown> = {
      transport,
      remoteAddress: safeAddress(socket.remoteAddress),
      remotePort: socket.remotePort,
    };
    const { idleTimeout, writeTimeout } = this.options;
    const closed = (connection: { destroy(): void }): void => this.connectionClosed(connection, entry, logFields);
    const releaseSource = (): void => {
      if (sourceHeld !== null) this.perSource.release(sourceHeld);
      sourceHeld = null;
    };
    const onSocketClose = (): void => {
      releaseSource();
      closed(socket);
    };
    socket.once('close', onSocketClose);
    // The client, for logs and for anything keyed per address: with PROXY protocol, the
    // address from the header (any per-address TCP limit must use this, not the socket's).
    const serve = (
      client: { address: string | undefined; port: number | undefined },
      proxy?: { address: string | undefined; port: number | undefined; version: 1 | 2 },
    ): void => {
      if (proxy !== undefined || sourceHeld === null) {
        // Behind a balancer: the client from the header (or, for LOCAL/UNKNOWN, the balancer itself).
        sourceHeld = this.perSource.acquire(client.address);
        if (sourceHeld === null) {
          this.refusedPerSource(transport, client.address);
          socket.destroy();
          return;
        }
      }
      logFields.remoteAddress = safeAddress(client.address);
      logFields.remotePort = client.port;
      entry.clientAddress = client.address;
      entry.clientPort = client.port;
      entry.state = 'open';
      if (proxy !== undefined) {
        logFields.proxyAddress = safeAddress(proxy.address);
        logFields.proxyVersion = proxy.version;
        entry.proxy = proxy;
      }
      const counters: ConnectionCounters = { bytesIn: 0, bytesOut: 0, lastActive: Date.now() };
      const streamFigures = (stream: { writableLength: number }) => (now: number) => ({
        bytesIn: counters.bytesIn,
        bytesOut: counters.bytesOut,
        idleMs: now - counters.lastActive,
        owedBytes: stream.writableLength,
      });
      const connectionOptions = {
        counters,
        stats,
        logger: this.logger,
        ownsChunks: true,
        idleTimeoutMs: idleTimeout * 1000,
        writeTimeoutMs: writeTimeout * 1000,
        logFields,
        trace: this.traceAccept(transport, client),
      };
      if (transport === 'tcp' || this.tls === null) {
        this.logger.debug(logFields, 'connection open');
        if (this.nativeTcp !== null) {
          // The addon takes the connection over and the socket is destroyed: its
          // 'close' is not this connection's.
          socket.off('close', onSocketClose);
          if (this.adoptNative(this.nativeTcp, socket, entry, logFields, sourceHeld)) return;
          socket.once('close', onSocketClose);
        }
        entry.engine = 'stream';
        entry.figures = streamFigures(socket);
        handleConnection(socket, connectionOptions);
        return;
      }
      entry.state = 'handshake';
      this.tls.accept(socket, {
        secure: (secure) => {
          entry.state = 'open';
          entry.engine = 'stream';
          entry.figures = streamFigures(secure);
          counters.lastActive = Date.now();
          stats.tlsHandshakes++;
          logFields.tlsProtocol = secure.getProtocol();
          this.logger.debug(logFields, 'connection open');
          handleConnection(secure, { ...connectionOptions, tls: true });
        },
        failed: (err) => this.tlsHandshakeFailed(err, logFields),
      });
    };
    const peer = { address: socket.remoteAddress, port: socket.remotePort };
    if (this.trustedProxies === null) {
      serve(peer);
      return;
    }
    readProxyHeader(socket, this.options.proxyHeaderTimeout * 1000, (result) => {
      if (!result.ok) {
        this.rejectProxyHeader(socket, result, logFields);
        return;
      }
      stats.proxyAccepted++;
      const { header } = result;
      // LOCAL (health checks), v1 UNKNOWN and v2 UNSPEC/UNIX carry no client address: the peer stands.
      if (header.source === null) serve(peer);
      else serve(header.source, { address: peer.address, port: peer.port, version: header.version });
      // readProxyHeader leaves it paused with the bytes after the header unshifted; TLS
      // reads those itself (the socket must stay paused, or they would flow past it).
      if (transport === 'tcp') socket.resume();
    });
  }

  /**
   * Hands `socket` to the native transport. A method of its own, not a closure in onConnection:
   * the close callback lives as long as the connection, and a closure there would keep
   * onConnection's scope, and with it the destroyed net.Socket, alive (about 1 KiB each).
   */
  private adoptNative(
    nativeTcp: NativeTcpTransport,
    socket: net.Socket,
    entry: ConnectionEntry,
    logFields: Record<string, unknown>,
    sourceHeld: string | null,
  ): boolean {
    const native = nativeTcp.adopt(socket, (reason, code, message) => {
      this.nativeClosed(reason, code, message, logFields);
      if (sourceHeld !== null) this.perSource.release(sourceHeld);
      this.connectionClosed(native!, entry, logFields);
    });
    if (native === null) return false;
    this.connections.delete(socket);
    this.connections.add(native);
    entry.engine = 'native';
    entry.figures = () => native.figures();
    return true;
  }

  /** A served connection has closed, by whichever transport: the one close path. */
  private connectionClosed(connection: { destroy(): void }, entry: ConnectionEntry, logFields: Record<string, unknown>): void {
    this.stats.connectionsOpen--;
    this.connections.delete(connection);
    this.table.close(entry);
    this.logger.debug(logFields, 'connection closed');
    if (this.stateValue === 'draining' && this.connections.size === 0) this.emit('drained');
  }

  /** The listeners, in the textbook's words: the welcoming socket, the UDP server socket. */
  private traceListening(bound: ServerAddress): void {
    const tracer = this.tracer!;
    for (const transport of bound.transports) {
      const port = transport === 'tls' ? bound.tlsPort! : bound.port;
      tracer({ type: 'listening', transport, local: { address: bound.host, port } });
    }
  }

  /** accept() has made connection socket #n; undefined when not tracing. */
  private traceAccept(
    transport: 'tcp' | 'tls',
    client: { address: string | undefined; port: number | undefined },
  ): { tracer: Tracer; id: number } | undefined {
    if (this.tracer === null) return undefined;
    const id = ++this.accepted;
    this.tracer({ type: 'accept', transport, id, client: { address: client.address ?? '?', port: client.port ?? 0 } });
    return { tracer: this.tracer, id };
  }

  /** Counts and logs how a natively served connection ended, as handleConnection does. */
  private nativeClosed(
    reason: NativeCloseReason,
    code: string | undefined,
    message: string | undefined,
    logFields: Record<string, unknown>,
  ): void {
    // The addon counted timeouts already (NativeTcpCounters), as they happened.
    if (reason === 'idle') {
      this.logger.debug({ ...logFields, code: 'UPCASE_ERR_TIMEOUT' }, 'idle timeout; closing');
    } else if (reason === 'stall') {
      this.logger.debug({ ...logFields, code: 'UPCASE_ERR_TIMEOUT' }, 'client left replies unread; closing');
    } else if (reason === 'error') {
      countError(this.stats, code);
      this.logger.debug({ ...logFields, code, err: message }, 'connection error');
    }
  }

  private rejectProxyHeader(
    socket: net.Socket,
    result: Extract<ProxyHeaderResult, { ok: false }>,
    logFields: Record<string, unknown>,
  ): void {
    this.stats.proxyRejected[result.reason]++;
    if (result.error !== undefined) countError(this.stats, result.error.code);
    const fields = { ...logFields, reason: result.reason, code: 'UPCASE_ERR_PROXY_PROTOCOL', err: result.message };
    if (result.reason === 'truncated' && result.bytes === 0) {
      // Connect-then-close is what plain TCP health checks do: not worth a warning.
      this.logger.debug(fields, 'connection closed before a PROXY header');
    } else {
      this.warnings.warn(`tcp:proxy_${result.reason}`, fields, 'PROXY header rejected; closing');
    }
    socket.destroy();
  }

  private tlsHandshakeFailed(err: NodeJS.ErrnoException, logFields: Record<string, unknown>): void {
    this.stats.tlsHandshakeErrors++;
    countError(this.stats, err.code);
    const fields = { ...logFields, code: err.code, err: err.message };
    if (err.code === 'ECONNRESET') {
      // Connect-then-close (health checks, port scans) is not worth a warning.
      this.logger.debug(fields, 'tls handshake: peer went away');
    } else {
      this.warnings.warn(`tls:handshake:${err.code}`, fields, 'tls handshake failed; closing');
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
    if (this.tls === null || next === null || this.stateValue !== 'listening') {
      throw new ClosedError(`cannot reload TLS: ${this.tls === null ? 'TLS is not on' : `the server is ${this.stateValue}`}`);
    }
    const credentials = await loadTlsCredentials(next.cert, next.key);
    this.tls.setCredentials(credentials);
    this.tlsSources = next;
    this.logCertificate(credentials, 'tls certificate reloaded');
    return credentials.certificate;
  }

  /** Open TCP connections now. */
  get connectionCount(): number {
    return this.connections.size;
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
    const tcpClosed = Promise.all([this.tcpServer, this.tlsServer].map((server) => (server === null ? undefined : closeServer(server))));
    if (this.udpSocket !== null) await this.udpSocket.close();
    if (drain && this.connections.size > 0) {
      this.logger.info({ connections: this.connections.size, drainTimeout: this.options.drainTimeout }, 'draining');
      const timer = setTimeout(() => this.emit('drained'), this.options.drainTimeout * 1000);
      timer.unref();
      await once(this, 'drained');
      clearTimeout(timer);
      if (this.connections.size > 0) {
        this.logger.warn(
          { connections: this.connections.size, drainTimeout: this.options.drainTimeout },
          'drain timeout: closing open connections',
        );
      }
    }
    for (const connection of this.connections) connection.destroy();
    await Promise.all([tcpClosed, this.nativeTcp?.close()]);
    this.warnings.flush();
    this.stateValue = 'closed';
    if (wasListening) this.logger.info('closed');
    this.emit('close');
  }
}

function tracedNative(option: 'tcpTransport' | 'udpTransport', traced: string): InvalidArgumentError {
  return new InvalidArgumentError(
    option,
    `\`auto\` or \`${traced}\` with a tracer (the native transport does not report each read)`,
    'native',
  );
}

/** Creates a server and waits until it listens. */
export async function startServer(options: ServerOptions = {}, hooks: ServerHooks = {}): Promise<UpcaseServer> {
  const server = new UpcaseServer(options, hooks);
  await server.listen();
  return server;
}

async function resolveHost(host: string, port: number, transport: 'tcp' | 'udp'): Promise<string> {
  if (net.isIP(host) !== 0) return host;
  try {
    const { address } = await lookup(host);
    return address;
  } catch (err) {
    throw networkError({ op: 'listen' }, { transport, address: host, port }, err);
  }
}

/** Makes the stats include what the native transport counts (they stay plain, settable numbers). */
function addNativeCounters(stats: ServerStats, native: NativeTcpCounters): void {
  for (const [key, read] of [
    ['tcpBytesIn', () => native.bytesIn],
    ['tcpBytesOut', () => native.bytesOut],
    ['idleTimeouts', () => native.idleTimeouts],
    ['writeTimeouts', () => native.writeTimeouts],
  ] as const) {
    let own = stats[key];
    Object.defineProperty(stats, key, {
      enumerable: true,
      configurable: true,
      get: () => own + read(),
      set: (value: number) => {
        own = value - read();
      },
    });
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** `tcpTransport: 'native'` (or UDP's) asked for where it cannot be had: why, and the fix. */
function nativeMissing(protocol: 'TCP' | 'UDP', unavailable: AddonUnavailable, fallback: string): InvalidArgumentError {
  const option = protocol === 'TCP' ? 'tcpTransport' : 'udpTransport';
  return new InvalidArgumentError(
    option,
    `auto or ${fallback}: the native ${protocol} transport cannot be used here (${unavailable.detail}); ${addonFix(unavailable)}`,
    'native',
  );
}
