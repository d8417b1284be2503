import type dgram from 'node:dgram';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { upcase } from '../codec/upcase.js';
import { ClosedError, MessageTooLargeError, type NetworkError, networkError, systemCode } from '../errors.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from '../udp/limits.js';
import { checkReply, type ReplyCheck } from './check.js';
import { type ClientOptions, type NormalizedClientOptions, normalizeClientOptions } from './options.js';
import { connectUdpSocket, resolveTargets, type Target } from './resolve.js';

/** Sockets kept open after their request, so late replies land on them (and nowhere else). */
const MAX_QUARANTINE = 256;
/** Longest a socket stays in quarantine, in milliseconds. */
const MAX_QUARANTINE_MS = 30_000;

/** Counters of a {@link UdpClient}. */
export interface UdpClientStats {
  /** Messages asked for with `request()`. */
  requests: number;
  /** Datagrams sent, first tries and retries. */
  tries: number;
  /** Replies that came too late (or twice) and were dropped. */
  late: number;
}

export function maxUdpPayload(family: 4 | 6): number {
  return family === 4 ? MAX_UDP_PAYLOAD_IPV4 : MAX_UDP_PAYLOAD_IPV6;
}

/**
 * One request datagram, one reply datagram, with a timeout per try and
 * retries (the textbook's UDPClient waits forever for a lost datagram).
 *
 * The protocol carries no request ids, so replies are told apart by where they
 * arrive: each message goes out from its own socket (its own source port), and
 * its retries from the same socket. Any datagram on that socket is a reply to
 * that message (every try carries the same bytes). A socket whose tries were
 * not all answered stays bound for a while after its request settles, so its
 * port cannot be handed to a later message while a late reply may still come;
 * such replies are counted in `stats.late` and dropped. Sockets are connected,
 * so the kernel drops datagrams from anyone but the server and reports "port
 * unreachable" as ECONNREFUSED instead of leaving us to time out.
 *
 * `request()` may be called concurrently; each call is independent.
 */
export class UdpClient {
  readonly options: NormalizedClientOptions;
  readonly stats: UdpClientStats = { requests: 0, tries: 0, late: 0 };
  private targets: Promise<Target[]> | null = null;
  private targetIndex = 0;
  private readonly quarantine = new Map<dgram.Socket, NodeJS.Timeout>();
  private closed = false;

  constructor(options: ClientOptions = {}) {
    this.options = normalizeClientOptions(options, 'udp');
  }

  /** The server address in use and the largest message it can take in one datagram. */
  async target(): Promise<Target & { maxPayload: number }> {
    const targets = await this.resolve();
    const target = targets[this.targetIndex]!;
    return { ...target, maxPayload: maxUdpPayload(target.family) };
  }

  /**
   * Sends `message` as one datagram and resolves with the reply datagram.
   * Rejects with `UPCASE_ERR_MESSAGE_TOO_LARGE` (before sending) when the
   * message or its uppercase does not fit in one datagram,
   * `UPCASE_ERR_TIMEOUT` after `retries + 1` unanswered tries, or
   * `UPCASE_ERR_CONNECT` when nothing listens at any address of the host.
   */
  async request(message: Uint8Array | string): Promise<Buffer> {
    if (this.closed) throw new ClosedError('the UDP client is closed');
    this.stats.requests++;
    const payload = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
    const targets = await this.resolve();
    for (;;) {
      const index = this.targetIndex;
      const target = targets[index]!;
      checkSize(payload, target.family);
      try {
        return await this.exchange(payload, target);
      } catch (err) {
        // Port unreachable at this address (say ::1 while the server is IPv4 only): try the next one.
        const refused = (err as NetworkError).syscallCode === 'ECONNREFUSED';
        if (!refused || index >= targets.length - 1) throw err;
        if (this.targetIndex === index) this.targetIndex = index + 1;
      }
    }
  }

