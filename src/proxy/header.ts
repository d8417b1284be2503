/**
 * PROXY protocol v1 and v2 header parser (haproxy doc/proxy-protocol.txt).
 * A pure codec: bytes in, a parsed header (or "need more bytes", or an error)
 * out. It never touches a socket; src/proxy/accept.ts feeds it from one.
 */
import net from 'node:net';
import { ProxyProtocolError } from '../errors.js';

/** Longest v1 line including CRLF (§2.1: the "worst case" UNKNOWN line). */
export const PROXY_V1_MAX_LENGTH = 107;

/**
 * Longest v2 header we accept, in bytes, counting the 16-byte fixed part.
 * The spec has no upper bound besides the 16-bit length; the largest address
 * block is 216 bytes (AF_UNIX), and the TLVs real proxies add (ALPN, authority,
 * a unique ID of up to 128 bytes, SSL details, AWS/Azure/GCP ids) fit easily
 * in the rest. Anything larger is refused rather than buffered.
 */
export const PROXY_V2_MAX_LENGTH = 4096;

/** §2.2: the 12-byte v2 signature. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_FIXED = 16;

/** `proxy`: the header carries the client's addresses; `local`: a health check from the proxy itself. */
export type ProxyCommand = 'proxy' | 'local';
/** v1 `TCP4` is `inet`, `TCP6` is `inet6`, `UNKNOWN` is `unspec`. */
export type ProxyFamily = 'inet' | 'inet6' | 'unix' | 'unspec';
/** The proxied transport: `stream` (TCP), `dgram` (UDP) or `unspec`. */
export type ProxyTransport = 'stream' | 'dgram' | 'unspec';

/** One end of the proxied connection: address and port. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

/** A parsed PROXY protocol header (v1 or v2): command, family, transport, and the two endpoints. */
export interface ProxyHeader {
  version: 1 | 2;
  /** `local`: the proxy opened the connection itself (a health check); use the real peer. */
  command: ProxyCommand;
  family: ProxyFamily;
  protocol: ProxyTransport;
  /**
   * The original client, for a `proxy` command over `inet`/`inet6`; null
   * otherwise (then the real peer address stands). IPv6 is in RFC 5952 form.
   */
  source: ProxyEndpoint | null;
  /** The address the client connected to (the balancer's listener); null as for `source`. */
  destination: ProxyEndpoint | null;
  /** v2 AF_UNIX `proxy` only: the socket paths. */
  unixPaths?: { source: string; destination: string };
  /** v2: bytes of TLVs after the address block, skipped. 0 for v1. */
  tlvBytes: number;
  /** Length of the header in bytes; what follows belongs to the connection. */
  consumed: number;
}

/**
 * Parses a PROXY header at the start of `buf`.
 *
 * Returns null when `buf` is a valid beginning of a header but too short to
 * decide; throws {@link ProxyProtocolError} as soon as the bytes cannot be a
 * valid header (reason `missing`: no PROXY signature; `malformed`; `too_large`).
 * Bytes past `consumed` are never looked at.
 */
export function parseProxyHeader(buf: Uint8Array): ProxyHeader | null {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length === 0) return null;
  if (b[0] === V1_PREFIX[0]) {
    if (!startsWithPrefix(b, V1_PREFIX)) throw fault('missing', 'no PROXY protocol header');
    return b.length < V1_PREFIX.length ? null : parseV1(b);
  }
  if (b[0] === PROXY_V2_SIGNATURE[0]) {
    if (!startsWithPrefix(b, PROXY_V2_SIGNATURE)) throw fault('missing', 'no PROXY protocol header');
    return b.length < V2_FIXED ? null : parseV2(b);
  }
  throw fault('missing', 'no PROXY protocol header');
}

/** True when `b` and `prefix` agree on their common length. */
function startsWithPrefix(b: Buffer, prefix: Buffer): boolean {
  const n = Math.min(b.length, prefix.length);
  return b.compare(prefix, 0, n, 0, n) === 0;
}

// v1 (§2.1) ------------------------------------------------------------------

