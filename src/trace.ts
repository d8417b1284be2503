import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { formatHostPort } from './errors.js';

/**
 * Socket steps as the textbook names them (Kurose & Ross §2.7), reported by the
 * server's stream and dgram transports and by the clients when a {@link Tracer}
 * is given. Payload is carried here and nowhere else (logs never show it).
 */
export interface Endpoint {
  address: string;
  port: number;
}

/** One socket step, as `--trace` narrates it (src/trace.ts renders each in the textbook's words). */
export type TraceEvent =
  // The server.
  | { type: 'listening'; transport: 'tcp' | 'tls' | 'udp'; local: Endpoint }
  | { type: 'accept'; transport: 'tcp' | 'tls'; id: number; client: Endpoint }
  | { type: 'recv'; transport: 'tcp' | 'tls'; id: number; data: Uint8Array }
  | { type: 'send'; transport: 'tcp' | 'tls'; id: number; data: Uint8Array }
  | { type: 'peer-fin'; transport: 'tcp' | 'tls'; id: number }
  | { type: 'closed'; transport: 'tcp' | 'tls'; id: number; bytesIn: number; bytesOut: number; ms: number; error?: string }
  | { type: 'recvfrom'; client: Endpoint; data: Uint8Array }
  | { type: 'sendto'; client: Endpoint; data: Uint8Array }
  | { type: 'no-reply'; client: Endpoint; reason: string }
  // The TCP client.
  | { type: 'connect'; transport: 'tcp' | 'tls'; server: Endpoint }
  | { type: 'connected'; transport: 'tcp' | 'tls'; local: Endpoint; server: Endpoint; ms: number }
  | { type: 'client-send'; data: Uint8Array }
  | { type: 'client-fin' }
  | { type: 'client-recv'; data: Uint8Array }
  | { type: 'server-fin' }
  | { type: 'client-close' }
  // The UDP client.
  | { type: 'udp-socket'; local: Endpoint; server: Endpoint }
  | { type: 'udp-sendto'; server: Endpoint; data: Uint8Array; attempt: number; attempts: number }
  | { type: 'udp-recvfrom'; server: Endpoint; data: Uint8Array; ms: number }
  | { type: 'udp-timeout'; ms: number; attempt: number; attempts: number }
  | { type: 'udp-close'; heldMs: number };

/**
 * Receives trace events. Library code calls it only when one was given (a null
 * check when off). An event's `data` is valid only during the call: the server
 * uppercases requests in place right after, so copy what you keep.
 */
export type Tracer = (event: TraceEvent) => void;

/** Bytes of payload shown per line; the rest is counted. */
export const TRACE_PAYLOAD_BYTES = 40;

/** The first line of a trace: it shows payload, which logs never do. */
export const TRACE_NOTICE = `trace: each socket step, in the textbook's words, with up to ${TRACE_PAYLOAD_BYTES} bytes of payload (escaped)`;

/** Options of {@link createTraceWriter}: the clock its times are read from. */
export interface TraceWriterOptions {
  /** Monotonic milliseconds. Default `performance.now`. */
  now?: () => number;
}

/**
 * A tracer that renders each event as one line (`[1.234 ms] tcp #1: recv() …`,
 * times from the first event) and hands it to `write`. The caller decides where
 * lines go; the CLI writes them to stderr.
 */
export function createTraceWriter(write: (line: string) => void, options: TraceWriterOptions = {}): Tracer {
  const now = options.now ?? (() => performance.now());
  let start: number | null = null;
  return (event) => {
    const t = now();
    start ??= t;
    write(`[${(t - start).toFixed(3)} ms] ${describe(event)}\n`);
  };
}

const at = (e: Endpoint): string => formatHostPort(e.address, e.port);
const ms = (n: number): string => `${n.toFixed(3)} ms`;

