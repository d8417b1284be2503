import { resolveTargets } from '../client/resolve.js';
import { UdpClient } from '../client/udp.js';
import dgram from 'node:dgram';
import net from 'node:net';
import { InvalidArgumentError, networkError } from '../errors.js';
import type { NormalizedBenchOptions } from './options.js';
import { SEQ_DIGITS, readSeq, writeSeq, type PayloadSet } from './payload.js';
import type { LoadDriver, Tally } from './tally.js';

const IN_FLIGHT = 1;
const DONE = 2;
const TIMED_OUT = 3;

/** Memory a run may use for datagram buffers (pipeline × size in closed loop). */
const MAX_BUFFER_BYTES = 256 * 1024 * 1024;
/** Open loop: datagram buffers per socket are reused round-robin; this bounds their memory. */
const OPEN_LOOP_BUFFER_BYTES = 16 * 1024 * 1024;
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * UDP load: `connections` connected sockets. Every request starts with its
 * sequence number in decimal digits, so a reply says which request it answers
 * and is compared, whole, with that request's expected uppercase. A request
 * with no reply within the timeout is a timeout error.
 *
 * Closed loop: `pipeline` slots per socket, each with its own buffer; a slot's
 * next request goes out when its reply arrives or it times out. Open loop: a
 * ring of request states sized for the rate × (timeout + 1 s).
 */
export class UdpDriver implements LoadDriver {
  readonly sockets: UdpSocketLoad[] = [];
  readonly expected: Buffer[];
  readonly bodies: Buffer[];
  readonly variants: number;
  readonly openLoop: boolean;
  readonly interval: number;
  readonly timeoutMs: number;
  sending = false;
  address = '';

  constructor(
    readonly options: NormalizedBenchOptions,
    readonly tally: Tally,
    payloads: PayloadSet,
  ) {
    this.bodies = payloads.bodies;
    this.expected = payloads.expected;
    this.variants = payloads.bodies.length;
    this.openLoop = options.rate > 0;
    this.interval = this.openLoop ? (1000 * options.connections) / options.rate : 0;
    this.timeoutMs = options.timeout * 1000;
    if (!this.openLoop && options.pipeline * options.size * options.connections > MAX_BUFFER_BYTES) {
      throw new InvalidArgumentError(
        'pipeline',
        `at most ${MAX_BUFFER_BYTES} bytes in flight (connections × pipeline × size)`,
        options.pipeline,
      );
    }
  }

  async open(): Promise<void> {
    const { host, port } = this.options;
    try {
      this.address = net.isIP(host) !== 0 ? host : await answeringAddress(host, port, this.options.timeout);
      for (let i = 0; i < this.options.connections; i++) {
        const s = new UdpSocketLoad(this, i);
        this.sockets.push(s);
        await s.connect();
      }
    } catch (err) {
      await this.close();
      throw networkError({ op: 'connect' }, { transport: 'udp', address: host, port }, err);
    }
  }

  start(t0: number): void {
    this.sending = true;
    const n = this.sockets.length;
    for (let i = 0; i < n; i++) this.sockets[i]!.start(t0 + (i / n) * this.interval);
  }

  tick(now: number): void {
    if (!this.sending) return;
    for (let i = 0; i < this.sockets.length; i++) this.sockets[i]!.sendDue(now);
  }

  scan(now: number): void {
    for (let i = 0; i < this.sockets.length; i++) this.sockets[i]!.scan(now);
  }

  stopSending(): void {
    this.sending = false;
  }

  inFlight(): number {
    let n = 0;
    for (const s of this.sockets) n += s.inFlight;
    return n;
  }

  alive(): number {
    return this.sockets.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => s.close()));
  }
}

class UdpSocketLoad {
  readonly socket: dgram.Socket;
  inFlight = 0;
  /** Slots (closed loop) or ring entries (open loop), indexed by seq mod `slots`. */
  private readonly slots: number;
  private readonly seqAt: Float64Array;
  private readonly sentAt: Float64Array;
  private readonly state: Uint8Array;
  /** Datagram buffers, each holding a body after room for the sequence number. */
  private readonly buffers: Buffer[] = [];
  /** Buffer b holds body (b + bufferOffset) mod variants, so sockets start on different bodies. */
  private readonly bufferOffset: number;
  /** Open loop: next sequence number to send, oldest one not yet settled, intended time of seq 0. */
  private head = 0;
  private tail = 0;
  private t0 = 0;
  private closed = false;
  /** Replies are coming: sends go without a callback (see send()). */
  private replying = false;
  private readonly onSent = (err: Error | null): void => {
    if (err !== null) this.onError(err as NodeJS.ErrnoException);
  };

