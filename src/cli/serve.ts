import cluster from 'node:cluster';
import { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { formatHostPort, InvalidArgumentError } from '../errors.js';
import { type NormalizedServerOptions, normalizeServerOptions, SERVER_OPTIONS, type ServerOptions } from '../options.js';
import { boolean, choice, host, integerOrAuto, port } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { ClusterPrimary, ClusterWorker, clusterWorkerPort, clusterWorkerSlot, resolveWorkerCount } from '../server/cluster.js';
import { createMetricsRegistry, METRICS_DEFAULT_HOST, type MetricsServer, metricsUrl, startMetricsServer } from '../server/metrics.js';
import { type ServerAddress, type ServerState, UpcaseServer } from '../server/server.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, errorMessage } from './common.js';
import { reportFailure } from './failure.js';
import { clusterTransports, transportsLine } from './transports.js';
import { addOptions, Flags, isUsageError } from './options.js';
import { announceTrace, SERVE_TRACE_TRANSPORTS, traceWriter } from './trace.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `upcase serve`'s options: the server's (src/options.ts), then the process's own. */
export const SERVE_OPTIONS = {
  ...SERVER_OPTIONS,
  workers: {
    kind: integerOrAuto({ min: 1, max: 1024 }),
    default: 1,
    help: 'worker processes (node:cluster), each serving TCP and UDP; auto = one per CPU',
    docs: '`auto` = `os.availableParallelism()` ([Workers](operations.md#workers))',
    cli: true,
  },
  metricsPort: {
    kind: port(),
    defaultText: 'off',
    help: 'serve /, /metrics, /connections, /healthz, /readyz over HTTP on this port; 0 = any free port',
    cli: true,
  },
  metricsHost: { kind: host(), default: METRICS_DEFAULT_HOST, help: 'address of the metrics endpoint', cli: true },
  logLevel: { kind: choice(LOG_LEVELS, '<level>'), default: 'info', help: 'log level', cli: true },
  trace: {
    kind: boolean(),
    default: false,
    help: "narrate the server's socket steps on stderr, payload included; one process, on the stream and dgram transports",
    docs: 'the log level then defaults to `warn` ([tutorial](tutorial.md))',
    cli: true,
  },
} as const satisfies Table;

interface ProcessFlags {
  workers: number | 'auto';
  metricsPort?: number;
  metricsHost: string;
  logLevel: string;
  trace: boolean;
}

/** What `upcase serve` runs with: the server's options as given, and the process's own. */
export interface ServeFlags extends ServerOptions, ProcessFlags {}

/** Every setting of `upcase serve`, defaults included, as {@link parseServeArgs} gives them. */
export type ParsedServeFlags = NormalizedServerOptions & ProcessFlags;

/** The `serve` command's flags, without an action. Every flag has an `UPCASE_*` variable; the flag wins. */
function serveOptions(): Command {
  return addOptions(new Command('serve').description('run the upcase server: TCP and UDP on one port'), SERVE_OPTIONS);
}

/**
 * `--trace` narrates one process's socket steps on the transports that report them:
 * it refuses the native ones and workers, and keeps the logs to warnings unless a log
 * level is given, so the narration reads on its own.
 */
function checkTraceFlags(cli: Flags, flags: ServeFlags): void {
  // The native transports are refused by the library (UpcaseServer), which the trace needs.
  if (flags.workers !== 1) throw new InvalidArgumentError('workers', '1 with `trace` (it narrates one process)', flags.workers);
  if (!cli.fromCommandLine('logLevel') && process.env.UPCASE_LOG_LEVEL === undefined) flags.logLevel = 'warn';
}

/** The flags of this run, checked by the library (which throws InvalidArgumentError); the server's as given. */
function readServeFlags(command: Command): { cli: Flags; flags: ServeFlags } {
  const cli = new Flags('upcase serve', SERVE_OPTIONS, command);
  const flags = cli.options<ServeFlags>(SERVE_OPTIONS);
  normalizeServerOptions(flags);
  if (flags.trace) checkTraceFlags(cli, flags);
  return { cli, flags };
}

export function serveCommand(setExitCode: (code: number) => void): Command {
  return serveOptions().action(async (_flags: unknown, command: Command) => {
    let parsed: { cli: Flags; flags: ServeFlags };
    try {
      parsed = readServeFlags(command);
    } catch (err) {
      if (!isUsageError(err)) throw err;
      process.stderr.write(`${new Flags('upcase serve', SERVE_OPTIONS, command).describe(err)}\n`);
      setExitCode(EXIT_USAGE);
      return;
    }
    setExitCode(await serve(parsed.flags, parsed.cli));
  });
}

/**
 * Parses `serve` arguments (and `UPCASE_*` variables) exactly as `upcase serve`
 * would, without serving, and resolves to every setting with its default.
 * Rejects with commander's error, or the library's InvalidArgumentError, on a bad value.
 */
export async function parseServeArgs(args: string[]): Promise<ParsedServeFlags> {
  let result: ParsedServeFlags | undefined;
  const command = serveOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .action((_flags: unknown, cmd: Command) => {
      const { flags } = readServeFlags(cmd);
      result = { ...flags, ...normalizeServerOptions(flags) };
    });
  await command.parseAsync(args, { from: 'user' });
  if (result === undefined) throw new Error('serve arguments did not parse');
  return result;
}

function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  // JSON lines on stderr when piped; human-readable on a terminal. stdout is kept for the ready line.
  if (process.stderr.isTTY) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } })).child(bindings);
  }
  return pino({ level }, pino.destination({ fd: 2, sync: false })).child(bindings);
}