function parseV1(b: Buffer): ProxyHeader | null {
  // The CR may sit at index 105 at most, so that the line with its LF is <= 107 bytes.
  const lastCr = PROXY_V1_MAX_LENGTH - 2;
  const limit = Math.min(b.length, lastCr + 1);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = b[i]!;
    if (c === 0x0d) {
      if (i + 1 === b.length) return null; // the LF may be in the next read
      if (b[i + 1] !== 0x0a) throw fault('malformed', 'v1 header: CR not followed by LF');
      end = i;
      break;
    }
    // "must not tolerate a single CR or LF": a bare LF ends nothing.
    if (c === 0x0a) throw fault('malformed', 'v1 header: LF without CR');
    if (c < 0x20 || c > 0x7e) throw fault('malformed', `v1 header: byte 0x${c.toString(16).padStart(2, '0')} is not printable US-ASCII`);
  }
  if (end === -1) {
    if (b.length > lastCr) throw fault('too_large', `v1 header: no CRLF in the first ${PROXY_V1_MAX_LENGTH} bytes`);
    return null;
  }
  const line = b.toString('latin1', 0, end);
  const consumed = end + 2;
  const fields = line.split(' ');
  const proto = fields[1];
  if (proto === 'UNKNOWN') {
    // "the receiver must ignore anything presented before the CRLF"
    return { version: 1, command: 'proxy', family: 'unspec', protocol: 'unspec', source: null, destination: null, tlvBytes: 0, consumed };
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') throw fault('malformed', `v1 header: unknown protocol ${quote(proto ?? '')}`);
  if (fields.length !== 6) throw fault('malformed', `v1 header: expected 6 space-separated fields, got ${fields.length}`);
  const family: ProxyFamily = proto === 'TCP4' ? 'inet' : 'inet6';
  const source = v1Address(fields[2]!, family, 'source');
  const destination = v1Address(fields[3]!, family, 'destination');
  const sourcePort = v1Port(fields[4]!, 'source');
  const destinationPort = v1Port(fields[5]!, 'destination');
  return {
    version: 1,
    command: 'proxy',
    family,
    protocol: 'stream',
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
    tlvBytes: 0,
    consumed,
  };
}

function v1Address(text: string, family: ProxyFamily, which: string): string {
  if (family === 'inet') {
    // net.isIPv4 accepts exactly four decimal numbers 0..255 without leading zeros, as §2.1 requires.
    if (!net.isIPv4(text)) throw fault('malformed', `v1 header: ${which} ${quote(text)} is not an IPv4 address`);
    return text;
  }
  // No zone ids ("%eth0"): they mean nothing to the receiver.
  if (text.includes('%') || !net.isIPv6(text)) throw fault('malformed', `v1 header: ${which} ${quote(text)} is not an IPv6 address`);
  return canonicalIPv6(text);
}

function v1Port(text: string, which: string): number {
  // Decimal 0..65535, no leading zeros (§2.1: they could be read as octal).
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 65535) {
    throw fault('malformed', `v1 header: ${which} port ${quote(text)} is not a decimal integer from 0 to 65535 without leading zeros`);
  }
  return Number(text);
}

// v2 (§2.2) ------------------------------------------------------------------

const V2_FAMILIES: Record<number, ProxyFamily> = { 0x0: 'unspec', 0x1: 'inet', 0x2: 'inet6', 0x3: 'unix' };
const V2_TRANSPORTS: Record<number, ProxyTransport> = { 0x0: 'unspec', 0x1: 'stream', 0x2: 'dgram' };
const V2_ADDRESS_LENGTH: Record<ProxyFamily, number> = { unspec: 0, inet: 12, inet6: 36, unix: 216 };
const UNIX_PATH_LENGTH = 108;

