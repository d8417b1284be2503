import net from 'node:net';
import { connectTls } from '../client/tls.js';
import type { NormalizedTlsClientOptions } from '../client/options.js';
import { networkError, UpcaseError } from '../errors.js';
import { readPem } from '../tls/credentials.js';
import type { NormalizedBenchOptions } from './options.js';
import type { PayloadSet } from './payload.js';
import type { LoadDriver, Tally } from './tally.js';

/**
 * TCP load: `connections` connections, each with up to `pipeline` requests in
 * flight. TCP has no framing, so each connection knows how many reply bytes
 * every request it sent is owed and compares the byte stream, as it arrives,
 * against the expected uppercase of those requests.
 */
export class TcpDriver implements LoadDriver {
  readonly conns: TcpConnection[] = [];
  /** Bodies laid out twice in a row, so any run of up to `variants` requests is one slice. */
  readonly sendBuffer: Buffer;
  /** views[k * variants + n - 1] = requests k, k+1, …, k+n-1 (mod variants) as one slice. */
  readonly views: Buffer[] = [];
  readonly expected: Buffer[];
  readonly variants: number;
  readonly openLoop: boolean;
  /** Open loop: milliseconds between the intended send times of one connection's requests. */
  readonly interval: number;
  readonly timeoutMs: number;
  /** With TLS: the options for every connection (the CA read once, as a Buffer). */
  tls: NormalizedTlsClientOptions | null = null;
  sending = false;

  constructor(
    readonly options: NormalizedBenchOptions,
    readonly tally: Tally,
    payloads: PayloadSet,
  ) {
    const { size } = options;
    this.variants = payloads.bodies.length;
    this.expected = payloads.expected;
    this.sendBuffer = Buffer.concat([...payloads.bodies, ...payloads.bodies]);
    for (let k = 0; k < this.variants; k++) {
      for (let n = 1; n <= this.variants; n++) this.views.push(this.sendBuffer.subarray(k * size, (k + n) * size));
    }
    this.openLoop = options.rate > 0;
    this.interval = this.openLoop ? (1000 * options.connections) / options.rate : 0;
    this.timeoutMs = options.timeout * 1000;
    for (let i = 0; i < options.connections; i++) this.conns.push(new TcpConnection(this, i));
  }

  async open(): Promise<void> {
    const { tls } = this.options;
    if (tls !== null) this.tls = { ...tls, ca: tls.ca === undefined ? undefined : await readPem(tls.ca, 'CA file') };
    try {
      await Promise.all(this.conns.map((c) => c.connect()));
    } catch (err) {
      for (const c of this.conns) c.kill();
      // TLS failures (TlsError, with the reason) and TLS connect errors are already worded.
      if (err instanceof UpcaseError) throw err;
      const { host, port } = this.options;
      throw networkError({ op: 'connect' }, { transport: 'tcp', address: host, port }, err);
    }
  }

  start(t0: number): void {
    this.sending = true;
    const { conns } = this;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!;
      if (this.openLoop) {
        // Spread the connections' schedules evenly over one interval.
        c.t0 = t0 + (i / conns.length) * this.interval;
        c.sendDue(t0);
      } else {
        c.send(this.options.pipeline, t0);
      }
    }
  }

  tick(now: number): void {
    if (!this.sending) return;
    const { conns } = this;
    for (let i = 0; i < conns.length; i++) conns[i]!.sendDue(now);
  }

  scan(now: number): void {
    const { conns } = this;
    for (let i = 0; i < conns.length; i++) conns[i]!.scan(now);
  }

  stopSending(): void {
    this.sending = false;
  }

  inFlight(): number {
    let n = 0;
    for (const c of this.conns) n += c.sent - c.answered;
    return n;
  }

  alive(): number {
    let n = 0;
    for (const c of this.conns) if (c.alive) n++;
    return n;
  }

  async close(): Promise<void> {
    const closing: Array<Promise<void>> = [];
    for (const c of this.conns) {
      const pending = c.sent - c.answered;
      if (c.alive && pending > 0) this.tally.timeout += pending;
      closing.push(c.kill());
    }
    await Promise.all(closing);
  }
}

class TcpConnection {
  socket: net.Socket | null = null;
  alive = false;
  private killed = false;
  /** Requests sent and answered (reply complete) on this connection. */
  sent = 0;
  answered = 0;
  /** Open loop: intended send time of request 0. */
  t0 = 0;
  /** Closed loop: actual send times, a ring indexed by request number mod pipeline. */
  private readonly sentAt: Float64Array;
  /** Bytes of the current reply received so far, and whether any differed. */
  private replyOffset = 0;
  private replyBad = false;
  private readonly first: number;
  private readonly onData: (chunk: Buffer) => void;