  constructor(
    private readonly d: UdpDriver,
    index: number,
  ) {
    const { options, variants } = d;
    const { size, pipeline } = options;
    this.socket = dgram.createSocket(net.isIPv6(d.address) ? 'udp6' : 'udp4');
    let buffers: number;
    if (d.openLoop) {
      const perSocket = options.rate / options.connections;
      this.slots = nextPow2(Math.max(1024, Math.ceil(perSocket * (options.timeout + 1)) + 1));
      if (this.slots > 1 << 24)
        throw new InvalidArgumentError('rate', 'at most 16M requests in flight per socket over the timeout', options.rate);
      buffers = nextPow2(Math.max(variants, Math.min(this.slots, Math.floor(OPEN_LOOP_BUFFER_BYTES / size))));
      // variants is a power of two (see makePayloads): buffer b holds body b mod variants = seq mod variants.
      while (buffers > this.slots) buffers /= 2;
    } else {
      this.slots = pipeline;
      buffers = pipeline;
    }
    this.seqAt = new Float64Array(this.slots).fill(-1);
    this.sentAt = new Float64Array(this.slots);
    this.state = new Uint8Array(this.slots);
    const memory = Buffer.alloc(buffers * size);
    for (let b = 0; b < buffers; b++) {
      const buf = memory.subarray(b * size, (b + 1) * size);
      d.bodies[(b + index) % variants]!.copy(buf, SEQ_DIGITS);
      this.buffers.push(buf);
    }
    this.bufferOffset = index % variants;
    this.socket.on('message', (msg: Buffer) => this.receive(msg));
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.onError(err));
  }

  connect(): Promise<void> {
    const { port } = this.d.options;
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.connect(port, this.d.address, () => {
        this.socket.off('error', reject);
        try {
          this.socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
          this.socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
        } catch {
          // Capped by net.core.rmem_max/wmem_max: the default buffers will do.
        }
        resolve();
      });
    });
  }

  start(t0: number): void {
    this.t0 = t0;
    if (this.d.openLoop) {
      this.sendDue(t0);
      return;
    }
    for (let i = 0; i < this.slots; i++) this.send(i, t0);
  }

  private send(seq: number, now: number): void {
    const slots = this.slots;
    const i = seq % slots;
    if (this.state[i] === IN_FLIGHT) {
      // Open loop ring overrun: the entry is older than the timeout by construction.
      this.state[i] = TIMED_OUT;
      this.inFlight--;
      this.d.tally.timeout++;
    }
    const buf = this.buffers[seq % this.buffers.length]!;
    writeSeq(buf, 0, seq);
    this.seqAt[i] = seq;
    this.sentAt[i] = now;
    this.state[i] = IN_FLIGHT;
    this.inFlight++;
    const tally = this.d.tally;
    tally.sent++;
    tally.bytesSent += buf.length;
    // An ICMP error can be reported to the next send instead of the socket, and dgram drops a send's
    // error without a callback. A callback costs about 0.5 µs a send, so sends carry one only until
    // replies come, and again after a timeout or an error (when the server may be gone).
    if (this.replying) this.socket.send(buf);
    else this.socket.send(buf, this.onSent);
  }

  sendDue(now: number): void {
    if (this.closed) return;
    const due = Math.floor((now - this.t0) / this.d.interval) + 1;
    let n = due - this.head;
    if (n <= 0) return;
    // Buffers are reused round-robin: never let the send queue reach one still queued.
    const room = (this.buffers.length >> 1) - this.socket.getSendQueueCount();
    if (n > room) n = room;
    for (let j = 0; j < n; j++) this.send(this.head++, now);
  }

  private receive(msg: Buffer): void {
    const now = performance.now();
    const d = this.d;
    const tally = d.tally;
    tally.bytesReceived += msg.length;
    const seq = readSeq(msg, 0);
    if (seq < 0) {
      tally.unexpected++;
      return;
    }
    const i = seq % this.slots;
    const current = this.seqAt[i]!;
    if (current !== seq || this.state[i] !== IN_FLIGHT) {
      // An earlier request of this slot (timed out already, or a duplicate reply) is late;
      // a sequence number never sent is not a reply to anything.
      if (seq <= current) tally.late++;
      else tally.unexpected++;
      return;
    }
    this.state[i] = DONE;
    this.inFlight--;
    this.replying = true;
    const want = d.expected[((seq % this.buffers.length) + this.bufferOffset) % d.variants]!;
    if (msg.length === SEQ_DIGITS + want.length && want.compare(msg, SEQ_DIGITS) === 0) {
      tally.ok++;
      if (tally.recording) tally.histogram.recordMs(now - (d.openLoop ? this.t0 + seq * d.interval : this.sentAt[i]!));
    } else {
      tally.mismatch++;
    }
    if (!d.openLoop && d.sending) this.send(seq + this.slots, now);
  }

  /**
   * A socket error is a `socket` error. A connected UDP socket reports an ICMP
   * error (port unreachable: ECONNREFUSED) without saying which datagram caused
   * it: it is charged to the oldest request in flight, which is settled then
   * (not left to time out), so each request counts once.
   */
  private onError(err: NodeJS.ErrnoException): void {
    this.replying = false;
    const tally = this.d.tally;
    tally.socket++;
    if (err.code !== 'ECONNREFUSED' && err.code !== 'EHOSTUNREACH' && err.code !== 'ENETUNREACH') return;
    const { state, sentAt } = this;
    let oldest = -1;
    if (this.d.openLoop) {
      for (let seq = this.tail; seq < this.head; seq++) {
        const i = seq % this.slots;
        if (this.seqAt[i] === seq && state[i] === IN_FLIGHT) {
          oldest = i;
          break;
        }
      }
    } else {
      for (let i = 0; i < this.slots; i++) if (state[i] === IN_FLIGHT && (oldest < 0 || sentAt[i]! < sentAt[oldest]!)) oldest = i;
    }
    if (oldest < 0) return;
    state[oldest] = TIMED_OUT;
    this.inFlight--;
    if (!this.d.openLoop && this.d.sending && !this.closed) this.send(this.seqAt[oldest]! + this.slots, performance.now());
  }

  scan(now: number): void {
    const { state, sentAt } = this;
    const timeoutMs = this.d.timeoutMs;
    if (!this.d.openLoop) {
      for (let i = 0; i < this.slots; i++) {
        if (state[i] !== IN_FLIGHT || now - sentAt[i]! <= timeoutMs) continue;
        state[i] = TIMED_OUT;
        this.inFlight--;
        this.d.tally.timeout++;
        this.replying = false;
        if (this.d.sending) this.send(this.seqAt[i]! + this.slots, now);
      }
      return;
    }
    // Open loop: requests went out in sequence order, so only the oldest can be overdue.
    while (this.tail < this.head) {
      const i = this.tail % this.slots;
      if (this.seqAt[i] === this.tail && state[i] === IN_FLIGHT) {
        if (now - sentAt[i]! <= timeoutMs) break;
        state[i] = TIMED_OUT;
        this.inFlight--;
        this.d.tally.timeout++;
        this.replying = false;
      }
      this.tail++;
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    // What is still in flight when the socket closes has had its time: count it.
    this.d.tally.timeout += this.inFlight;
    this.inFlight = 0;
    this.state.fill(DONE);
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/**
 * The address of `host` that answers over UDP: with several (`localhost` is often ::1
 * and 127.0.0.1), one request finds the one a server listens on, as the client does;
 * the first address when none answers (the run then counts the losses).
 */
export async function answeringAddress(host: string, port: number, timeout: number): Promise<string> {
  const targets = await resolveTargets(host, port, 'udp');
  if (targets.length === 1) return targets[0]!.address;
  const probe = new UdpClient({ host, port, timeout: Math.min(timeout, 1), retries: 0 });
  try {
    await probe.request('probe');
    return (await probe.target()).address;
  } catch {
    return targets[0]!.address;
  } finally {
    await probe.close();
  }
}
