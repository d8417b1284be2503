import type net from 'node:net';
import tls from 'node:tls';
import { TLS_MIN_VERSION, type TlsCredentials } from './credentials.js';

/** What happens to one connection handed to {@link TlsAcceptor.accept}: exactly one of these is called. */
export interface TlsHandshakeHandlers {
  /** The handshake completed: serve `socket` (the decrypted side). */
  secure(socket: tls.TLSSocket): void;
  /**
   * The handshake failed: not TLS (a plaintext client), no common protocol, the
   * peer went away, or `handshakeTimeout` passed. The socket is already destroyed.
   */
  failed(err: NodeJS.ErrnoException): void;
}

export interface TlsAcceptorOptions {
  credentials: TlsCredentials;
  /** Milliseconds a handshake may take before the connection is closed. */
  handshakeTimeoutMs: number;
}

type SecureSocket = tls.TLSSocket & { _parent?: net.Socket | null };

/**
 * The TLS layer of the TLS listener, as a thin shell: TCP connections are
 * accepted by the server's own `net.Server` (so limits, PROXY headers and
 * connection tracking are the same as for plain TCP), then handed here for the
 * handshake, and come back decrypted to the same connection handler.
 *
 * A `tls.Server` that never listens does the handshakes: it is Node's supported
 * way to run server-side TLS on a socket we accepted (`server.emit('connection')`),
 * with its handshake timeout, `tlsClientError` and `setSecureContext()` for reloads.
 */
export class TlsAcceptor {
  private readonly server: tls.Server;
  private readonly pending = new WeakMap<net.Socket, TlsHandshakeHandlers>();
  private credentialsValue: TlsCredentials;

  constructor(options: TlsAcceptorOptions) {
    this.credentialsValue = options.credentials;
    this.server = tls.createServer({ ...contextOptions(options.credentials), handshakeTimeout: options.handshakeTimeoutMs });
    this.server.on('secureConnection', (socket: SecureSocket) => {
      const handlers = this.take(socket);
      if (handlers === undefined) socket.destroy();
      else handlers.secure(socket);
    });
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: SecureSocket) => {
      // Node leaves the socket open after a handshake timeout; close it in every case.
      socket.destroy();
      this.take(socket)?.failed(err);
    });
  }

  /**
   * Starts the server side of a handshake on an accepted TCP connection. Bytes
   * already read from it and put back with `unshift()` (after a PROXY header)
   * are fed to TLS first. The socket inherits `allowHalfOpen` from `raw`.
   */
  accept(raw: net.Socket, handlers: TlsHandshakeHandlers): void {
    this.pending.set(raw, handlers);
    this.server.emit('connection', raw);
  }

  /** The certificate and key new handshakes use. */
  get credentials(): TlsCredentials {
    return this.credentialsValue;
  }

  /** Uses `credentials` for new handshakes; open connections keep what they negotiated. */
  setCredentials(credentials: TlsCredentials): void {
    this.server.setSecureContext(contextOptions(credentials));
    this.credentialsValue = credentials;
  }

  private take(socket: SecureSocket): TlsHandshakeHandlers | undefined {
    // A TLSSocket made from a net.Socket keeps it as `_parent` (stable since Node 0.11).
    const raw = socket._parent ?? undefined;
    if (raw === undefined) return undefined;
    const handlers = this.pending.get(raw);
    this.pending.delete(raw);
    return handlers;
  }
}

function contextOptions(credentials: TlsCredentials): tls.SecureContextOptions {
  return { cert: credentials.cert, key: credentials.key, minVersion: TLS_MIN_VERSION };
}
