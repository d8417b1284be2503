/**
 * The TCP transports the contract suite (test/tcp/contract.test.ts) runs, and how
 * to start a server on one and connect to it as a client would. Adding a
 * transport is one entry in {@link TRANSPORTS}: it then runs every contract case,
 * and a transport that does not pass them does not ship.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { TestContext } from 'node:test';
import type { ServerOptions } from '../../src/options.js';
import type { ServerStats } from '../../src/stats.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { captureLogger, type CapturedLogger } from '../helpers/logs.js';
import { TcpPeer, tlsOver } from '../helpers/roundtrip.js';
import { within } from '../helpers/wait.js';
import type { TestPki } from '../helpers/pki.js';

export interface Transport {
  /** The name in test titles. */
  readonly name: string;
  /** Why it cannot run on this machine; false when it can. */
  readonly skip: string | false;
  /** Payload is carried inside TLS: counted in `tlsBytesIn/Out`, and on the TLS port. */
  readonly tls: boolean;
  /** What selects it (besides the case's own options). */
  readonly serverOptions: ServerOptions;
  /** How the server must report the plain TCP transport it picked. */
  readonly tcpTransport: 'native' | 'stream';
}

const NATIVE_MISSING =
  loadNativeTcp() === null ? 'the native TCP transport is not built here (Linux with a C compiler; npm run build:native)' : false;

export const TRANSPORTS: readonly Transport[] = [
  { name: 'stream', skip: false, tls: false, serverOptions: { tcpTransport: 'stream' }, tcpTransport: 'stream' },
  { name: 'native', skip: NATIVE_MISSING, tls: false, serverOptions: { tcpTransport: 'native' }, tcpTransport: 'native' },
  { name: 'TLS over stream', skip: false, tls: true, serverOptions: { tcpTransport: 'stream' }, tcpTransport: 'stream' },
  // TLS is served by net.Socket streams whatever tcpTransport says (the addon has no TLS):
  // this entry checks that TLS next to a native plain listener follows the same contract.
  {
    name: 'TLS beside native (served by streams)',
    skip: NATIVE_MISSING,
    tls: true,
    serverOptions: { tcpTransport: 'native' },
    tcpTransport: 'native',
  },
];

/** A server on one transport, seen from outside. */
export interface Served {
  readonly server: UpcaseServer;
  readonly transport: Transport;
  /** The port a client of this transport connects to (the TLS port for TLS). */
  readonly port: number;
  readonly logs: CapturedLogger;
  /** The server's counters as of this read. */
  readonly stats: ServerStats;
  /** Payload bytes the server read, on this transport's counter. */
  bytesIn(): number;
  /** Reply bytes the server handed to the transport, on this transport's counter. */
  bytesOut(): number;
  /** A client connection, TLS handshake done; `proxyHeader` is sent first, in the clear. */
  connect(options?: { proxyHeader?: Buffer }): Promise<Client>;
}

/** A client connection: what it received, and the TCP socket under it (for resets). */
export interface Client extends TcpPeer {
  readonly tcp: net.Socket;
}

/** Starts a server on `transport` at 127.0.0.1, closed when the test ends. */
export async function serve(t: TestContext, transport: Transport, pki: TestPki, options: ServerOptions = {}): Promise<Served> {
  const logs = captureLogger('debug');
  const tlsOptions = transport.tls ? { tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 } : {};
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    udp: false,
    logger: logs.logger,
    ...transport.serverOptions,
    ...tlsOptions,
    ...options,
  });
  t.after(() => server.close());
  if (server.tcpTransport !== transport.tcpTransport) {
    throw new Error(`asked for ${transport.name}, the server serves plain TCP with ${server.tcpTransport}`);
  }
  const address = server.address();
  const port = transport.tls ? address.tlsPort! : address.port;
  const ca = transport.tls ? readFileSync(pki.ca) : null;
  return {
    server,
    transport,
    port,
    logs,
    get stats() {
      return server.stats;
    },
    bytesIn: () => (transport.tls ? server.stats.tlsBytesIn : server.stats.tcpBytesIn),
    bytesOut: () => (transport.tls ? server.stats.tlsBytesOut : server.stats.tcpBytesOut),
    connect: async (connectOptions = {}) => {
      const tcp = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
      tcp.on('error', () => {});
      t.after(() => tcp.destroy());
      await within(10_000, `connect to ${port}`, once(tcp, 'connect'));
      if (connectOptions.proxyHeader !== undefined) tcp.write(connectOptions.proxyHeader);
      if (ca === null) return Object.assign(new TcpPeer(tcp), { tcp });
      const client = Object.assign(await tlsOver(tcp, ca), { tcp });
      t.after(() => client.socket.destroy());
      return client;
    },
  };
}