  constructor(
    private readonly d: TcpDriver,
    index: number,
  ) {
    this.sentAt = new Float64Array(d.options.pipeline);
    this.first = index % d.variants;
    this.onData = (chunk) => this.receive(chunk);
  }

  async connect(): Promise<void> {
    const { host, port } = this.d.options;
    const { tls } = this.d;
    if (tls !== null) {
      // Resolves once the handshake is done and the certificate verified.
      const socket = await connectTls({ host, port, timeout: this.d.options.timeout, retries: 0, tls });
      if (this.killed) {
        // Another connection failed meanwhile and the run was given up.
        socket.destroy();
        return;
      }
      this.socket = socket;
      this.opened(socket);
      return;
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      this.socket = socket;
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        this.opened(socket);
        resolve();
      });
    });
  }

  private opened(socket: net.Socket): void {
    this.alive = true;
    socket.on('data', this.onData);
    socket.on('error', () => {
      this.d.tally.socket++;
    });
    socket.on('close', () => {
      if (!this.alive) return;
      // The server closed or reset the connection with requests in flight.
      this.alive = false;
      this.d.tally.closed += this.sent - this.answered;
      this.answered = this.sent;
    });
  }

  /** Sends the next `n` requests (n ≤ pipeline) as few writes as possible. */
  send(n: number, now: number): void {
    const d = this.d;
    const socket = this.socket!;
    const { variants } = d;
    const size = d.options.size;
    let i = this.sent;
    if (!d.openLoop) {
      const ring = this.sentAt;
      const len = ring.length;
      for (let j = 0; j < n; j++) ring[(i + j) % len] = now;
    }
    this.sent = i + n;
    d.tally.sent += n;
    d.tally.bytesSent += n * size;
    if (n <= variants) {
      socket.write(d.views[((this.first + i) % variants) * variants + n - 1]!);
      return;
    }
    socket.cork();
    while (n > 0) {
      const m = Math.min(n, variants);
      socket.write(d.views[((this.first + i) % variants) * variants + m - 1]!);
      i += m;
      n -= m;
    }
    socket.uncork();
  }

  /** Open loop: sends the requests whose intended time has come, up to the pipeline cap. */
  sendDue(now: number): void {
    if (!this.alive) return;
    const due = Math.floor((now - this.t0) / this.d.interval) + 1;
    let n = due - this.sent;
    if (n <= 0) return;
    const room = this.d.options.pipeline - (this.sent - this.answered);
    if (n > room) n = room;
    if (n > 0) this.send(n, now);
  }

  private sendTime(request: number): number {
    return this.d.openLoop ? this.t0 + request * this.d.interval : this.sentAt[request % this.sentAt.length]!;
  }

  private receive(chunk: Buffer): void {
    const now = performance.now();
    const d = this.d;
    const tally = d.tally;
    const { expected, variants } = d;
    const len = chunk.length;
    tally.bytesReceived += len;
    let pos = 0;
    let completed = 0;
    while (pos < len) {
      if (this.answered === this.sent) {
        // Bytes past every reply owed: the server sent more than it was asked for.
        tally.unexpected++;
        break;
      }
      const want = expected[(this.first + this.answered) % variants]!;
      const offset = this.replyOffset;
      let take = want.length - offset;
      if (take > len - pos) take = len - pos;
      if (!this.replyBad && chunk.compare(want, offset, offset + take, pos, pos + take) !== 0) this.replyBad = true;
      pos += take;
      if (offset + take < want.length) {
        this.replyOffset = offset + take;
        break;
      }
      this.replyOffset = 0;
      if (this.replyBad) {
        this.replyBad = false;
        tally.mismatch++;
      } else {
        tally.ok++;
        if (tally.recording) tally.histogram.recordMs(now - this.sendTime(this.answered));
      }
      this.answered++;
      completed++;
    }
    if (!d.sending || !this.alive) return;
    if (d.openLoop) this.sendDue(now);
    else if (completed > 0) this.send(completed, now);
  }

  /** A connection whose oldest request waits past the timeout is given up: its requests in flight are timeouts. */
  scan(now: number): void {
    if (!this.alive || this.answered === this.sent) return;
    if (now - this.sendTime(this.answered) <= this.d.timeoutMs) return;
    this.d.tally.timeout += this.sent - this.answered;
    void this.kill();
  }

  /** Closes without counting anything; resolves once the socket is closed. */
  kill(): Promise<void> {
    this.killed = true;
    this.alive = false;
    this.answered = this.sent;
    const socket = this.socket;
    if (socket === null || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }
}
