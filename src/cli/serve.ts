import { Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { formatHostPort, InvalidArgumentError } from '../errors.js';
import { checkCidrList, SERVER_DEFAULTS, UDP_TRANSPORTS, type ServerOptions, type UdpTransportChoice } from '../options.js';
import { UpcaseServer, type ServerAddress } from '../server/server.js';
import { EXIT_FAILURE, EXIT_OK, envOption, errorMessage, parseBoolean, parseHost, parseInteger, parseNumber, parsePort, parsed } from './common.js';

interface ServeFlags {
  host?: string;
  port: number;
  tcp: boolean;
  udp: boolean;
  maxConnections: number;
  idleTimeout: number;
  writeTimeout: number;
  udpRateLimit: number;
  udpAllowLowPorts: boolean;
  dropRate: number;
  drainTimeout: number;
  proxyProtocol: boolean;
  trustedProxies?: string[];
  proxyHeaderTimeout: number;
  udpTransport: UdpTransportChoice;
  tlsCert?: string;
  tlsKey?: string;
  tlsPort?: number;
  tlsHandshakeTimeout?: number;
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function serveCommand(setExitCode: (code: number) => void): Command {
  return new Command('serve')
    .description('run the upcase server: TCP and UDP on one port')
    .addOption(envOption('--host <host>', 'address to listen on (default: :: dual-stack, else 0.0.0.0)', 'UPCASE_HOST').argParser(parseHost('--host')))
    .addOption(envOption('-p, --port <port>', 'port for TCP and UDP; 0 picks a free one', 'UPCASE_PORT').argParser(parsePort('--port')).default(SERVER_DEFAULTS.port))
    .addOption(new Option('--no-tcp', 'do not serve TCP'))
    .addOption(new Option('--no-udp', 'do not serve UDP'))
    .addOption(
      envOption('--max-connections <n>', 'open TCP connections at most; more are closed at once', 'UPCASE_MAX_CONNECTIONS')
        .argParser(parseInteger('--max-connections', 1, 10_000_000))
        .default(SERVER_DEFAULTS.maxConnections),
    )
    .addOption(
      envOption('--idle-timeout <sec>', 'close a TCP connection silent this long in both directions; 0 = never', 'UPCASE_IDLE_TIMEOUT')
        .argParser(parseNumber('--idle-timeout', 0, 2_147_483, 'a non-negative number of seconds'))
        .default(SERVER_DEFAULTS.idleTimeout),
    )
    .addOption(
      envOption('--write-timeout <sec>', 'close a client that leaves replies unread this long; 0 = never', 'UPCASE_WRITE_TIMEOUT')
        .argParser(parseNumber('--write-timeout', 0, 2_147_483, 'a non-negative number of seconds'))
        .default(SERVER_DEFAULTS.writeTimeout),
    )
    .addOption(
      envOption('--udp-rate-limit <n>', 'UDP datagrams per second per source address; 0 = no limit', 'UPCASE_UDP_RATE_LIMIT')
        .argParser(parseNumber('--udp-rate-limit', 0, 1e9, 'a non-negative number of datagrams per second'))
        .default(SERVER_DEFAULTS.udpRateLimit),
    )
    .addOption(
      envOption('--udp-allow-low-ports [bool]', 'reply to UDP source ports below 1024 (off: loop protection)', 'UPCASE_UDP_ALLOW_LOW_PORTS')
        .argParser(parseBoolean('--udp-allow-low-ports'))
        .preset('true')
        .default(false),
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
      envOption('--proxy-protocol [bool]', 'expect a PROXY protocol v1/v2 header on every TCP connection (behind nginx or HAProxy)', 'UPCASE_PROXY_PROTOCOL')
        .argParser(parseBoolean('--proxy-protocol'))
        .preset('true')
        .default(false),
    )
    .addOption(
      envOption(
        '--trusted-proxies <cidrs>',
        `with --proxy-protocol: comma-separated CIDR blocks allowed to connect (default: ${SERVER_DEFAULTS.trustedProxies.join(',')})`,
        'UPCASE_TRUSTED_PROXIES',
      ).argParser((value: string) => parsed(() => checkCidrList('--trusted-proxies', value))),
    )
    .addOption(
      envOption('--proxy-header-timeout <sec>', 'with --proxy-protocol: close a connection without a complete header after this long', 'UPCASE_PROXY_HEADER_TIMEOUT')
        .argParser(parseNumber('--proxy-header-timeout', 0.001, 3600, 'a number of seconds from 0.001 to 3600'))
        .default(SERVER_DEFAULTS.proxyHeaderTimeout),
    )
    .addOption(
      envOption('--udp-transport <kind>', 'UDP transport: native (batched addon), dgram (node:dgram) or auto', 'UPCASE_UDP_TRANSPORT')
        .choices(UDP_TRANSPORTS)
        .default('auto'),
    )
    .addOption(envOption('--tls-cert <file>', 'TLS certificate (PEM, chain allowed); with --tls-key, serves TCP over TLS on --tls-port', 'UPCASE_TLS_CERT'))
    .addOption(envOption('--tls-key <file>', 'TLS private key (PEM, unencrypted) for --tls-cert', 'UPCASE_TLS_KEY'))
    .addOption(
      envOption('--tls-port <port>', `port for TCP over TLS; 0 picks a free one (default: ${SERVER_DEFAULTS.tlsPort})`, 'UPCASE_TLS_PORT').argParser(parsePort('--tls-port')),
    )
    .addOption(
      envOption('--tls-handshake-timeout <sec>', `close a TLS connection whose handshake takes longer (default: ${SERVER_DEFAULTS.tlsHandshakeTimeout})`, 'UPCASE_TLS_HANDSHAKE_TIMEOUT')
        .argParser(parseNumber('--tls-handshake-timeout', 0.001, 3600, 'a number of seconds from 0.001 to 3600')),
    )
    .addOption(envOption('--log-level <level>', 'log level', 'UPCASE_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .action(async (flags: ServeFlags, command: Command) => {
      if (flags.trustedProxies !== undefined && !flags.proxyProtocol) {
        command.error('error: --trusted-proxies (or UPCASE_TRUSTED_PROXIES) needs --proxy-protocol', { exitCode: 2 });
      }
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
        command.error('error: --tls-cert and --tls-key (or UPCASE_TLS_CERT and UPCASE_TLS_KEY) go together', { exitCode: 2 });
      }
      if (flags.tlsCert === undefined && (flags.tlsPort !== undefined || flags.tlsHandshakeTimeout !== undefined)) {
        command.error('error: --tls-port and --tls-handshake-timeout need --tls-cert and --tls-key', { exitCode: 2 });
      }
      setExitCode(await serve(flags, command));
    });
}

function createLogger(level: string): Logger {
  // JSON lines on stderr when piped; human-readable on a terminal. stdout is kept for the ready line.
  if (process.stderr.isTTY) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } }));
  }
  return pino({ level }, pino.destination({ fd: 2, sync: false }));
}

