import { Command, Option } from 'commander';
import readline from 'node:readline';
import { checkReply, type ReplyCheck } from '../client/check.js';
import { IncompleteReplyError } from '../client/errors.js';
import { CLIENT_DEFAULTS, type ClientOptions } from '../client/options.js';
import { tcpRequest, tcpStream } from '../client/tcp.js';
import { sendLines, UdpClient } from '../client/udp.js';
import { SERVER_DEFAULTS } from '../options.js';
import { EXIT_BAD_REPLY, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, errorMessage, parseHost, parseInteger, parseNumber } from './common.js';

interface ClientFlags {
  tcp?: boolean;
  udp?: boolean;
  host: string;
  port?: number;
  timeout?: number;
  retries: number;
  tls?: boolean;
  ca?: string;
  servername?: string;
  insecure?: boolean;
}

/** Sends one message and resolves with its reply. */
type Send = (message: Buffer) => Promise<Buffer>;

/** Lines of piped input in flight at once over UDP; replies are still printed in input order. */
const UDP_WINDOW = 16;
const PROMPT = 'Input lowercase sentence: ';

export function clientCommand(setExitCode: (code: number) => void): Command {
  return new Command('client')
    .summary('send messages to the server and print the replies (TCP, TLS or UDP)')
    .description(
      'send messages and print the replies. With MESSAGE arguments: one reply line each. ' +
        'On a terminal: prompt for lines, as the textbook client does. With piped input: TCP streams it ' +
        'byte for byte; UDP sends each line as one datagram and prints the replies in order.',
    )
    .argument('[message...]', 'messages to send, one reply line each')
    .addOption(new Option('--tcp', 'use TCP (the default)').conflicts('udp'))
    .addOption(new Option('--udp', 'use UDP').conflicts(['tcp', 'tls']))
    .addOption(new Option('--tls', 'TCP over TLS; the server certificate is verified'))
    .addOption(new Option('--ca <file>', 'with --tls: trust the CA certificate(s) in this PEM file instead of the system store'))
    .addOption(
      new Option('--servername <name>', 'with --tls: the name the certificate must carry (default: --host)').argParser(
        parseHost('--servername'),
      ),
    )
    .addOption(new Option('--insecure', 'with --tls: do not verify the certificate (testing only)'))
    .addOption(new Option('--host <host>', 'server host').argParser(parseHost('--host')).default(CLIENT_DEFAULTS.host))
    .addOption(
      new Option('-p, --port <port>', 'server port')
        .argParser(parseInteger('--port', 1, 65535))
        .default(undefined, `${CLIENT_DEFAULTS.port}, or ${SERVER_DEFAULTS.tlsPort} with --tls`),
    )
    .addOption(
      new Option(
        '--timeout <ms>',
        `milliseconds: UDP, to wait for each try (default ${CLIENT_DEFAULTS.udpTimeout}); ` +
          `TCP, to connect and the longest server silence while a reply is owed (default ${CLIENT_DEFAULTS.tcpTimeout})`,
      ).argParser(parseNumber('--timeout', 1, 2_147_483_647, 'a number of milliseconds from 1 to 2147483647')),
    )
    .addOption(
      new Option('--retries <n>', 'UDP: tries after the first before giving up')
        .argParser(parseInteger('--retries', 0, 1000))
        .default(CLIENT_DEFAULTS.retries),
    )
    .action(async (messages: string[], flags: ClientFlags, command: Command) => {
      const tlsOnly = (['ca', 'servername', 'insecure'] as const).filter((k) => flags[k] !== undefined);
      if (flags.tls !== true && tlsOnly.length > 0) {
        command.error(`error: --${tlsOnly[0]} needs --tls`, { exitCode: EXIT_USAGE });
      }
      setExitCode(await runClient(messages, flags));
    });
}

async function runClient(messages: string[], flags: ClientFlags): Promise<number> {
  const tls = flags.tls === true ? { ca: flags.ca, servername: flags.servername, insecure: flags.insecure === true } : undefined;
  if (tls?.insecure === true) process.stderr.write('upcase: warning: --insecure: the server certificate is not verified\n');
  const options = { host: flags.host, port: flags.port, timeout: flags.timeout, retries: flags.retries };
  if (flags.udp !== true) {
    const tcpOptions = { ...options, tls };
    if (messages.length === 0 && !process.stdin.isTTY) return streamTcp(tcpOptions);
    const send: Send = (message) => tcpRequest(message, tcpOptions);
    return messages.length > 0 ? sendMessages(messages, send) : interactive(send);
  }
  const client = new UdpClient(options);
  const send: Send = (message) => client.request(message);
  try {
    if (messages.length > 0) return await sendMessages(messages, send);
    if (process.stdin.isTTY) return await interactive(send);
    return await streamUdpLines(client);
  } finally {
    await client.close();
  }
}

