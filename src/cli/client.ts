import { Command } from 'commander';
import readline from 'node:readline';
import { checkReply, type ReplyCheck } from '../client/check.js';
import { NetworkError } from '../errors.js';
import { CLIENT_OPTIONS, type ClientOptions, normalizeClientOptions, TLS_OPTIONS, TRANSPORT_OPTIONS } from '../client/options.js';
import { tcpRequest, tcpStream } from '../client/tcp.js';
import { sendLines, UdpClient } from '../client/udp.js';
import { boolean } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { EXIT_BAD_REPLY, EXIT_OK } from './common.js';
import { reportFailure } from './failure.js';
import { addOptions, Flags } from './options.js';
import { startTrace } from './trace.js';

/** `upcase client`'s options: transport, TLS, then the client's (src/client/options.ts). */
export const CLIENT_COMMAND_OPTIONS = {
  ...TRANSPORT_OPTIONS,
  ...TLS_OPTIONS,
  ...CLIENT_OPTIONS,
  trace: {
    kind: boolean(),
    default: false,
    help: "narrate the client's socket steps on stderr, payload included ([tutorial](tutorial.md))",
    cli: true,
  },
} as const satisfies Table;

/** Sends one message and resolves with its reply. */
type Send = (message: Buffer) => Promise<Buffer>;

/** Lines of piped input in flight at once over UDP; replies are still printed in input order. */
const UDP_WINDOW = 16;
const PROMPT = 'Input lowercase sentence: ';

export function clientCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('client')
    .summary('send messages to the server and print the replies (TCP, TLS or UDP)')
    .description(
      'send messages and print the replies. With MESSAGE arguments: one reply line each. ' +
        'On a terminal: prompt for lines, as the textbook client does. With piped input: TCP streams it ' +
        'byte for byte; UDP sends each line as one datagram and prints the replies in order.',
    )
    .argument('[message...]', 'messages to send, one reply line each');
  return addOptions(command, CLIENT_COMMAND_OPTIONS).action(async (messages: string[], _flags: unknown, cmd: Command) => {
    const cli = new Flags('upcase client', CLIENT_COMMAND_OPTIONS, cmd);
    let options: ClientOptions;
    let transport: 'tcp' | 'udp';
    try {
      const given = cli.options<ClientOptions & { udp?: boolean; trace?: boolean }>(CLIENT_COMMAND_OPTIONS);
      transport = given.udp === true ? 'udp' : 'tcp';
      options = pick(given, Object.keys(CLIENT_OPTIONS));
      normalizeClientOptions(options, transport);
      if (given.trace === true) options.tracer = startTrace();
    } catch (err) {
      setExitCode(cli.refuse(err));
      return;
    }
    setExitCode(await runClient(messages, options, transport));
  });
}

/** The options named in `keys`. */
export function pick<T>(values: object, keys: readonly string[]): T {
  const v = values as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]])) as T;
}

async function runClient(messages: string[], options: ClientOptions, transport: 'tcp' | 'udp'): Promise<number> {
  const tls = normalizeClientOptions(options, transport).tls;
  if (tls?.insecure === true) process.stderr.write('upcase: warning: --insecure: the server certificate is not verified\n');
  if (transport === 'tcp') {
    if (messages.length === 0 && !process.stdin.isTTY) return streamTcp(options);
    const send: Send = (message) => tcpRequest(message, options);
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
  if (err instanceof NetworkError && err.received !== undefined) {
    process.stdout.write(Buffer.concat([Buffer.from(replyPrefix), err.received, NEWLINE]));
  }
  return reportFailure(err);
}

const NEWLINE = Buffer.from('\n');