  /** Closes the sockets kept for late replies. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const sockets = [...this.quarantine.keys()];
    await Promise.all(sockets.map((socket) => this.release(socket)));
  }

  private resolve(): Promise<Target[]> {
    this.targets ??= resolveTargets(this.options.host, this.options.port, 'udp');
    return this.targets;
  }

  private async exchange(payload: Uint8Array, target: Target): Promise<Buffer> {
    const { host, port, timeout, retries, tracer } = this.options;
    const where = { transport: 'udp', address: host, port } as const;
    const socket = await connectUdpSocket(target, host, port);
    const server = { address: target.address, port };
    if (tracer !== undefined) tracer({ type: 'udp-socket', local: socket.address(), server });
    return new Promise((resolve, reject) => {
      let sentAt = 0;
      let tries = 0;
      let timer: NodeJS.Timeout | null = null;
      let settled = false;
      const settle = (err: Error | null, reply?: Buffer): void => {
        if (settled) return;
        settled = true;
        if (timer !== null) clearTimeout(timer);
        socket.removeAllListeners('message');
        socket.removeAllListeners('error');
        // Answered on the only try: nothing more can come. Otherwise a reply may still be on its way.
        if (reply !== undefined && tries === 1) {
          socket.close();
          if (tracer !== undefined) tracer({ type: 'udp-close', heldMs: 0 });
        } else {
          const heldMs = this.hold(socket);
          if (tracer !== undefined) tracer({ type: 'udp-close', heldMs });
        }
        if (err !== null) reject(err);
        else resolve(reply!);
      };
      socket.on('message', (reply: Buffer) => {
        if (tracer !== undefined && !settled) tracer({ type: 'udp-recvfrom', server, data: reply, ms: performance.now() - sentAt });
        settle(null, reply);
      });
      socket.on('error', (err: Error) => {
        // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED: nothing listens there.
        settle(networkError({ op: systemCode(err) === 'ECONNREFUSED' ? 'connect' : 'exchange' }, where, err));
      });
      const attempt = (): void => {
        if (tracer !== undefined && tries > 0) tracer({ type: 'udp-timeout', ms: timeout * 1000, attempt: tries, attempts: retries + 1 });
        if (tries > retries) {
          settle(networkError({ op: 'timeout', phase: 'reply', after: `after ${tries} ${tries === 1 ? 'try' : 'tries'}` }, where));
          return;
        }
        tries++;
        this.stats.tries++;
        if (tracer !== undefined) tracer({ type: 'udp-sendto', server, data: payload, attempt: tries, attempts: retries + 1 });
        sentAt = performance.now();
        socket.send(payload, (err) => {
          if (err === null) return;
          if (systemCode(err) === 'EMSGSIZE') settle(new MessageTooLargeError(payload.length, maxUdpPayload(target.family), 'UDP message'));
          else settle(networkError({ op: 'exchange' }, where, err));
        });
        timer = setTimeout(attempt, timeout * 1000);
      };
      attempt();
    });
  }

  /** Keeps `socket` bound (counting what still arrives) until late replies are unlikely; returns for how many ms. */
  private hold(socket: dgram.Socket): number {
    if (this.closed) {
      socket.close();
      return 0;
    }
    socket.on('message', () => this.stats.late++);
    socket.on('error', () => {});
    const { timeout, retries } = this.options;
    const heldMs = Math.min(timeout * 1000 * (retries + 1), MAX_QUARANTINE_MS);
    const timer = setTimeout(() => void this.release(socket), heldMs);
    timer.unref();
    socket.unref();
    this.quarantine.set(socket, timer);
    if (this.quarantine.size > MAX_QUARANTINE) void this.release(this.quarantine.keys().next().value!);
    return heldMs;
  }

