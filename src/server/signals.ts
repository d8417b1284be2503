import type { Logger } from 'pino';
import { EXIT_FAILURE } from '../errors.js';
import type { UpcaseServer } from './server.js';

/**
 * The signals a serving process handles, as library code: SIGINT and SIGTERM drain
 * (a second one ends the process at once), and SIGHUP reloads the TLS certificate
 * and never ends the process. The process is passed in ({@link ProcessHost}), so a
 * test drives these with an EventEmitter and a recorded exit.
 */

/** Where signals arrive: `process`, or an EventEmitter that a test emits them on. */
export interface SignalEmitter {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** What a serving process needs of its process. */
export interface ProcessHost {
  /** Where SIGINT, SIGTERM and SIGHUP arrive. */
  signals: SignalEmitter;
  /** Ends the process at once with `status` (on a second SIGINT/SIGTERM). `upcase serve` passes `process.exit`. */
  exit(status: number): void;
}

/** The SIGINT/SIGTERM handlers of {@link onShutdownSignals}. */
export interface Shutdown {
  /** Resolves once the drain that the first signal started has finished. */
  readonly done: Promise<void>;
  /** A first signal came. */
  readonly signalled: boolean;
  /** A second signal came: the process was told to exit with status 1. */
  readonly forced: boolean;
  /** Removes the handlers (after a failed start). */
  remove(): void;
}

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Installs SIGINT/SIGTERM handlers: the first signal runs `drain` ({@link Shutdown.done}
 * resolves when it has finished), a second one runs `force` and then `host.exit(1)`.
 * Installing handlers at all matters as PID 1: the kernel ignores the signals PID 1 has
 * no handler for.
 */
export function onShutdownSignals(host: ProcessHost, logger: Logger, drain: () => Promise<void>, force: () => void): Shutdown {
  let signalled = false;
  let forced = false;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      forced = true;
      logger.warn({ signal }, 'second signal: exiting now');
      force();
      logger.flush?.();
      host.exit(EXIT_FAILURE);
      return;
    }
    signalled = true;
    logger.info({ signal }, 'shutting down: not ready, no new connections, draining');
    drain().then(resolveDone, resolveDone);
  };
  for (const signal of SHUTDOWN_SIGNALS) host.signals.on(signal, onSignal);
  return {
    done,
    get signalled() {
      return signalled;
    },
    get forced() {
      return forced;
    },
    remove: () => {
      for (const signal of SHUTDOWN_SIGNALS) host.signals.off(signal, onSignal);
    },
  };
}

/**
 * Makes SIGINT/SIGTERM drain `server` and nothing more: in a cluster worker, where the
 * primary decides when to force (Ctrl-C reaches the whole process group). `drain` does
 * the draining (default: `server.close({ drain: true })`). Returns a function that removes
 * the handlers.
 */
export function drainOnSignals(
  host: ProcessHost,
  server: UpcaseServer,
  drain = (): void => void server.close({ drain: true }),
): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    server.logger.debug({ signal }, 'signal: draining');
    drain();
  };
  for (const signal of SHUTDOWN_SIGNALS) host.signals.on(signal, onSignal);
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) host.signals.off(signal, onSignal);
  };
}

/**
 * Handles SIGHUP for the rest of the process's life, so that it never ends the process
 * (its default action), whenever it comes. While `server` listens with TLS, it reloads
 * the certificate and key files (for new connections; open ones go on); a failed reload is
 * logged and the old certificate stays. One that comes while the server starts is owed:
 * the files may change after the server read them, so it reloads once the server listens.
 * While the server drains there is nothing left to reload; without TLS, SIGHUP is logged.
 */
export function reloadOnHangup(host: ProcessHost, server: UpcaseServer): void {
  const { logger } = server;
  const tls = server.options.tlsCert !== undefined;
  let owed = false;
  const reload = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'reloading tls certificate');
    server.reloadTls().catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ code: (err as { code?: string }).code }, `tls reload failed, keeping the old certificate: ${message}`);
    });
  };
  host.signals.on('SIGHUP', () => {
    if (!tls) {
      logger.info({ signal: 'SIGHUP' }, 'SIGHUP: nothing to reload (no TLS)');
    } else if (server.state === 'listening') {
      reload();
    } else if (server.state === 'new') {
      logger.info({ signal: 'SIGHUP', state: server.state }, 'SIGHUP: reloading once the server listens');
      if (!owed) {
        owed = true;
        server.once('listening', () => {
          owed = false;
          reload();
        });
      }
    } else {
      logger.info({ signal: 'SIGHUP', state: server.state }, 'SIGHUP: not reloading while the server is not listening');
    }
  });
}

/** Handles SIGHUP for the rest of the process's life by passing it to the workers (ClusterPrimary.hangup). */
export function forwardHangup(host: ProcessHost, primary: { hangup(): number }): void {
  host.signals.on('SIGHUP', () => primary.hangup());
}
