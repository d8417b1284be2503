import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { type NetworkError, networkError } from '../errors.js';
import type { UdpListener } from './udp.js';

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

/** What to bind: host (undefined: every address, IPv6 and IPv4), port (0: the OS picks), and which listeners. */
export interface ListenSpec {
  host: string | undefined;
  port: number;
  tcp: boolean;
  udp: boolean;
  /** The TLS listener's port, or null without TLS. */
  tlsPort: number | null;
}

/** How to open each listener (the server's own, with its handlers). */
export interface ListenerFactory {
  tcp(address: string, port: number, transport: 'tcp' | 'tls'): Promise<net.Server>;
  udp(address: string, port: number): Promise<UdpListener>;
}

/** The bound listeners of a server. */
export interface Listeners {
  tcp: net.Server | null;
  udp: UdpListener | null;
  tls: net.Server | null;
  address: ServerAddress;
}

/** What an accepting TCP listener reports. */
export interface TcpListenerHandlers {
  /** A connection was accepted. */
  connection(socket: net.Socket, transport: 'tcp' | 'tls'): void;
  /** Node closed an accepted connection at once: the listener's own `maxConnections` was reached. */
  dropped(transport: 'tcp' | 'tls', remoteAddress: string | undefined): void;
  /** accept() failed after listening (EMFILE and ENFILE mostly never get here: libuv sheds those itself). */
  acceptFailed(transport: 'tcp' | 'tls', err: NodeJS.ErrnoException): void;
}

const DEFAULT_HOSTS = ['::', '0.0.0.0'];
// With port 0 the OS picks a TCP port; if that number is taken for UDP, try another.
const EPHEMERAL_ATTEMPTS = 20;

/**
 * Binds every listener `spec` asks for, TCP and UDP on one port number. Without a
 * host, tries `::` (dual stack) and falls back to `0.0.0.0` where IPv6 is missing.
 * On failure nothing stays bound; rejects with a `NetworkError` (`UPCASE_ERR_LISTEN`).
 */
export async function bindListeners(spec: ListenSpec, open: ListenerFactory): Promise<Listeners> {
  const { host, port } = spec;
  const hosts = host === undefined ? DEFAULT_HOSTS : [await resolveHost(host, port, spec.tcp ? 'tcp' : 'udp')];
  let lastError: unknown;
  for (const address of hosts) {
    try {
      return await bindAll(address, spec, open);
    } catch (err) {
      lastError = err;
      // Without IPv6, `::` fails with EAFNOSUPPORT or EADDRNOTAVAIL: fall back to IPv4.
      const code = (err as NetworkError).syscallCode;
      if (host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
    }
  }
  throw lastError;
}

async function bindAll(address: string, spec: ListenSpec, open: ListenerFactory): Promise<Listeners> {
  const { tcp, udp, port } = spec;
  for (let attempt = 1; ; attempt++) {
    let tcpServer: net.Server | null = null;
    let udpListener: UdpListener | null = null;
    let actualPort = port;
    if (tcp) {
      tcpServer = await open.tcp(address, port, 'tcp');
      actualPort = (tcpServer.address() as net.AddressInfo).port;
    }
    if (udp) {
      try {
        udpListener = await open.udp(address, actualPort);
        if (!tcp) actualPort = udpListener.port;
      } catch (err) {
        if (tcpServer !== null) await closeServer(tcpServer);
        const retry = port === 0 && tcp && (err as NetworkError).syscallCode === 'EADDRINUSE' && attempt < EPHEMERAL_ATTEMPTS;
        if (retry) continue;
        throw err;
      }
    }
    let tlsServer: net.Server | null = null;
    let tlsPort: number | null = null;
    if (spec.tlsPort !== null) {
      try {
        tlsServer = await open.tcp(address, spec.tlsPort, 'tls');
      } catch (err) {
        if (tcpServer !== null) await closeServer(tcpServer);
        await udpListener?.close();
        throw err;
      }
      tlsPort = (tlsServer.address() as net.AddressInfo).port;
      if (!tcp && !udp) actualPort = tlsPort;
    }
    const transports: ServerAddress['transports'] = [];
    if (tcp) transports.push('tcp');
    if (udp) transports.push('udp');
    if (tlsPort !== null) transports.push('tls');
    return { tcp: tcpServer, udp: udpListener, tls: tlsServer, address: { host: address, port: actualPort, transports, tlsPort } };
  }
}

/**
 * A TCP listener on `address`:`port` whose connections go to `handlers.connection`.
 * `maxConnections` is this listener's own cap (Node drops past it; see `dropped`).
 */
export function listenTcp(
  address: string,
  port: number,
  transport: 'tcp' | 'tls',
  maxConnections: number,
  handlers: TcpListenerHandlers,
): Promise<net.Server> {
  // 64 KiB socket buffers (Node's default is 16 KiB): with a 64 KiB read, a 16 KiB
  // high-water mark pauses reading after nearly every reply in bulk transfers.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: 64 * 1024 }, (socket) =>
    handlers.connection(socket, transport),
  );
  server.maxConnections = maxConnections;
  // Node closes the accepted handle at once, then emits 'drop'.
  server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) => handlers.dropped(transport, info?.remoteAddress));
  return new Promise((resolve, reject) => {
    const onListenError = (err: Error): void => reject(networkError({ op: 'listen' }, { transport, address, port }, err));
    server.once('error', onListenError);
    server.listen({ host: address, port, ipv6Only: false, backlog: 4096 }, () => {
      server.off('error', onListenError);
      // After listen, errors come from accept(). libuv handles EMFILE/ENFILE itself
      // (its reserve-fd trick sheds the pending connections without telling us), so
      // what arrives here is rarer: the handler counts it and goes on.
      server.on('error', (err: NodeJS.ErrnoException) => handlers.acceptFailed(transport, err));
      resolve(server);
    });
  });
}

/** Stops a listener; resolves once it and its connections are closed. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
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