  private async release(socket: dgram.Socket): Promise<void> {
    const timer = this.quarantine.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.quarantine.delete(socket);
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** Throws `UPCASE_ERR_MESSAGE_TOO_LARGE` if `payload` or its uppercase (ß → SS grows) exceeds one datagram. */
function checkSize(payload: Uint8Array, family: 4 | 6): void {
  const limit = maxUdpPayload(family);
  if (payload.length > limit) throw new MessageTooLargeError(payload.length, limit, 'UDP message');
  // Uppercase can grow a message up to 3 times; only then is it worth computing.
  if (payload.length * 3 > limit) {
    const replySize = upcase(payload).length;
    if (replySize > limit) {
      throw new MessageTooLargeError(replySize, limit, `UDP reply (the uppercase of a ${payload.length}-byte message)`);
    }
  }
}

/** Options of {@link sendLines}. */
export interface LinesOptions {
  /** Requests in flight at once; replies are still written in input order. Default 16. */
  window?: number;
}

/** What {@link sendLines} resolves with. */
export interface LinesResult {
  /** Lines sent and answered. */
  lines: number;
  /** Replies that were a prefix of their line's uppercase (the server truncated the datagram). */
  truncated: number;
  /** Replies that were something else than their line's uppercase. */
  mismatched: number;
  /** The first such line (1-based), with its check; null when every reply matched. */
  firstBad: { line: number; check: ReplyCheck } | null;
}

/**
 * Sends each line of `input` (split at `\n`, which is not sent) as one
 * datagram and writes each reply to `output` in input order, followed by
 * `\n` if the line had one. So for a conforming server, the output is the
 * uppercase of the input, byte for byte.
 *
 * Rejects on the first failure (after writing every earlier reply), with
 * `UPCASE_ERR_MESSAGE_TOO_LARGE` naming the line as soon as a line outgrows
 * one datagram (without buffering the rest of it). `output` is not ended.
 */
export async function sendLines(input: Readable, output: Writable, client: UdpClient, options: LinesOptions = {}): Promise<LinesResult> {
  const window = options.window ?? 16;
  const { maxPayload } = await client.target();
  const inFlight: Array<{ reply: Promise<Buffer>; newline: boolean; line: Buffer }> = [];
  let lineNumber = 0;
  let written = 0;
  const result: LinesResult = { lines: 0, truncated: 0, mismatched: 0, firstBad: null };

  let replyFailed = false;
  const writeOldest = async (): Promise<void> => {
    const { reply, newline, line } = inFlight.shift()!;
    const bytes = await reply.catch((err: unknown) => {
      replyFailed = true;
      throw err;
    });
    written++;
    const check = checkReply(line, bytes);
    if (check.verdict !== 'match') {
      if (check.verdict === 'truncated') result.truncated++;
      else result.mismatched++;
      result.firstBad ??= { line: written, check };
    }
    const ok = output.write(newline ? Buffer.concat([bytes, NEWLINE]) : bytes);
    if (!ok) await once(output, 'drain');
  };
  const send = async (line: Buffer, newline: boolean): Promise<void> => {
    lineNumber++;
    if (line.length > maxPayload) throw lineTooLong(lineNumber, line.length, maxPayload);
    const reply = client.request(line);
    reply.catch(() => {}); // awaited in order by writeOldest; this keeps an early failure from going unhandled
    inFlight.push({ reply, newline, line });
    while (inFlight.length >= window) await writeOldest();
  };

  let partial: Buffer[] = [];
  let partialLength = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        const line = partialLength === 0 ? piece : Buffer.concat([...partial, piece]);
        partial = [];
        partialLength = 0;
        start = nl + 1;
        await send(line, true);
      }
      if (start < chunk.length) {
        partial.push(chunk.subarray(start));
        partialLength += chunk.length - start;
        // Fail now rather than buffer a line that can never be sent.
        if (partialLength > maxPayload) throw lineTooLong(lineNumber + 1, partialLength, maxPayload);
      }
    }
    if (partialLength > 0) await send(Buffer.concat(partial), false);
  } catch (err) {
    // A line that cannot be sent: every line before it still gets its reply written (an earlier failure wins).
    if (!replyFailed) while (inFlight.length > 0) await writeOldest();
    throw err;
  }
  while (inFlight.length > 0) await writeOldest();
  result.lines = written;
  return result;
}

function lineTooLong(line: number, size: number, limit: number): MessageTooLargeError {
  const err = new MessageTooLargeError(size, limit, `line ${line}`);
  err.message = `line ${line} does not fit in one UDP datagram: it is longer than ${limit} bytes`;
  return err;
}

const NEWLINE = Buffer.from('\n');