async function serve(flags: ServeFlags, command: Command): Promise<number> {
  if (!flags.tcp && !flags.udp && flags.tlsCert === undefined) {
    // Through commander, so it is a usage error like any other bad flag: exit 2.
    command.error('error: --no-tcp and --no-udp together leave nothing to serve');
  }
  const logger = createLogger(flags.logLevel);
  const options: ServerOptions = {
    host: flags.host,
    port: flags.port,
    tcp: flags.tcp,
    udp: flags.udp,
    maxConnections: flags.maxConnections,
    idleTimeout: flags.idleTimeout,
    writeTimeout: flags.writeTimeout,
    udpRateLimit: flags.udpRateLimit,
    udpAllowLowPorts: flags.udpAllowLowPorts,
    dropRate: flags.dropRate,
    drainTimeout: flags.drainTimeout,
    proxyProtocol: flags.proxyProtocol,
    trustedProxies: flags.trustedProxies,
    proxyHeaderTimeout: flags.proxyHeaderTimeout,
    udpTransport: flags.udpTransport,
    tlsCert: flags.tlsCert,
    tlsKey: flags.tlsKey,
    tlsPort: flags.tlsPort,
    tlsHandshakeTimeout: flags.tlsHandshakeTimeout,
    logger,
  };
  let server: UpcaseServer;
  try {
    server = new UpcaseServer(options);
  } catch (err) {
    if (err instanceof InvalidArgumentError) command.error(`error: ${err.message}`);
    throw err;
  }
  // The handlers go in before the ready line: whoever reads that line may signal at once.
  const stopped = closeOnSignal(server, logger);
  const stopReloading = flags.tlsCert === undefined ? () => {} : reloadOnHangup(server, logger);
  try {
    process.stdout.write(readyLine(await server.listen()));
  } catch (err) {
    stopReloading();
    if (stopped.signalled()) {
      // A signal during start-up: close() made listen() give up; that is a clean stop.
      await stopped.closed;
      return EXIT_OK;
    }
    stopped.remove();
    process.stderr.write(`upcase: ${errorMessage(err)}\n`);
    logger.flush?.();
    return EXIT_FAILURE;
  }
  await stopped.closed;
  stopReloading();
  return EXIT_OK;
}

/** `The server is ready to receive on tcp+udp [::]:12000, tls [::]:12443` */
function readyLine(address: ServerAddress): string {
  const plain = address.transports.filter((t) => t !== 'tls');
  const parts = plain.length > 0 ? [`${plain.join('+')} ${formatHostPort(address.host, address.port)}`] : [];
  if (address.tlsPort !== null) parts.push(`tls ${formatHostPort(address.host, address.tlsPort)}`);
  return `The server is ready to receive on ${parts.join(', ')}\n`;
}

/**
 * On SIGHUP, reads the TLS certificate and key files again (for new connections;
 * open ones go on). A bad new file is logged and the old certificate stays.
 * Returns a function that removes the handler.
 */
function reloadOnHangup(server: UpcaseServer, logger: Logger): () => void {
  const onHangup = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'reloading tls certificate');
    server.reloadTls().catch((err: unknown) => {
      logger.error({ code: (err as { code?: string }).code }, `tls reload failed, keeping the old certificate: ${errorMessage(err)}`);
    });
  };
  process.on('SIGHUP', onHangup);
  return () => process.off('SIGHUP', onHangup);
}

/**
 * On the first SIGINT/SIGTERM, drains and closes the server (`closed` resolves
 * then); a second signal forces the exit. `remove()` takes the handlers away.
 */
function closeOnSignal(server: UpcaseServer, logger: Logger): { closed: Promise<void>; signalled: () => boolean; remove: () => void } {
  let signalled = false;
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const closed = new Promise<void>((resolve) => {
    onSignal = (signal) => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(EXIT_FAILURE);
      }
      signalled = true;
      logger.info({ signal }, 'shutting down');
      server.close({ drain: true }).then(resolve, resolve);
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    closed,
    signalled: () => signalled,
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
