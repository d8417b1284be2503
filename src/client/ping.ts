import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { formatHostPort, type NetworkError, type NetworkLocation, networkError, systemCode } from '../errors.js';
import { type NormalizedPingOptions, normalizePingOptions, type PingOptions } from './options.js';
import { resolveTargets, type Target } from './resolve.js';

/**
 * The textbook's UDP pinger lab, against the upcase server: each ping is a
 * datagram `Ping <seq> <time>` (padded with `x` to `size` bytes) and the reply
 * is its uppercase, `PING <seq> …`, which tells which ping it answers. RTTs are
 * measured locally with a monotonic clock, not from the echoed time.
 */

export interface PingReply {
  seq: number;
  /** Bytes in the reply datagram. */
  bytes: number;
  /** Round-trip time in milliseconds. */
  rtt: number;
  address: string;
  port: number;
}

/** A ping that failed with a network error (e.g. port unreachable), as the `failure` event gives it. */
export interface PingFailure {
  seq: number;
  error: NetworkError;
}

/** Running min/avg/max/mdev of RTTs, in milliseconds, as ping(8) computes them. */
export class RttStats {
  count = 0;
  min = Infinity;
  max = 0;
  private sum = 0;
  private sumOfSquares = 0;

  add(rtt: number): void {
    this.count++;
    this.sum += rtt;
    this.sumOfSquares += rtt * rtt;
    if (rtt < this.min) this.min = rtt;
    if (rtt > this.max) this.max = rtt;
  }

  get avg(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** ping(8)'s mdev: sqrt(mean(rtt²) − mean(rtt)²), the population standard deviation. */
  get mdev(): number {
    if (this.count === 0) return 0;
    const avg = this.avg;
    return Math.sqrt(Math.max(0, this.sumOfSquares / this.count - avg * avg));
  }
}

/** The statistics of a ping run, as ping(8) prints them. */
export interface PingSummary {
  transmitted: number;
  received: number;
  /** Pings that failed at once (port unreachable, send error) rather than timing out. */
  errors: number;
  /** Percent of transmitted pings without a reply. */
  loss: number;
  /** Milliseconds from the first ping to the end. */
  time: number;
  /** RTT statistics in milliseconds, when any reply came. */
  rtt: { min: number; avg: number; max: number; mdev: number } | null;
  /** Replies that came after their ping had timed out, or twice. */
  late: number;
  /** The first ping that got no reply, if any. */
  firstLoss: number | null;
  /** Pings lost from `firstLoss` on. */
  lostAfterFirstLoss: number;
}

export interface PingerEvents {
  reply: [PingReply];
  timeout: [number];
  failure: [PingFailure];
}

/** `Ping <seq> <ms since epoch>` padded with ` xxx…` to `size` bytes (`size` ≥ 32 always fits). */
export function pingPayload(seq: number, size: number, now = Date.now()): Buffer {
  const head = `Ping ${seq} ${now}`;
  const payload = Buffer.alloc(size, 'x');
  payload.write(head, 0, 'latin1');
  if (head.length < size) payload[head.length] = 0x20;
  return payload;
}

/** The sequence number a reply answers, or null if it is not a ping reply. */
export function replySeq(reply: Buffer): number | null {
  const m = /^ping (\d{1,15})(?: |$)/i.exec(reply.toString('latin1', 0, 32));
  return m === null ? null : Number(m[1]);
}

/**
 * Sends `count` pings (or until {@link stop}) every `interval` seconds and
 * resolves with the summary once every ping is answered or timed out.
 * Events: `reply` (PingReply), `timeout` (seq), `failure` (PingFailure, e.g.
 * port unreachable). Never prints.
 */
export class Pinger extends EventEmitter<PingerEvents> {
  readonly options: NormalizedPingOptions;
  private socket: dgram.Socket | null = null;
  private readonly pending = new Map<number, { sentAt: bigint; timer: NodeJS.Timeout }>();
  private readonly rtts = new RttStats();
  private nextSeq = 1;
  private sendTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private resolved: Promise<Target> | null = null;
  private startedAt = 0n;
  private transmitted = 0;
  private errors = 0;
  private late = 0;
  private firstLoss: number | null = null;
  private lostAfterFirstLoss = 0;
  private stopped = false;
  private finished: ((summary: PingSummary) => void) | null = null;
  private result: Promise<PingSummary> | null = null;
  private target = { address: '', port: 0 };

  constructor(options: PingOptions = {}) {
    super();
    this.options = normalizePingOptions(options);
  }

  /**
   * The address the pings go to. Rejects (`UPCASE_ERR_CONNECT`) if the host cannot be
   * resolved; a caller may await it before `run()` to report that before anything else.
   */
  resolve(): Promise<Target> {
    this.resolved ??= resolveTargets(this.options.host, this.options.port, 'udp').then((targets) => targets[0]!);
    return this.resolved;
  }

  /** Starts pinging; resolves with the summary. Rejects only if the host cannot be resolved. Call once. */
  run(): Promise<PingSummary> {
    this.result ??= this.start();
    return this.result;
  }

  /** Stops sending; pings still unanswered count as lost. The summary is resolved at once. */
  stop(): void {
    this.stopped = true;
    if (this.socket !== null) this.finish();
  }

