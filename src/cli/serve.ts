import { Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { SERVER_DEFAULTS, type ServerOptions } from '../options.js';
import { UpcaseServer } from '../server/server.js';
import { EXIT_FAILURE, EXIT_OK, envOption, errorMessage, parseHost, parseInteger, parseNumber, parsePort } from './common.js';

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
      envOption('--max-connections <n>', 'open TCP connections at most; more are closed at once (lowered to fit ulimit -n)', 'UPCASE_MAX_CONNECTIONS')
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
      envOption('--udp-rate-limit <n>', 'UDP datagrams per second per source address (IPv6: per /64), burst the same; 0 = no limit', 'UPCASE_UDP_RATE_LIMIT')
        .argParser(parseNumber('--udp-rate-limit', 0, 1e9, 'a non-negative number of datagrams per second'))
        .default(SERVER_DEFAULTS.udpRateLimit),
    )
    .addOption(envOption('--udp-allow-low-ports', 'reply to UDP source ports below 1024 (off by default: stops loops with echo, chargen, DNS, NTP)', 'UPCASE_UDP_ALLOW_LOW_PORTS').default(false))
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
    .addOption(envOption('--log-level <level>', 'log level', 'UPCASE_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .action(async (flags: ServeFlags, command: Command) => {
      // commander turns a boolean flag on whenever its variable is set, even to `0`
      // or `false`; for a guard that would be a trap, so read the value strictly.
      if (command.getOptionValueSource('udpAllowLowPorts') === 'env') {
        const value = booleanEnv(process.env.UPCASE_UDP_ALLOW_LOW_PORTS);
        if (value === undefined) {
          command.error(
            `error: UPCASE_UDP_ALLOW_LOW_PORTS must be 1, true, yes, on, 0, false, no or off, got '${process.env.UPCASE_UDP_ALLOW_LOW_PORTS}'`,
            { exitCode: 2, code: 'commander.invalidArgument' },
          );
        }
        flags.udpAllowLowPorts = value;
      }
      setExitCode(await serve(flags));
    });
}

function booleanEnv(value: string | undefined): boolean | undefined {
  const v = (value ?? '').trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(v)) return false;
  return undefined;
}

function createLogger(level: string): Logger {
  // JSON lines on stderr when piped; human-readable on a terminal. stdout is kept for the ready line.
  if (process.stderr.isTTY) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } }));
  }
  return pino({ level }, pino.destination({ fd: 2, sync: false }));
}

async function serve(flags: ServeFlags): Promise<number> {
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
    logger,
  };
  let server: UpcaseServer;
  try {
    server = new UpcaseServer(options);
    const address = await server.listen();
    const where = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
    process.stdout.write(`The server is ready to receive on ${address.transports.join('+')} ${where}\n`);
  } catch (err) {
    process.stderr.write(`upcase: ${errorMessage(err)}\n`);
    logger.flush?.();
    return EXIT_FAILURE;
  }
  await waitForSignal(server, logger);
  return EXIT_OK;
}

/** Resolves once a SIGINT/SIGTERM has drained and closed the server; a second signal forces the exit. */
function waitForSignal(server: UpcaseServer, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(EXIT_FAILURE);
      }
      signalled = true;
      logger.info({ signal }, 'shutting down');
      server.close({ drain: true }).then(resolve, resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