/** The server's options out of the command's. */
function serverOptions(flags: ServeFlags, logger: Logger): ServerOptions {
  const options: Record<string, unknown> = { logger };
  for (const name of Object.keys(SERVER_OPTIONS)) options[name] = flags[name as keyof ServeFlags];
  return options as ServerOptions;
}

/**
 * `The server is ready to receive on tcp+udp [::]:12000, tls [::]:12443` (scripts parse
 * it: keep it so), then a line on the transports in use (src/cli/transports.ts).
 */
function readyLine(address: ServerAddress): string {
  const plain = address.transports.filter((t) => t !== 'tls');
  const parts = plain.length > 0 ? [`${plain.join('+')} ${formatHostPort(address.host, address.port)}`] : [];
  if (address.tlsPort !== null) parts.push(`tls ${formatHostPort(address.host, address.tlsPort)}`);
  return `The server is ready to receive on ${parts.join(', ')}\n`;
}

async function serve(flags: ServeFlags, cli: Flags): Promise<number> {
  if (cluster.isWorker) return serveWorker(flags);
  const logger = createLogger(flags.logLevel);
  const workers = resolveWorkerCount(flags.workers);
  // The effective configuration, once, so an operator can see what a process runs with.
  logger.debug({ ...flags, workers, metricsPort: flags.metricsPort ?? 'off' }, 'starting');
  return workers > 1 ? servePrimary(flags, workers, logger, cli) : serveSingle(flags, logger, cli);
}

/** One process serving everything (`--workers 1`, the default). */
async function serveSingle(flags: ServeFlags, logger: Logger, cli: Flags): Promise<number> {
  let server: UpcaseServer;
  try {
    const tracer = flags.trace ? traceWriter() : undefined;
    server = new UpcaseServer(serverOptions(flags, logger), { tracer });
    if (tracer !== undefined) announceTrace(SERVE_TRACE_TRANSPORTS);
  } catch (err) {
    return fail(err, logger, cli);
  }
  // The handlers go in before the ready line: whoever reads that line may signal at once.
  // A signal during start-up makes close() abort listen(): a clean stop.
  const stop = onSignals(
    logger,
    () => server.close({ drain: true }),
    () => {},
  );
  onHangup(logger, flags.tlsCert === undefined ? null : () => server.reloadTls(), () => server.state);
  let metrics: MetricsServer | null = null;
  try {
    metrics = await startMetrics(flags, logger, {
      source: createMetricsRegistry({
        stats: () => server.stats,
        info: () => server.info(),
        udpKernelDrops: () => server.udpKernelDrops(),
      }),
      ready: () => server.state === 'listening',
      connections: (query) => server.listConnections(query),
    });
    process.stdout.write(readyLine(await server.listen()));
    const tcpChoice = flags.tcpTransport ?? 'auto';
    const udpChoice = flags.udpTransport ?? 'auto';
    process.stdout.write(transportsLine({ tcp: server.tcpTransport, udp: server.udpTransport, tcpChoice, udpChoice, clustered: false }));
  } catch (err) {
    await metrics?.close();
    if (stop.signalled()) {
      await stop.done;
      return EXIT_OK;
    }
    stop.remove();
    return fail(err, logger, cli);
  }
  await stop.done;
  await metrics?.close();
  logger.info('exiting');
  return EXIT_OK;
}

/** The cluster primary (`--workers N`): forks, supervises, aggregates metrics, serves none itself. */
async function servePrimary(flags: ServeFlags, workers: number, logger: Logger, cli: Flags): Promise<number> {
  const primary = new ClusterPrimary({ workers, server: serverOptions(flags, logger), logger });
  let metrics: MetricsServer | null = null;
  const stop = onSignals(
    logger,
    () => primary.close(),
    () => primary.kill(),
  );
  // Each worker has its own TLS listener and reloads its own certificate; a worker still
  // starting is left alone (ClusterPrimary.hangup), it reads the files as it starts.
  const forwardHangup = (): void => {
    const told = primary.hangup();
    logger.info(
      { signal: 'SIGHUP', workers: told },
      flags.tlsCert === undefined ? 'SIGHUP: nothing to reload (no TLS)' : 'SIGHUP: passed to the workers',
    );
  };
  // For the process's whole life: the default action of SIGHUP would end it.
  process.on('SIGHUP', forwardHangup);
  try {
    metrics = await startMetrics(flags, logger, {
      source: primary,
      ready: () => primary.ready,
      connections: (query) => primary.connections(query),
    });
    const address = await primary.start();
    process.stdout.write(readyLine(address));
    process.stdout.write(transportsLine(clusterTransports(address.transports, flags.tcpTransport ?? 'auto', flags.udpTransport ?? 'auto')));
  } catch (err) {
    await metrics?.close();
    stop.remove();
    return fail(err, logger, cli);
  }
  await stop.done;
  await metrics?.close();
  logger.info({ forced: primary.forced }, 'exiting');
  return primary.forced ? EXIT_FAILURE : EXIT_OK;
}

