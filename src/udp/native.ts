import type { Logger } from 'pino';
import { type AddonStatus, loadAddon, readNamedInts } from '../addons.js';
import type { DatagramPolicy } from './handler.js';
import { maxPayloadFor } from './limits.js';

/**
 * The optional native UDP transport (native/udp_batch.c): recvmmsg/sendmmsg in
 * batches of up to 64 datagrams, one JS↔C++ crossing per batch instead of
 * several per datagram. Built by `npm ci` where a C compiler is available; when
 * it is missing, or `UPCASE_NATIVE=0` is set, upcase uses node:dgram, with the
 * same {@link DatagramPolicy} deciding every reply.
 */

interface NativeSocket {
  readonly data: ArrayBuffer;
  readonly meta: ArrayBuffer;
  readonly addr: ArrayBuffer;
  readonly port: number;
  readonly fd: number;
}

interface NativeBinding {
  open(address: string, port: number, family: 4 | 6, reusePort: boolean): NativeSocket;
  start(socket: NativeSocket, onBatch: (count: number) => void): void;
  send(socket: NativeSocket, count: number): number;
  lastSendError(socket: NativeSocket): string | undefined;
  close(socket: NativeSocket): void;
  readonly SLOTS: number;
  readonly SLOT_SIZE: number;
  /** Where each field of a slot sits in `meta` (Int32 indices), `fields` per slot, `addressSize` bytes of `addr` per slot. */
  readonly udpMeta: unknown;
}

/** The per-slot fields this file reads from `meta`, by name (META_* in native/udp_batch.c). */
export const NATIVE_UDP_META = ['length', 'sourcePort', 'family', 'replyLength', 'fields', 'addressSize'] as const;
export type NativeUdpMeta = Readonly<Record<(typeof NATIVE_UDP_META)[number], number>>;

/** The addon's slot layout, read by name: throws naming a field that is missing or doubled. */
export function readNativeUdpMeta(binding: Pick<NativeBinding, 'udpMeta'>): NativeUdpMeta {
  // Indices in a slot must differ; the two sizes are read apart (a size may equal an index).
  const meta = {
    ...readNamedInts(binding, 'udpMeta', ['length', 'sourcePort', 'family', 'replyLength'] as const),
    ...readNamedInts(binding, 'udpMeta', ['fields'] as const),
    ...readNamedInts(binding, 'udpMeta', ['addressSize'] as const),
  };
  for (const field of ['length', 'sourcePort', 'family', 'replyLength'] as const) {
    if (meta[field] >= meta.fields) throw new Error(`\`udpMeta.${field}\` is ${meta[field]}, past \`udpMeta.fields\` ${meta.fields}`);
  }
  // formatAddress and the address cache read 16 bytes (an IPv6 address) per slot.
  if (meta.addressSize !== 16) throw new Error(`\`udpMeta.addressSize\` is ${meta.addressSize}, not 16`);
  return meta;
}

/** The loaded binding with its slot layout read. */
export interface LoadedNativeUdp {
  readonly binding: NativeBinding;
  readonly meta: NativeUdpMeta;
}

let cached: AddonStatus<LoadedNativeUdp> | undefined;

/**
 * The native binding with its slot layout read, or why it cannot be used (as data:
 * not built, not supported, disabled by `UPCASE_NATIVE=0`, or a load error — an
 * addon built from sources that do not match this file counts as one).
 */
export function nativeUdpStatus(): AddonStatus<LoadedNativeUdp> {
  if (cached !== undefined) return cached;
  const status = loadAddon<NativeBinding>('upcase_udp', true);
  if (status.binding === null) {
    cached = status;
    return cached;
  }
  try {
    cached = { binding: { binding: status.binding, meta: readNativeUdpMeta(status.binding) }, unavailable: null };
  } catch (err) {
    cached = {
      binding: null,
      unavailable: { reason: 'load-error', detail: `upcase_udp.node does not match src/udp/native.ts: ${(err as Error).message}` },
    };
  }
  return cached;
}

/** The native binding, or null when it cannot be used ({@link nativeUdpStatus} says why). */
export function loadNativeUdp(): LoadedNativeUdp | null {
  return nativeUdpStatus().binding;
}

/** Why the native UDP transport is built but not used (a load error); null when it is used, or not built or disabled. */
export function nativeUdpProblem(): string | null {
  const { unavailable } = nativeUdpStatus();
  return unavailable !== null && (unavailable.reason === 'load-error' || unavailable.reason === 'refused') ? unavailable.detail : null;
}