/** One event in the textbook's words. */
export function describe(e: TraceEvent): string {
  switch (e.type) {
    case 'listening':
      return e.transport === 'udp'
        ? `udp: server socket bound to ${at(e.local)}; waiting in recvfrom()`
        : `${e.transport}: welcoming socket listening on ${at(e.local)}; waiting in accept()`;
    case 'accept':
      return `${e.transport}: accept() created connection socket #${e.id} for client ${at(e.client)}`;
    case 'recv':
      return `${e.transport} #${e.id}: recv() got ${payload(e.data)}`;
    case 'send':
      return `${e.transport} #${e.id}: send() ${payload(e.data)}`;
    case 'peer-fin':
      return `${e.transport} #${e.id}: the client sent FIN: no more bytes will come`;
    case 'closed': {
      const why = e.error === undefined ? '' : `${e.error}; `;
      return `${e.transport} #${e.id}: ${why}closing connection socket #${e.id} (${e.bytesIn} bytes in, ${e.bytesOut} out, open ${ms(e.ms)})`;
    }
    case 'recvfrom':
      return `udp: recvfrom() got ${payload(e.data)} from ${at(e.client)}`;
    case 'sendto':
      return `udp: sendto() ${payload(e.data)} to ${at(e.client)}`;
    case 'no-reply':
      return `udp: no reply to ${at(e.client)}: ${e.reason}`;
    case 'connect':
      return `${e.transport}: socket(); connect() to ${at(e.server)}: the kernel starts the three-way handshake (SYN)`;
    case 'connected':
      return e.transport === 'tls'
        ? `tls: connected from ${at(e.local)} (a port the OS chose) to ${at(e.server)}; the TCP and TLS handshakes took ${ms(e.ms)}`
        : `tcp: connected from ${at(e.local)} (a port the OS chose) to ${at(e.server)}; the handshake took ${ms(e.ms)}`;
    case 'client-send':
      return `tcp: send() ${payload(e.data)}`;
    case 'client-fin':
      return 'tcp: shutdown(SHUT_WR): FIN sent, the message is complete';
    case 'client-recv':
      return `tcp: recv() got ${payload(e.data)}`;
    case 'server-fin':
      return 'tcp: the server sent FIN: the reply is complete';
    case 'client-close':
      return 'tcp: close()';
    case 'udp-socket':
      return `udp: socket() on ${at(e.local)} (a port the OS chose); no handshake: nothing is sent before sendto()`;
    case 'udp-sendto':
      return `udp: sendto() ${payload(e.data)} to ${at(e.server)} (try ${e.attempt} of ${e.attempts})`;
    case 'udp-recvfrom':
      return `udp: recvfrom() got ${payload(e.data)} from ${at(e.server)}, ${ms(e.ms)} after sendto()`;
    case 'udp-timeout':
      return e.attempt < e.attempts
        ? `udp: no reply within ${e.ms} ms (try ${e.attempt} of ${e.attempts}); sending again`
        : `udp: no reply within ${e.ms} ms (try ${e.attempt} of ${e.attempts}); giving up`;
    case 'udp-close':
      return e.heldMs > 0 ? `udp: socket kept open up to ${e.heldMs} ms for late replies, then close()` : 'udp: close()';
  }
}

/** `5 bytes "hello"`; longer payloads are cut: `5000 bytes "aaa…" (first 40 shown)`. */
export function payload(data: Uint8Array): string {
  const shown = escapeBytes(data.subarray(0, TRACE_PAYLOAD_BYTES));
  const size = `${data.length} ${data.length === 1 ? 'byte' : 'bytes'}`;
  return data.length > TRACE_PAYLOAD_BYTES ? `${size} "${shown}…" (first ${TRACE_PAYLOAD_BYTES} shown)` : `${size} "${shown}"`;
}

/**
 * Bytes as a JSON-style string body: well-formed UTF-8 as text, quotes,
 * backslashes and control characters escaped (`\n`, `\u0000`), and every byte
 * that is not part of a well-formed character as `\xff`.
 */
export function escapeBytes(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const size = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (size === 1) {
      out += JSON.stringify(String.fromCharCode(b)).slice(1, -1);
    } else if (size > 1 && i + size <= bytes.length && isUtf8(bytes.subarray(i, i + size))) {
      out += Buffer.from(bytes.buffer, bytes.byteOffset + i, size).toString('utf8');
    } else {
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
      continue;
    }
    i += size;
  }
  return out;
}
