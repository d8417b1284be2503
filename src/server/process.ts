import type { Logger } from 'pino';
import { EXIT_FAILURE, EXIT_OK } from '../errors.js';
import type { ClusterPrimary } from './cluster/primary.js';
import { ClusterWorker, type PrimaryChannel } from './cluster/worker.js';
import { clusterWorkerSlot } from './cluster/ipc.js';
import { createMetricsRegistry, type MetricsServer, type MetricsServerOptions, startMetricsServer } from './metrics.js';
import type { ServerAddress, UpcaseServer } from './server.js';
import { drainOnSignals, forwardHangup, onShutdownSignals, type ProcessHost, reloadOnHangup, type Shutdown } from './signals.js';

/**
 * The process modes of `upcase serve`: one process serving everything, the primary of a
 * cluster, and a cluster worker. Each runs what it is given until a signal has drained it,
 * and resolves to the process's exit status; a failed start rejects with its error. They
 * print nothing: `upcase serve` prints from {@link ServeOptions.onMetrics} and `onListening`.
 */

/** The options shared by the modes that own a metrics endpoint. */
export interface ServeOptions {
  /** The process's signals, and how to end it at once. */
  host: ProcessHost;
  /** Serve the metrics endpoint (status page, /metrics, /connections, /healthz, /readyz) here; none without it. */
  metrics?: { port: number; host?: string };
  /** The metrics endpoint listens (before the server starts): `upcase serve` prints its URL. */
  onMetrics?: (metrics: MetricsServer) => void;
  /** Every listener is bound (every worker listens, in a cluster): `upcase serve` prints its ready line. */
  onListening?: (address: ServerAddress) => void;
}

/**
 * One process serving everything (`--workers 1`). The signal handlers go in before
 * anything starts: whoever reads the ready line may signal at once, and a signal during the
 * start makes `server.close()` abort `listen()`, which is a clean stop (status 0).
 * Resolves to 0 after the drain, or 1 after a second signal.
 */
export async function serveSingle(server: UpcaseServer, options: ServeOptions): Promise<number> {
  const shutdown = onShutdownSignals(
    options.host,
    server.logger,
    () => server.close({ drain: true }),
    () => {},
  );
  reloadOnHangup(options.host, server);
  return runUntilDrained(shutdown, options, {
    logger: server.logger,
    endpoint: {
      source: createMetricsRegistry({
        stats: () => server.stats,
        info: () => server.info(),
        udpKernelDrops: () => server.udpKernelDrops(),
      }),
      ready: () => server.state === 'listening',
      connections: (query) => server.listConnections(query),
    },
    start: () => server.listen(),
  });
}

/**
 * The primary of a cluster (`--workers N`): forks, supervises, aggregates metrics, serves none
 * itself; SIGHUP goes to the workers. A second signal kills the workers. Resolves to 0 after
 * the drain, or 1 if a worker had to be killed or a second signal came.
 */
export async function servePrimary(primary: ClusterPrimary, options: ServeOptions): Promise<number> {
  const shutdown = onShutdownSignals(
    options.host,
    primary.logger,
    () => primary.close(),
    () => primary.kill(),
  );
  // For the process's whole life: the default action of SIGHUP would end it.
  forwardHangup(options.host, primary);
  return runUntilDrained(shutdown, options, {
    logger: primary.logger,
    endpoint: { source: primary, ready: () => primary.ready, connections: (query) => primary.connections(query) },
    start: () => primary.start(),
    forced: () => primary.forced,
  });
}

/** What a mode runs: how it starts, what its metrics endpoint serves, and whether its stop was forced. */
interface Served {
  logger: Logger;
  endpoint: Pick<MetricsServerOptions, 'source' | 'ready' | 'connections'>;
  start(): Promise<ServerAddress>;
  /** True if the drain had to be cut short (a cluster's workers killed). */
  forced?: () => boolean;
}

/** Starts the metrics endpoint, then `served`, and waits for the drain a signal starts. */
async function runUntilDrained(shutdown: Shutdown, options: ServeOptions, served: Served): Promise<number> {
  const { logger } = served;
  let metrics: MetricsServer | null = null;
  const status = (): number => (shutdown.forced || served.forced?.() === true ? EXIT_FAILURE : EXIT_OK);
  try {
    if (options.metrics !== undefined) {
      metrics = await startMetricsServer({ port: options.metrics.port, host: options.metrics.host, logger, ...served.endpoint });
      options.onMetrics?.(metrics);
    }
    // A signal while the metrics endpoint started: the server is closed already, and start() says so.
    options.onListening?.(await served.start());
  } catch (err) {
    await metrics?.close();
    if (shutdown.signalled) {
      await shutdown.done;
      return status();
    }
    shutdown.remove();
    throw err;
  }
  await shutdown.done;
  await metrics?.close();
  logger.info(served.forced === undefined ? {} : { forced: served.forced() }, 'exiting');
  return status();
}

/**
 * A worker forked by the primary: serves `server` (made with the primary's port,
 * `clusterWorkerPort()`), answers the primary, and drains on its request or on a signal;
 * forcing is the primary's. Resolves to 0 once drained, or 1 if it could not listen (the
 * primary logs why and decides). `channel`: the one to the primary, default this process's.
 */
export async function serveWorker(server: UpcaseServer, options: { host: ProcessHost; channel?: PrimaryChannel }): Promise<number> {
  reloadOnHangup(options.host, server);
  const registry = createMetricsRegistry({
    stats: () => server.stats,
    info: () => server.info(),
    worker: clusterWorkerSlot(),
    udpKernelDrops: () => server.udpKernelDrops(),
  });
  const worker = new ClusterWorker(server, registry, options.channel);
  // From the start: a Ctrl-C (which reaches the whole process group) while the worker still
  // binds is a shutdown once it listens, not the signal's default action (death).
  const remove = drainOnSignals(options.host, server, () => worker.drain());
  try {
    await worker.listen();
  } catch {
    remove();
    worker.disconnect();
    return EXIT_FAILURE;
  }
  await worker.closed;
  remove();
  worker.disconnect();
  return EXIT_OK;
}