  private async start(): Promise<PingSummary> {
    const { host, port, deadline } = this.options;
    const target = await this.resolve();
    const socket = dgram.createSocket(target!.family === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, target!.address, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      socket.close();
      throw networkError({ op: 'connect' }, { transport: 'udp', address: host, port }, err);
    });
    this.socket = socket;
    this.target = { address: target!.address, port };
    const done = new Promise<PingSummary>((resolve) => {
      this.finished = resolve;
    });
    socket.on('message', (msg: Buffer) => this.onReply(msg));
    socket.on('error', (err: Error) => this.onError(err));
    this.startedAt = process.hrtime.bigint();
    // As ping(8)'s -w: the run ends then, whatever the count; pings still unanswered are lost.
    if (deadline !== undefined) this.deadlineTimer = setTimeout(() => this.stop(), deadline * 1000);
    if (this.stopped) this.finish();
    else this.sendNext();
    return done;
  }

  private sendNext(): void {
    const { count, interval, timeout, size } = this.options;
    const seq = this.nextSeq++;
    const timer = setTimeout(() => this.onTimeout(seq), timeout * 1000);
    this.pending.set(seq, { sentAt: process.hrtime.bigint(), timer });
    this.transmitted++;
    this.socket!.send(pingPayload(seq, size), (err) => {
      if (err !== null) this.fail(seq, networkError({ op: 'exchange' }, this.where(), err));
    });
    if (count === 0 || seq < count) {
      // Scheduled against the start time, so timer lateness does not add up over many pings.
      const due = Number(this.startedAt / 1_000_000n) + seq * interval * 1000;
      const delay = Math.max(0, due - Number(process.hrtime.bigint() / 1_000_000n));
      this.sendTimer = setTimeout(() => {
        this.sendTimer = null;
        this.sendNext();
      }, delay);
    }
  }

  private onReply(msg: Buffer): void {
    const now = process.hrtime.bigint();
    const seq = replySeq(msg);
    const ping = seq === null ? undefined : this.pending.get(seq);
    if (ping === undefined) {
      this.late++;
      return;
    }
    clearTimeout(ping.timer);
    this.pending.delete(seq!);
    const rtt = Number(now - ping.sentAt) / 1e6;
    this.rtts.add(rtt);
    this.emit('reply', { seq: seq!, bytes: msg.length, rtt, ...this.target });
    this.checkDone();
  }

  private onTimeout(seq: number): void {
    if (!this.pending.delete(seq)) return;
    this.lost(seq);
    this.emit('timeout', seq);
    this.checkDone();
  }

  private onError(err: Error): void {
    // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED, without
    // saying which datagram caused it: charge it to the oldest ping still waiting.
    const oldest = this.pending.keys().next();
    const error = networkError({ op: systemCode(err) === 'ECONNREFUSED' ? 'connect' : 'exchange' }, this.where(), err);
    if (oldest.done === true) return;
    this.fail(oldest.value, error);
  }

  private where(): NetworkLocation {
    return { transport: 'udp', address: this.options.host, port: this.options.port };
  }

  private fail(seq: number, error: NetworkError): void {
    const ping = this.pending.get(seq);
    if (ping === undefined) return;
    clearTimeout(ping.timer);
    this.pending.delete(seq);
    this.errors++;
    this.lost(seq);
    this.emit('failure', { seq, error });
    this.checkDone();
  }

  private lost(seq: number): void {
    if (this.firstLoss === null || seq < this.firstLoss) this.firstLoss = seq;
    this.lostAfterFirstLoss++;
  }

  private checkDone(): void {
    const { count } = this.options;
    if (count > 0 && this.transmitted === count && this.pending.size === 0) this.finish();
  }

  private finish(): void {
    if (this.finished === null) return;
    const resolve = this.finished;
    this.finished = null;
    if (this.sendTimer !== null) clearTimeout(this.sendTimer);
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    this.socket?.close();
    const time = Number(process.hrtime.bigint() - this.startedAt) / 1e6;
    const { transmitted } = this;
    const received = this.rtts.count;
    resolve({
      transmitted,
      received,
      errors: this.errors,
      loss: transmitted === 0 ? 0 : ((transmitted - received) * 100) / transmitted,
      time,
      rtt: received === 0 ? null : { min: this.rtts.min, avg: this.rtts.avg, max: this.rtts.max, mdev: this.rtts.mdev },
      late: this.late,
      firstLoss: this.firstLoss,
      lostAfterFirstLoss: this.lostAfterFirstLoss,
    });
  }

  /** `host:port` as given, for messages. */
  get destination(): string {
    return formatHostPort(this.options.host, this.options.port);
  }
}

/**
 * Whether a run's losses look like the server's per-source rate limit rather
 * than a lossy path: at least 20 pings all answered from the start, then at
 * least 10% lost, at 10 pings a second or more. (Random loss of 30% gives 20
 * clean pings in a row from the start with probability 0.7^20 ≈ 0.08%.)
 */
export function looksRateLimited(summary: PingSummary, interval: number): boolean {
  if (summary.firstLoss === null || summary.firstLoss <= 20 || interval > 0.1) return false;
  const afterFirstLoss = summary.transmitted - summary.firstLoss + 1;
  return summary.lostAfterFirstLoss / afterFirstLoss >= 0.1;
}
