import cluster from 'node:cluster';
import { Command, type Option } from 'commander';
import pino, { type Logger } from 'pino';
import { formatHostPort, InvalidArgumentError } from '../errors.js';
import {
  checkCidrList,
  SERVER_DEFAULTS,
  TCP_TRANSPORTS,
  UDP_TRANSPORTS,
  type ServerOptions,
  type TcpTransportChoice,
  type UdpTransportChoice,
} from '../options.js';
import { ClusterPrimary, ClusterWorker, clusterWorkerPort, clusterWorkerSlot, resolveWorkerCount } from '../server/cluster.js';
import { createMetricsRegistry, METRICS_DEFAULT_HOST, type MetricsServer, metricsUrl, startMetricsServer } from '../server/metrics.js';
import { type ServerAddress, UpcaseServer } from '../server/server.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  envOption,
  errorMessage,
  parseBooleanEnv,
  parseHost,
  parseInteger,
  parseNumber,
  parsePort,
  parseWorkers,
  parsed,
} from './common.js';
import { SERVE_TRACE_TRANSPORTS, startTrace, traceFlag, traceOption } from './trace.js';

export interface ServeFlags {
  host?: string;
  port: number;
  tcp: boolean;
  udp: boolean;
  maxConnections: number;
  idleTimeout: number;
  writeTimeout: number;
  udpRateLimit: number;
  udpRateBurst?: number;
  udpAllowLowPorts: boolean;
  dropRate: number;
  drainTimeout: number;
  proxyProtocol: boolean;
  trustedProxies?: string[];
  proxyHeaderTimeout: number;
  udpTransport: UdpTransportChoice;
  tcpTransport: TcpTransportChoice;
  tlsCert?: string;
  tlsKey?: string;
  tlsPort?: number;
  tlsHandshakeTimeout?: number;
  logLevel: string;
  workers: number | 'auto';
  metricsPort?: number;
  metricsHost: string;
  trace: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// Commander sets a boolean flag's value when its variable merely exists (so
// UPCASE_UDP_ALLOW_LOW_PORTS=false would turn it on); these are parsed from the
// variable's value instead, see applyBooleanEnv.
const BOOLEAN_ENV: Array<{ key: 'tcp' | 'udp' | 'udpAllowLowPorts' | 'proxyProtocol' | 'trace'; flag: string; env: string }> = [
  { key: 'tcp', flag: '--no-tcp', env: 'UPCASE_TCP' },
  { key: 'udp', flag: '--no-udp', env: 'UPCASE_UDP' },
  { key: 'udpAllowLowPorts', flag: '--udp-allow-low-ports', env: 'UPCASE_UDP_ALLOW_LOW_PORTS' },
  { key: 'proxyProtocol', flag: '--proxy-protocol', env: 'UPCASE_PROXY_PROTOCOL' },
  { key: 'trace', flag: '--trace', env: 'UPCASE_TRACE' },
];

/** The `serve` command's flags, without an action. Every flag has an `UPCASE_*` variable; the flag wins. */
function serveOptions(): Command {
  return new Command('serve')
    .description('run the upcase server: TCP and UDP on one port')
    .configureHelp({ optionDescription: describeOption })
    .addOption(
      envOption('--host <host>', 'address to listen on', 'UPCASE_HOST')
        .argParser(parseHost('--host'))
        .default(undefined, ':: dual-stack, else 0.0.0.0'),
    )
    .addOption(
      envOption('-p, --port <port>', 'port for TCP and UDP; 0 picks a free one', 'UPCASE_PORT')
        .argParser(parsePort('--port'))
        .default(SERVER_DEFAULTS.port),
    )
    .addOption(envOption('--no-tcp', 'do not serve TCP', 'UPCASE_TCP').default(true, 'TCP on'))
    .addOption(envOption('--no-udp', 'do not serve UDP', 'UPCASE_UDP').default(true, 'UDP on'))
    .addOption(
      envOption(
        '--max-connections <n>',
        'open TCP connections at most; more are closed at once (lowered to fit ulimit -n)',
        'UPCASE_MAX_CONNECTIONS',
      )
        .argParser(parseInteger('--max-connections', 1, 10_000_000))
        .default(SERVER_DEFAULTS.maxConnections),
    )
    .addOption(
      envOption('--idle-timeout <sec>', 'close a TCP connection silent this long in both directions; 0 = never', 'UPCASE_IDLE_TIMEOUT')
        .argParser(parseNumber('--idle-timeout', 0, 2_147_483, 'a non-negative number of seconds'))
        .default(SERVER_DEFAULTS.idleTimeout),
    )
    .addOption(
      envOption('--write-timeout <sec>', 'reset a client that leaves replies unread this long; 0 = never', 'UPCASE_WRITE_TIMEOUT')
        .argParser(parseNumber('--write-timeout', 0, 2_147_483, 'a non-negative number of seconds'))
        .default(SERVER_DEFAULTS.writeTimeout),
    )
    .addOption(
      envOption(
        '--udp-rate-limit <n>',
        'UDP datagrams per second per source address (IPv6: per /64); 0 = no limit',
        'UPCASE_UDP_RATE_LIMIT',
      )
        .argParser(parseNumber('--udp-rate-limit', 0, 1e9, 'a non-negative number of datagrams per second'))
        .default(SERVER_DEFAULTS.udpRateLimit),
    )
    .addOption(
      envOption('--udp-rate-burst <n>', 'datagrams a source may send at once before --udp-rate-limit applies', 'UPCASE_UDP_RATE_BURST')
        .argParser(parseNumber('--udp-rate-burst', 1, 1e9, 'a number of datagrams >= 1'))
        .default(undefined, 'the rate limit, at least 1'),
    )
    .addOption(
      envOption(
        '--udp-allow-low-ports',
        'reply to UDP source ports below 1024 (off by default: stops loops with echo, chargen, DNS, NTP)',
        'UPCASE_UDP_ALLOW_LOW_PORTS',
      ).default(false),
    )
    .addOption(
      envOption('--drop-rate <p>', 'drop this fraction of UDP requests on purpose, to simulate loss', 'UPCASE_DROP_RATE')
        .argParser(parseNumber('--drop-rate', 0, 1, 'a probability from 0 to 1'))
        .default(SERVER_DEFAULTS.dropRate),
    )
    .addOption(
      envOption('--drain-timeout <sec>', 'on SIGTERM/SIGINT, seconds open connections may finish', 'UPCASE_DRAIN_TIMEOUT')
        .argParser(parseNumber('--drain-timeout', 0, 2_147_483, 'a non-negative number of seconds'))
        .default(SERVER_DEFAULTS.drainTimeout),
    )
    .addOption(
      envOption(
        '--proxy-protocol',
        'expect a PROXY protocol v1/v2 header on every TCP connection (behind nginx or HAProxy)',
        'UPCASE_PROXY_PROTOCOL',
      ).default(false),
    )
    .addOption(
      envOption(
        '--trusted-proxies <cidrs>',
        'with --proxy-protocol: comma-separated CIDR blocks allowed to connect',
        'UPCASE_TRUSTED_PROXIES',
      )
        .argParser((value: string) => parsed(() => checkCidrList('--trusted-proxies', value)))
        .default(undefined, SERVER_DEFAULTS.trustedProxies.join(',')),
    )
    .addOption(
      envOption(
        '--proxy-header-timeout <sec>',
        'with --proxy-protocol: close a connection without a complete header after this long',
        'UPCASE_PROXY_HEADER_TIMEOUT',
      )
        .argParser(parseNumber('--proxy-header-timeout', 0.001, 3600, 'a number of seconds from 0.001 to 3600'))
        .default(SERVER_DEFAULTS.proxyHeaderTimeout),
    )
    .addOption(
      envOption(
        '--udp-transport <kind>',
        'UDP transport: native (batched recvmmsg/sendmmsg addon), dgram (node:dgram) or auto',
        'UPCASE_UDP_TRANSPORT',
      )
        .choices(UDP_TRANSPORTS)
        .default('auto'),
    )
    .addOption(
      envOption(
        '--tcp-transport <kind>',
        'TCP transport: native (connections served by the C addon), stream (net.Socket) or auto',
        'UPCASE_TCP_TRANSPORT',
      )
        .choices(TCP_TRANSPORTS)
        .default('auto'),
    )
    .addOption(
      envOption(
        '--tls-cert <file>',
        'TLS certificate (PEM, chain allowed); with --tls-key, serves TCP over TLS on --tls-port',
        'UPCASE_TLS_CERT',
      ).default(undefined, 'no TLS'),
    )
    .addOption(
      envOption('--tls-key <file>', 'TLS private key (PEM, unencrypted) for --tls-cert', 'UPCASE_TLS_KEY').default(undefined, 'no TLS'),
    )
    .addOption(
      envOption('--tls-port <port>', 'with --tls-cert: port for TCP over TLS; 0 picks a free one', 'UPCASE_TLS_PORT')
        .argParser(parsePort('--tls-port'))
        .default(undefined, String(SERVER_DEFAULTS.tlsPort)),
    )
    .addOption(
      envOption(
        '--tls-handshake-timeout <sec>',
        'with --tls-cert: close a TLS connection whose handshake takes longer',
        'UPCASE_TLS_HANDSHAKE_TIMEOUT',
      )
        .argParser(parseNumber('--tls-handshake-timeout', 0.001, 3600, 'a number of seconds from 0.001 to 3600'))
        .default(undefined, String(SERVER_DEFAULTS.tlsHandshakeTimeout)),
    )
    .addOption(
      envOption('--workers <n|auto>', 'worker processes (node:cluster), each serving TCP and UDP; auto = one per CPU', 'UPCASE_WORKERS')
        .argParser(parseWorkers('--workers'))
        .default(1),
    )
    .addOption(
      envOption(
        '--metrics-port <port>',
        'serve /metrics, /healthz and /readyz over HTTP on this port; 0 picks a free one',
        'UPCASE_METRICS_PORT',
      )
        .argParser(parsePort('--metrics-port'))
        .default(undefined, 'off'),
    )
    .addOption(
      envOption('--metrics-host <host>', 'address of the metrics endpoint', 'UPCASE_METRICS_HOST')
        .argParser(parseHost('--metrics-host'))
        .default(METRICS_DEFAULT_HOST),
    )
    .addOption(envOption('--log-level <level>', 'log level', 'UPCASE_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .addOption(traceOption("the server's"));
}

/**
 * Every flag's help ends with its default and its variable, including the flags
 * commander would show neither for (negated flags, defaults that are not values).
 */
function describeOption(option: Option): string {
  const info: string[] = [];
  if (option.argChoices) info.push(`choices: ${option.argChoices.join(', ')}`);
  const fallback = option.defaultValue === undefined ? undefined : JSON.stringify(option.defaultValue);
  const defaultText = option.defaultValueDescription ?? fallback;
  if (defaultText !== undefined) info.push(`default: ${defaultText}`);
  const boolean = BOOLEAN_ENV.some((b) => b.env === option.envVar);
  if (option.envVar !== undefined) info.push(`env: ${option.envVar}${boolean ? '=true|false' : ''}`);
  return info.length === 0 ? option.description : `${option.description} (${info.join(', ')})`;
}

/**
 * Boolean flags from their variable's value: true/false, 1/0, yes/no, on/off.
 * Anything else is a usage error naming the flag, the variable and the value.
 */
function applyBooleanEnv(command: Command): void {
  for (const { key, flag, env } of BOOLEAN_ENV) {
    if (command.getOptionValueSource(key) !== 'env') continue;
    const raw = process.env[env] ?? '';
    const value = parseBooleanEnv(raw);
    if (value === undefined) {
      command.error(
        `error: option '${flag}' value '${raw}' from env '${env}' is invalid. Expected \`${env}\` to be true or false, got \`${raw}\``,
        {
          exitCode: EXIT_USAGE,
          code: 'commander.invalidArgument',
        },
      );
    }
    command.setOptionValueWithSource(key, value, 'env');
  }
}

export function serveCommand(setExitCode: (code: number) => void): Command {
  return serveOptions().action(async (_flags: ServeFlags, command: Command) => {
    applyBooleanEnv(command);
    const flags = command.opts<ServeFlags>();
    flags.trace = traceFlag(command);
    if (flags.trace) checkTraceFlags(command, flags);
    if (flags.trustedProxies !== undefined && !flags.proxyProtocol) {
      command.error('error: --trusted-proxies (or UPCASE_TRUSTED_PROXIES) needs --proxy-protocol', { exitCode: EXIT_USAGE });
    }
    if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
      command.error('error: --tls-cert and --tls-key (or UPCASE_TLS_CERT and UPCASE_TLS_KEY) go together', { exitCode: EXIT_USAGE });
    }
    if (flags.tlsCert === undefined && (flags.tlsPort !== undefined || flags.tlsHandshakeTimeout !== undefined)) {
      command.error('error: --tls-port and --tls-handshake-timeout (or their UPCASE_TLS_* variables) need --tls-cert and --tls-key', {
        exitCode: EXIT_USAGE,
      });
    }
    if (!flags.tcp && !flags.udp && flags.tlsCert === undefined) {
      command.error('error: --no-tcp and --no-udp together leave nothing to serve', { exitCode: EXIT_USAGE });
    }
    setExitCode(await serve(flags));
  });
}

/**
 * `--trace` narrates one process's socket steps on the transports that report
 * them: it refuses the native ones and workers, and keeps the logs to warnings
 * unless a log level is given, so the narration reads on its own.
 */
function checkTraceFlags(command: Command, flags: ServeFlags): void {
  const refuse = (what: string): never => command.error(`error: --trace ${what}`, { exitCode: EXIT_USAGE });
  if (flags.workers !== 1) refuse('traces one process: it needs --workers 1');
  if (flags.tcpTransport === 'native') refuse('needs --tcp-transport stream or auto (the native transport does not report each read)');
  if (flags.udpTransport === 'native') refuse('needs --udp-transport dgram or auto (the native transport does not report each read)');
  if (command.getOptionValueSource('logLevel') === 'default') flags.logLevel = 'warn';
}

/**
 * Parses `serve` arguments (and `UPCASE_*` variables) exactly as `upcase serve`
 * would, without serving. Rejects with commander's error on a bad value.
 */
export async function parseServeArgs(args: string[]): Promise<ServeFlags> {
  let result: ServeFlags | undefined;
  const command = serveOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .action((_flags: ServeFlags, cmd: Command) => {
      applyBooleanEnv(cmd);
      result = cmd.opts<ServeFlags>();
      result.trace = traceFlag(cmd);
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

function serverOptions(flags: ServeFlags, logger: Logger): ServerOptions {
  return {
    host: flags.host,
    port: flags.port,
    tcp: flags.tcp,
    udp: flags.udp,
    maxConnections: flags.maxConnections,
    idleTimeout: flags.idleTimeout,
    writeTimeout: flags.writeTimeout,
    udpRateLimit: flags.udpRateLimit,
    udpRateBurst: flags.udpRateBurst,
    udpAllowLowPorts: flags.udpAllowLowPorts,
    dropRate: flags.dropRate,
    drainTimeout: flags.drainTimeout,
    proxyProtocol: flags.proxyProtocol,
    trustedProxies: flags.trustedProxies,
    proxyHeaderTimeout: flags.proxyHeaderTimeout,
    udpTransport: flags.udpTransport,
    tcpTransport: flags.tcpTransport,
    tlsCert: flags.tlsCert,
    tlsKey: flags.tlsKey,
    tlsPort: flags.tlsPort,
    tlsHandshakeTimeout: flags.tlsHandshakeTimeout,
    logger,
  };
}

/** `The server is ready to receive on tcp+udp [::]:12000, tls [::]:12443` */
function readyLine(address: ServerAddress): string {
  const plain = address.transports.filter((t) => t !== 'tls');
  const parts = plain.length > 0 ? [`${plain.join('+')} ${formatHostPort(address.host, address.port)}`] : [];
  if (address.tlsPort !== null) parts.push(`tls ${formatHostPort(address.host, address.tlsPort)}`);
  return `The server is ready to receive on ${parts.join(', ')}\n`;
}

async function serve(flags: ServeFlags): Promise<number> {
  if (cluster.isWorker) return serveWorker(flags);
  const logger = createLogger(flags.logLevel);
  const workers = resolveWorkerCount(flags.workers);
  // The effective configuration, once, so an operator can see what a process runs with.
  logger.debug({ ...flags, workers, metricsPort: flags.metricsPort ?? 'off' }, 'starting');
  return workers > 1 ? servePrimary(flags, workers, logger) : serveSingle(flags, logger);
}

/** One process serving everything (`--workers 1`, the default). */
async function serveSingle(flags: ServeFlags, logger: Logger): Promise<number> {
  let server: UpcaseServer;
  try {
    const tracer = flags.trace ? startTrace(SERVE_TRACE_TRANSPORTS) : undefined;
    server = new UpcaseServer(serverOptions(flags, logger), { tracer });
  } catch (err) {
    return fail(err, logger);
  }
  // The handlers go in before the ready line: whoever reads that line may signal at once.
  // A signal during start-up makes close() abort listen(): a clean stop.
  const stop = onSignals(
    logger,
    () => server.close({ drain: true }),
    () => {},
  );
  const stopReloading = flags.tlsCert === undefined ? () => {} : onHangup(logger, () => server.reloadTls());
  let metrics: MetricsServer | null = null;
  try {
    metrics = await startMetrics(flags, logger, {
      source: createMetricsRegistry({ stats: server.stats }),
      ready: () => server.state === 'listening',
    });
    process.stdout.write(readyLine(await server.listen()));
  } catch (err) {
    await metrics?.close();
    stopReloading();
    if (stop.signalled()) {
      await stop.done;
      return EXIT_OK;
    }
    stop.remove();
    return fail(err, logger);
  }
  await stop.done;
  stopReloading();
  await metrics?.close();
  logger.info('exiting');
  return EXIT_OK;
}

/** The cluster primary (`--workers N`): forks, supervises, aggregates metrics, serves none itself. */
async function servePrimary(flags: ServeFlags, workers: number, logger: Logger): Promise<number> {
  const primary = new ClusterPrimary({ workers, server: serverOptions(flags, logger), logger });
  let metrics: MetricsServer | null = null;
  const stop = onSignals(
    logger,
    () => primary.close(),
    () => primary.kill(),
  );
  // Each worker has its own TLS listener and reloads its own certificate.
  const forwardHangup = (): void => {
    for (const pid of primary.workerPids()) {
      try {
        process.kill(pid, 'SIGHUP');
      } catch {
        // The worker has just died; its replacement reads the files when it starts.
      }
    }
  };
  if (flags.tlsCert !== undefined) process.on('SIGHUP', forwardHangup);
  try {
    metrics = await startMetrics(flags, logger, { source: primary, ready: () => primary.ready });
    process.stdout.write(readyLine(await primary.start()));
  } catch (err) {
    await metrics?.close();
    stop.remove();
    process.off('SIGHUP', forwardHangup);
    return fail(err, logger);
  }
  await stop.done;
  process.off('SIGHUP', forwardHangup);
  await metrics?.close();
  logger.info({ forced: primary.forced }, 'exiting');
  return primary.forced ? EXIT_FAILURE : EXIT_OK;
}

/** A worker forked by the primary: same flags, the primary's port, no metrics endpoint of its own. */
async function serveWorker(flags: ServeFlags): Promise<number> {
  const logger = createLogger(flags.logLevel, { worker: clusterWorkerSlot() });
  const server = new UpcaseServer({ ...serverOptions(flags, logger), port: clusterWorkerPort() ?? flags.port });
  const worker = new ClusterWorker(server, createMetricsRegistry({ stats: server.stats }));
  const stopReloading = flags.tlsCert === undefined ? () => {} : onHangup(logger, () => server.reloadTls());
  try {
    await worker.listen();
  } catch (_err) {
    // The primary logs the error and decides; this worker just goes.
    stopReloading();
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
  stopReloading();
  worker.disconnect();
  return EXIT_OK;
}

async function startMetrics(
  flags: ServeFlags,
  logger: Logger,
  endpoint: Pick<Parameters<typeof startMetricsServer>[0], 'source' | 'ready'>,
): Promise<MetricsServer | null> {
  if (flags.metricsPort === undefined) return null;
  const server = await startMetricsServer({ port: flags.metricsPort, host: flags.metricsHost, logger, ...endpoint });
  // On stdout before the ready line, so a script (or a test using port 0) can read it.
  process.stdout.write(`Metrics on ${metricsUrl(server.address()!)} (/metrics, /healthz, /readyz)\n`);
  return server;
}

/** A startup failure: exactly one line on stderr (a JSON log line would only repeat it). */
function fail(err: unknown, logger: Logger): number {
  process.stderr.write(`upcase: ${errorMessage(err)}\n`);
  logger.flush?.();
  // A combination of flags the library refuses (e.g. --no-tcp --no-udp) is a usage error too.
  return err instanceof InvalidArgumentError ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * On SIGHUP, runs `reload` (reading the TLS certificate and key files again, for
 * new connections; open ones go on). A failed reload is logged and the old
 * certificate stays. Returns a function that removes the handler.
 */
function onHangup(logger: Logger, reload: () => Promise<unknown>): () => void {
  const onSignal = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'reloading tls certificate');
    reload().catch((err: unknown) => {
      logger.error({ code: (err as { code?: string }).code }, `tls reload failed, keeping the old certificate: ${errorMessage(err)}`);
    });
  };
  process.on('SIGHUP', onSignal);
  return () => process.off('SIGHUP', onSignal);
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