/** One message per argument, one reply line each; stops at the first failure. */
async function sendMessages(messages: string[], send: Send): Promise<number> {
  let exitCode = EXIT_OK;
  for (const text of messages) {
    const message = Buffer.from(text, 'utf8');
    try {
      const reply = await send(message);
      process.stdout.write(Buffer.concat([reply, NEWLINE]));
      if (!warnIfNotUppercase(checkReply(message, reply))) exitCode = EXIT_BAD_REPLY;
    } catch (err) {
      return fail(err);
    }
  }
  return exitCode;
}

/** The textbook's loop: prompt, send, print `From server: …`, until EOF (Ctrl-D). */
async function interactive(send: Send): Promise<number> {
  // Prompts go to the terminal; if stdout is redirected, they go to stderr so stdout keeps only replies.
  const prompts = process.stdout.isTTY ? process.stdout : process.stderr;
  const rl = readline.createInterface({ input: process.stdin, output: prompts, terminal: prompts.isTTY === true, historySize: 1000 });
  let exitCode = EXIT_OK;
  let closed = false;
  rl.once('close', () => (closed = true));
  rl.setPrompt(PROMPT);
  rl.prompt();
  for await (const line of rl) {
    const message = Buffer.from(line, 'utf8');
    try {
      const reply = await send(message);
      process.stdout.write(`From server: ${reply.toString('utf8')}\n`);
      if (!warnIfNotUppercase(checkReply(message, reply)) && exitCode === EXIT_OK) exitCode = EXIT_BAD_REPLY;
    } catch (err) {
      // One failed line does not end the session (the server may be back for the next).
      exitCode = fail(err, 'From server: ');
    }
    // Ctrl-D may have come while we waited; prompting a closed interface would resume stdin.
    if (!closed) rl.prompt();
  }
  process.stdin.pause();
  if (prompts.isTTY) prompts.write('\n');
  return exitCode;
}

async function streamTcp(options: ClientOptions): Promise<number> {
  try {
    const result = await tcpStream(process.stdin, process.stdout, options);
    if (!result.inputComplete) {
      process.stderr.write(
        `upcase: warning: the server closed the connection before the end of the input (${result.bytesSent} bytes sent)\n`,
      );
      if (result.check.verdict === 'match') return EXIT_BAD_REPLY;
    }
    return warnIfNotUppercase(result.check) ? EXIT_OK : EXIT_BAD_REPLY;
  } catch (err) {
    // A reader that went away (`upcase client < f | head`) is not an error.
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return EXIT_OK;
    return fail(err);
  }
}

async function streamUdpLines(client: UdpClient): Promise<number> {
  try {
    const result = await sendLines(process.stdin, process.stdout, client, { window: UDP_WINDOW });
    if (client.stats.late > 0) {
      process.stderr.write(`upcase: ${client.stats.late} late or duplicate replies were dropped\n`);
    }
    if (result.firstBad === null) return EXIT_OK;
    const bad = result.truncated + result.mismatched;
    process.stderr.write(
      `upcase: warning: ${bad} of ${result.lines} replies ${bad === 1 ? 'was' : 'were'} not the uppercase of their line ` +
        `(${result.truncated} truncated by the server); the first, line ${result.firstBad.line}: ${describeCheck(result.firstBad.check)}\n`,
    );
    return EXIT_BAD_REPLY;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return EXIT_OK;
    return fail(err);
  }
}

/**
 * upcase knows the rule, so it can tell when a reply is not the uppercase of
 * the message: typically a server that truncates (the textbook's reads 1024
 * bytes over TCP, 2048 over UDP). The reply is printed as it came; this warns,
 * and the caller exits with EXIT_BAD_REPLY (3). Returns true when the reply matched.
 */
function warnIfNotUppercase(check: ReplyCheck): boolean {
  if (check.verdict === 'match') return true;
  process.stderr.write(`upcase: warning: ${describeCheck(check)}\n`);
  return false;
}

function describeCheck(check: ReplyCheck): string {
  return check.verdict === 'truncated'
    ? `the reply has ${check.received} of the ${check.expected} bytes expected; the server truncated the message`
    : `the reply is not the uppercase of the message (${check.received} bytes, ${check.expected} expected)`;
}

/** Prints a failure as one line on stderr (and any partial reply on stdout) and returns the exit code. */
function fail(err: unknown, replyPrefix = ''): number {
  if (err instanceof IncompleteReplyError) process.stdout.write(Buffer.concat([Buffer.from(replyPrefix), err.received, NEWLINE]));
  process.stderr.write(`upcase: ${errorMessage(err)}\n`);
  return EXIT_FAILURE;
}

const NEWLINE = Buffer.from('\n');