/** A worker forked by the primary: same flags, the primary's port, no metrics endpoint of its own. */
async function serveWorker(flags: ServeFlags): Promise<number> {
  const logger = createLogger(flags.logLevel, { worker: clusterWorkerSlot() });
  const server = new UpcaseServer({ ...serverOptions(flags, logger), port: clusterWorkerPort() ?? flags.port });
  onHangup(logger, flags.tlsCert === undefined ? null : () => server.reloadTls(), () => server.state);
  const worker = new ClusterWorker(
    server,
    createMetricsRegistry({
      stats: () => server.stats,
      info: () => server.info(),
      worker: clusterWorkerSlot(),
      udpKernelDrops: () => server.udpKernelDrops(),
    }),
  );
  try {
    await worker.listen();
  } catch (_err) {
    // The primary logs the error and decides; this worker just goes.
    worker.disconnect();
    return EXIT_FAILURE;
  }
  // Signals reach workers too (Ctrl-C goes to the whole process group): drain, and
  // leave forcing to the primary, which kills workers on its second signal.
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.debug({ signal }, 'signal: draining');
    void server.close({ drain: true });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await worker.closed;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  worker.disconnect();
  return EXIT_OK;
}

async function startMetrics(
  flags: ServeFlags,
  logger: Logger,
  endpoint: Pick<Parameters<typeof startMetricsServer>[0], 'source' | 'ready' | 'connections'>,
): Promise<MetricsServer | null> {
  if (flags.metricsPort === undefined) return null;
  const server = await startMetricsServer({ port: flags.metricsPort, host: flags.metricsHost, logger, ...endpoint });
  // On stdout before the ready line, so a script (or a test using port 0) can read it.
  process.stdout.write(`Metrics on ${metricsUrl(server.address()!)} (/ status page, /metrics, /connections, /healthz, /readyz)\n`);
  return server;
}

/** A startup failure: exactly one line on stderr (a JSON log line would only repeat it). */
function fail(err: unknown, logger: Logger, cli: Flags): number {
  // A setting the library refuses only once it starts (a native transport that is not built) is a usage error too.
  let status = EXIT_USAGE;
  if (isUsageError(err)) process.stderr.write(`${cli.describe(err)}\n`);
  else status = reportFailure(err);
  logger.flush?.();
  return status;
}

/**
 * Handles SIGHUP for the rest of the process's life, so that it never ends the
 * process (its default action), whenever it comes: during start, a restart or
 * the drain. While the server listens, runs `reload` (reading the TLS certificate
 * and key files again, for new connections; open ones go on); a failed reload is
 * logged and the old certificate stays. Before that the server reads the files as
 * it starts, and while it drains there is nothing left to reload.
 */
function onHangup(logger: Logger, reload: (() => Promise<unknown>) | null, state: () => ServerState): void {
  process.on('SIGHUP', () => {
    if (reload === null) {
      logger.info({ signal: 'SIGHUP' }, 'SIGHUP: nothing to reload (no TLS)');
    } else if (state() !== 'listening') {
      logger.info({ signal: 'SIGHUP', state: state() }, 'SIGHUP: not reloading while the server is not listening');
    } else {
      logger.info({ signal: 'SIGHUP' }, 'reloading tls certificate');
      reload().catch((err: unknown) => {
        logger.error({ code: (err as { code?: string }).code }, `tls reload failed, keeping the old certificate: ${errorMessage(err)}`);
      });
    }
  });
}

/**
 * Installs SIGINT/SIGTERM handlers: the first signal runs `drain` (`done`
 * resolves when it has finished), a second one runs `force` and exits with
 * status 1. We install the handlers ourselves, so this works as PID 1 too (the
 * kernel ignores signals PID 1 has no handler for).
 */
function onSignals(
  logger: Logger,
  drain: () => Promise<void>,
  force: () => void,
): { done: Promise<void>; signalled: () => boolean; remove: () => void } {
  let signalled = false;
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const done = new Promise<void>((resolve) => {
    onSignal = (signal) => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        force();
        logger.flush?.();
        process.exit(EXIT_FAILURE);
      }
      signalled = true;
      logger.info({ signal }, 'shutting down: not ready, no new connections, draining');
      drain().then(resolve, resolve);
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    done,
    signalled: () => signalled,
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