/** Which UDP transport a new server will use. */
export function udpTransportName(): 'native' | 'dgram' {
  return loadNativeUdp() === null ? 'dgram' : 'native';
}

/** A bound UDP socket served in batches by the native addon. */
export class NativeUdpListener {
  readonly port: number;
  private readonly binding: NativeBinding;
  private readonly layout: NativeUdpMeta;
  private readonly socket: NativeSocket;
  private readonly data: Buffer;
  private readonly meta: Int32Array;
  private readonly addr: Uint8Array;
  private readonly addr32: Int32Array;
  private closed = false;
  // The last source address formatted, to avoid re-formatting it for every datagram of a flow.
  private readonly lastAddr = new Int32Array(4);
  private lastFamily = 0;
  private lastAddress = '';

  constructor(
    native: LoadedNativeUdp,
    address: string,
    port: number,
    family: 4 | 6,
    private readonly policy: DatagramPolicy,
    private readonly logger: Logger,
    reusePort = false,
  ) {
    const { binding } = native;
    this.binding = binding;
    this.layout = native.meta;
    this.socket = binding.open(address, port, family, reusePort);
    this.port = this.socket.port;
    this.data = Buffer.from(this.socket.data);
    this.meta = new Int32Array(this.socket.meta);
    this.addr = new Uint8Array(this.socket.addr);
    this.addr32 = new Int32Array(this.socket.addr);
    binding.start(this.socket, (count) => this.onBatch(count));
  }

  private onBatch(count: number): void {
    const { meta, data, binding, layout } = this;
    const slotSize = binding.SLOT_SIZE;
    try {
      for (let i = 0; i < count; i++) {
        const m = i * layout.fields;
        const family = meta[m + layout.family]!;
        const address = this.addressOf(i, family);
        const offset = i * slotSize;
        const msg = data.subarray(offset, offset + meta[m + layout.length]!);
        const reply = this.policy.reply(msg, meta[m + layout.sourcePort]!, address, maxPayloadFor(address, family === 4 ? 'IPv4' : 'IPv6'));
        if (reply === null) {
          meta[m + layout.replyLength] = -1;
          continue;
        }
        // In-place replies already sit in the slot; others (length changed) are copied in.
        if (reply.buffer !== data.buffer || reply.byteOffset !== data.byteOffset + offset) reply.copy(data, offset);
        meta[m + layout.replyLength] = reply.length;
      }
    } catch (err) {
      // Never let one bad batch take the server down. Slots not reached keep the
      // -1 ("no reply") that the addon put there on receive.
      this.logger.error({ transport: 'udp', err: (err as Error).message }, 'udp batch failed');
    }
    if (this.closed) return;
    const refused = binding.send(this.socket, count);
    if (refused > 0) {
      const code = binding.lastSendError(this.socket);
      for (let k = 0; k < refused; k++) this.policy.sendFailed(code);
    }
  }

  private addressOf(slot: number, family: number): string {
    const a32 = this.addr32;
    const w = slot * 4;
    const last = this.lastAddr;
    if (
      family === this.lastFamily &&
      a32[w] === last[0] &&
      (family === 4 || (a32[w + 1] === last[1] && a32[w + 2] === last[2] && a32[w + 3] === last[3]))
    ) {
      return this.lastAddress;
    }
    last.set(a32.subarray(w, w + 4));
    this.lastFamily = family;
    this.lastAddress = formatAddress(this.addr, slot * 16, family);
    return this.lastAddress;
  }

  /** Stops serving and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.binding.close(this.socket);
  }
}

/** Formats an address as node:dgram does (inet_ntop: RFC 5952 compression, IPv4-mapped as ::ffff:a.b.c.d). */
export function formatAddress(bytes: Uint8Array, offset: number, family: number): string {
  const b = (k: number): number => bytes[offset + k]!;
  if (family === 4) return `${b(0)}.${b(1)}.${b(2)}.${b(3)}`;
  const groups: number[] = [];
  for (let k = 0; k < 16; k += 2) groups.push((b(k) << 8) | b(k + 1));
  // The longest run of two or more zero groups (the first on a tie) becomes '::'.
  let bestStart = -1;
  let bestLength = 1;
  for (let k = 0; k < 8; ) {
    if (groups[k] !== 0) {
      k++;
      continue;
    }
    let j = k;
    while (j < 8 && groups[j] === 0) j++;
    if (j - k > bestLength) {
      bestStart = k;
      bestLength = j - k;
    }
    k = j;
  }
  // Like libuv's inet_ntop: IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) in dotted form.
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${b(12)}.${b(13)}.${b(14)}.${b(15)}`;
  }
  const hex = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