function parseV2(b: Buffer): ProxyHeader | null {
  const verCmd = b[12]!;
  const version = verCmd >> 4;
  if (version !== 2) throw fault('malformed', `v2 header: version ${version} (only 2 is defined)`);
  const commandBits = verCmd & 0x0f;
  if (commandBits > 1) throw fault('malformed', `v2 header: unknown command 0x${commandBits.toString(16)}`);
  const command: ProxyCommand = commandBits === 0 ? 'local' : 'proxy';
  const famByte = b[13]!;
  const family = V2_FAMILIES[famByte >> 4];
  const protocol = V2_TRANSPORTS[famByte & 0x0f];
  if (family === undefined || protocol === undefined) {
    throw fault('malformed', `v2 header: unknown address family/protocol byte 0x${famByte.toString(16).padStart(2, '0')}`);
  }
  const length = b.readUInt16BE(14);
  const consumed = V2_FIXED + length;
  if (consumed > PROXY_V2_MAX_LENGTH) throw fault('too_large', `v2 header: ${consumed} bytes exceeds the limit of ${PROXY_V2_MAX_LENGTH}`);
  const addressLength = V2_ADDRESS_LENGTH[family];
  // LOCAL: "discard the protocol block including the family", whatever its length.
  if (command === 'proxy' && length < addressLength) {
    throw fault('malformed', `v2 header: ${length} address bytes, ${family} needs ${addressLength}`);
  }
  // §2.2: "must not start to parse an address before the whole address block is received".
  if (b.length < consumed) return null;
  const header: ProxyHeader = { version: 2, command, family, protocol, source: null, destination: null, tlvBytes: 0, consumed };
  if (command === 'local') return header;
  header.tlvBytes = length - addressLength;
  const a = V2_FIXED;
  if (family === 'inet') {
    header.source = { address: ipv4At(b, a), port: b.readUInt16BE(a + 8) };
    header.destination = { address: ipv4At(b, a + 4), port: b.readUInt16BE(a + 10) };
  } else if (family === 'inet6') {
    header.source = { address: ipv6At(b, a), port: b.readUInt16BE(a + 32) };
    header.destination = { address: ipv6At(b, a + 16), port: b.readUInt16BE(a + 34) };
  } else if (family === 'unix') {
    header.unixPaths = { source: unixPathAt(b, a), destination: unixPathAt(b, a + UNIX_PATH_LENGTH) };
  }
  return header;
}

function ipv4At(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6At(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

function unixPathAt(b: Buffer, at: number): string {
  const nul = b.indexOf(0, at);
  const end = nul === -1 || nul > at + UNIX_PATH_LENGTH ? at + UNIX_PATH_LENGTH : nul;
  return b.toString('utf8', at, end);
}

/** RFC 5952 text (lowercase, longest zero run compressed, `::ffff:a.b.c.d` for mapped IPv4). */
function canonicalIPv6(text: string): string {
  return new net.SocketAddress({ address: text, family: 'ipv6' }).address;
}

// ----------------------------------------------------------------------------

function fault(reason: 'missing' | 'malformed' | 'too_large', message: string): ProxyProtocolError {
  return new ProxyProtocolError(reason, message);
}

/** Header text as it may appear in an error message: bounded and escaped. */
function quote(text: string): string {
  return JSON.stringify(text.length > 48 ? `${text.slice(0, 48)}…` : text);
}

/**
 * Incremental reader: push chunks as they arrive; once the header is complete,
 * `push` returns it with `rest`, the bytes after it (which may have arrived in
 * the same chunk) for the connection handler. Throws like {@link parseProxyHeader}.
 * At most {@link PROXY_V2_MAX_LENGTH} bytes are ever buffered.
 */
export class ProxyHeaderReader {
  private buffered: Buffer = Buffer.alloc(0);
  private done = false;

  /** Bytes held so far (an incomplete header). */
  get bufferedBytes(): number {
    return this.buffered.length;
  }

  push(chunk: Buffer): { header: ProxyHeader; rest: Buffer } | null {
    if (this.done) throw new Error('ProxyHeaderReader: header already complete');
    // Never hold more than the largest header we accept, however big the chunk.
    const room = PROXY_V2_MAX_LENGTH - this.buffered.length;
    const head = chunk.length > room ? chunk.subarray(0, room) : chunk;
    const data = this.buffered.length === 0 ? head : Buffer.concat([this.buffered, head]);
    const header = parseProxyHeader(data);
    if (header === null) {
      this.buffered = this.buffered.length === 0 ? Buffer.from(head) : data;
      return null;
    }
    this.done = true;
    this.buffered = Buffer.alloc(0);
    // The header ended inside this chunk: everything after it is the connection's.
    const restStart = header.consumed - (data.length - head.length);
    return { header, rest: chunk.subarray(restStart) };
  }
}
