import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import { listenError, type NetworkError, UpcaseError } from '../errors.js';
import { normalizeServerOptions, type NormalizedServerOptions, type ServerOptions } from '../options.js';
import { handleConnection } from '../tcp/connection.js';
import { createDatagramHandler } from '../udp/handler.js';
import { connectionsThatFit } from './fd-limit.js';
import { RateLimitedLog, safeAddress, silentLogger } from './log.js';
import { countError, createStats, type ServerStats } from './stats.js';

export type ServerState = 'new' | 'listening' | 'draining' | 'closed';

export interface ServerAddress {
  /** The address the listeners are bound to, e.g. `::` or `127.0.0.1`. */
  host: string;
  /** The port, the same for TCP and UDP. */
  port: number;
  /** Which transports are listening. */
  transports: Array<'tcp' | 'udp'>;
}

export interface CloseOptions {
  /**
   * Let open TCP connections finish for up to `drainTimeout` seconds (from the
   * server options) before closing them. Default false: close them at once.
   */
  drain?: boolean;
}

const DEFAULT_HOSTS = ['::', '0.0.0.0'];
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
  private tcpServer: net.Server | null = null;
  private udpSocket: dgram.Socket | null = null;
  private readonly connections = new Set<net.Socket>();
  private bound: ServerAddress | null = null;
  private stateValue: ServerState = 'new';
  private closing: Promise<void> | null = null;
  private maxConnectionsValue: number;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = normalizeServerOptions(options);
    this.logger = this.options.logger ?? silentLogger();
    this.warnings = new RateLimitedLog(this.logger);
    this.maxConnectionsValue = this.options.maxConnections;
  }

  /**
   * The TCP connection limit in force: `maxConnections`, or less when the
   * open-file limit cannot hold that many (see docs/security.md).
   */
  get maxConnections(): number {
    return this.maxConnectionsValue;
  }

  /** `new` → `listening` → (`draining` →) `closed`. */
  get state(): ServerState {
    return this.stateValue;
  }

  /** The bound address, once listening. */
  address(): ServerAddress {
    if (this.bound === null) throw new UpcaseError('UPCASE_ERR_CLOSED', 'the server is not listening');
    return this.bound;
  }

  /** Binds the listeners. Rejects with a `NetworkError` (`UPCASE_ERR_LISTEN`) naming port and transport. */
  async listen(): Promise<ServerAddress> {
    if (this.stateValue !== 'new') throw new UpcaseError('UPCASE_ERR_CLOSED', `cannot listen: the server is ${this.stateValue}`);
    const { host, port } = this.options;
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
    this.fitConnectionLimit();
    this.stateValue = 'listening';
    const { idleTimeout, writeTimeout, udpRateLimit, udpAllowLowPorts } = this.options;
    const limits = { maxConnections: this.maxConnectionsValue, idleTimeout, writeTimeout, udpRateLimit, udpAllowLowPorts };
    this.logger.info({ ...this.bound, transports: this.bound.transports.join('+'), ...limits }, 'listening');
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
          if (!tcp) actualPort = this.udpSocket.address().port;
        } catch (err) {
          if (tcpServer !== null) await closeServer(tcpServer);
          const retry = port === 0 && tcp && (err as NetworkError).syscallCode === 'EADDRINUSE' && attempt < EPHEMERAL_ATTEMPTS;
          if (retry) continue;
          throw err;
        }
      }
      this.tcpServer = tcpServer;
      const transports: Array<'tcp' | 'udp'> = [];
      if (tcp) transports.push('tcp');
      if (udp) transports.push('udp');
      return { host: address, port: actualPort, transports };
    }
  }

  /**
   * Past the open-file limit, accept() fails and libuv silently sheds the
   * connections, so lower the limit to what fits: refusals are then counted and logged.
   */
  private fitConnectionLimit(): void {
    if (this.tcpServer === null) return;
    const fit = connectionsThatFit();
    if (fit !== undefined && fit < this.options.maxConnections) {
      this.maxConnectionsValue = fit;
      this.logger.warn(
        { maxConnections: this.options.maxConnections, effective: fit },
        'max connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE)',
      );
    }
    this.tcpServer.maxConnections = this.maxConnectionsValue;
  }

  private listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(socket));
    server.maxConnections = this.options.maxConnections;
    // Node closes the accepted handle at once, then emits 'drop'.
    server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) => {
      this.stats.connectionsRefused++;
      this.warnings.warn(
        'tcp:max_connections',
        { transport: 'tcp', remoteAddress: safeAddress(info?.remoteAddress), limit: this.maxConnectionsValue },
        'connection refused: max connections reached',
      );
    });
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => reject(listenError(err, 'tcp', address, port));
      server.once('error', onListenError);
      server.listen({ host: address, port, ipv6Only: false, backlog: 4096 }, () => {
        server.off('error', onListenError);
        // After listen, errors come from accept(). libuv handles EMFILE/ENFILE itself
        // (its reserve-fd trick sheds the pending connections without telling us), so
        // what arrives here is rarer; count it, log it rate-limited and go on.
        server.on('error', (err: NodeJS.ErrnoException) => {
          countError(this.stats, err.code);
          this.warnings.warn(`tcp:accept:${err.code}`, { transport: 'tcp', code: err.code }, 'accept failed');
        });
        resolve(server);
      });
    });
  }

  private bindUdp(address: string, port: number): Promise<dgram.Socket> {
    const type = net.isIPv6(address) ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type, ipv6Only: false });
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error): void => {
        socket.close();
        reject(listenError(err, 'udp', address, port));
      };
      socket.once('error', onBindError);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off('error', onBindError);
        socket.on('error', (err: NodeJS.ErrnoException) => {
          countError(this.stats, err.code);
          this.warnings.warn(`udp:${err.code}`, { transport: 'udp', code: err.code }, 'udp socket error');
        });
        socket.on(
          'message',
          createDatagramHandler(socket, {
            stats: this.stats,
            logger: this.logger,
            warnings: this.warnings,
            udpRateLimit: this.options.udpRateLimit,
            udpRateBurst: this.options.udpRateBurst,
            udpAllowLowPorts: this.options.udpAllowLowPorts,
            dropRate: this.options.dropRate,
            localPort: socket.address().port,
          }),
        );
        resolve(socket);
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    const { stats } = this;
    stats.connectionsOpen++;
    stats.connectionsTotal++;
    this.connections.add(socket);
    const logFields = { transport: 'tcp', remoteAddress: safeAddress(socket.remoteAddress), remotePort: socket.remotePort };
    this.logger.debug(logFields, 'connection open');
    const { idleTimeout, writeTimeout } = this.options;
    socket.once('close', () => {
      stats.connectionsOpen--;
      this.connections.delete(socket);
      this.logger.debug(logFields, 'connection closed');
      if (this.stateValue === 'draining' && this.connections.size === 0) this.emit('drained');
    });
    handleConnection(socket, {
      stats,
      logger: this.logger,
      ownsChunks: true,
      idleTimeoutMs: idleTimeout * 1000,
      writeTimeoutMs: writeTimeout * 1000,
      logFields,
    });
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
    const tcpClosed = this.tcpServer === null ? Promise.resolve() : closeServer(this.tcpServer);
    if (this.udpSocket !== null) {
      const udp = this.udpSocket;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    }
    if (drain && this.connections.size > 0) {
      this.logger.info({ connections: this.connections.size, drainTimeout: this.options.drainTimeout }, 'draining');
      const timer = setTimeout(() => this.emit('drained'), this.options.drainTimeout * 1000);
      timer.unref();
      await once(this, 'drained');
      clearTimeout(timer);
    }
    for (const socket of this.connections) socket.destroy();
    await tcpClosed;
    this.warnings.flush();
    this.stateValue = 'closed';
    if (wasListening) this.logger.info('closed');
    this.emit('close');
  }
}

/** Creates a server and waits until it listens. */
export async function startServer(options: ServerOptions = {}): Promise<UpcaseServer> {
  const server = new UpcaseServer(options);
  await server.listen();
  return server;
}

async function resolveHost(host: string, port: number, transport: 'tcp' | 'udp'): Promise<string> {
  if (net.isIP(host) !== 0) return host;
  try {
    const { address } = await lookup(host);
    return address;
  } catch (err) {
    throw listenError(err, transport, host, port);
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
