import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { formatHostPort, type NetworkError, type NetworkLocation, networkError, systemCode } from '../errors.js';
import { type NormalizedPingOptions, normalizePingOptions, type PingOptions } from './options.js';
import { connectUdpSocket, resolveTargets, type Target } from './resolve.js';

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

/** Summary statistics of a set of durations (ms), as irtt reports them. */
export interface DurationStats {
  count: number;
  min: number;
  mean: number;
  median: number;
  max: number;
  /** Sample standard deviation (n − 1), as irtt's. */
  stddev: number;
}

/** min/mean/median/max/stddev of `values`; null when empty. */
export function durationStats(values: readonly number[]): DurationStats | null {
  const n = values.length;
  if (n === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const m = n >> 1;
  const median = n % 2 === 1 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
  const variance = n > 1 ? values.reduce((a, v) => a + (v - mean) * (v - mean), 0) / (n - 1) : 0;
  return { count: n, min: sorted[0]!, mean, median, max: sorted[n - 1]!, stddev: Math.sqrt(variance) };
}

/** The statistics of a ping run, as ping(8) prints them. */
export interface PingSummary {
  transmitted: number;
  /** Probes answered within their timeout (first replies only). */
  received: number;
  /** Pings that failed at once (port unreachable, send error) rather than timing out. */
  errors: number;
  /** Percent of transmitted pings without a reply within their timeout, as ping(8) counts (late replies included). */
  loss: number;
  /** Probes that never got any reply (timed out, and no late reply came before the end). */
  lost: number;
  /** Probes whose first reply came after their timeout, before the run ended. */
  late: number;
  /** Replies beyond the first to the same probe. */
  duplicates: number;
  /** Probes answered in time, but after a later probe's reply. */
  reordered: number;
  /** Datagrams that answer no probe sent (no `PING <seq>`, or a seq never sent). */
  unexpected: number;
  /** Milliseconds from the first ping to the end. */
  time: number;
  /**
   * RTT statistics in milliseconds over the replies received in time, when any
   * came: `avg` is the mean, `mdev` ping(8)'s population deviation, `stddev` irtt's sample one.
   */
  rtt: { min: number; avg: number; median: number; max: number; mdev: number; stddev: number } | null;
  /** IPDV (jitter) as irtt defines it: |RTT(seq) − RTT(seq − 1)| over consecutive probes both answered in time (ms); null below two. */
  ipdv: DurationStats | null;
  /** The first ping that got no reply, if any. */
  firstLoss: number | null;
  /** Pings lost from `firstLoss` on. */
  lostAfterFirstLoss: number;
}

/** What became of one probe, once settled: emitted in sequence order. */
export interface ProbeRecord {
  type: 'probe';
  seq: number;
  /**
   * `reply` (answered within the timeout), `timeout` (no reply within it; a
   * later `late` record may follow), `error` (port unreachable, send error), or
   * `unanswered` (the run was stopped before its timeout).
   */
  status: 'reply' | 'timeout' | 'error' | 'unanswered';
  /** Bytes sent. */
  size: number;
  /** Bytes in the reply, or null. */
  bytes: number | null;
  /** Round-trip time, ms, or null. */
  rtt: number | null;
  /** RTT − the previous probe's RTT (ms), when both were answered in time; else null. */
  ipdv: number | null;
  /** Answered in time, but after a later probe's reply. */
  reordered: boolean;
  /** With `error`: what failed. */
  error: string | null;
}

/** A reply beyond a probe's settled record: a duplicate, or a late first reply. */
export interface ExtraReply {
  type: 'duplicate' | 'late';
  seq: number;
  bytes: number;
  /** Milliseconds since the probe was sent. */
  rtt: number;
}

export interface PingerEvents {
  reply: [PingReply];
  timeout: [number];
  failure: [PingFailure];
  /** Every probe once settled, in sequence order. */
  probe: [ProbeRecord];
  duplicate: [ExtraReply];
  late: [ExtraReply];
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

interface Probe {
  sentAt: bigint;
  timer: NodeJS.Timeout | null;
  status: 'pending' | ProbeRecord['status'];
  /** Any reply came, in time or late. */
  answered: boolean;
  rtt: number | null;
  bytes: number | null;
  reordered: boolean;
  error: string | null;
}

/**
 * Sends `count` pings (or until {@link stop}) every `interval` seconds and
 * resolves with the summary once every ping is answered or timed out. A reply
 * is matched to its probe by the sequence number it carries, so duplicates,
 * reordering and late replies are told apart. Events: `probe` (every probe,
 * settled, in sequence order), `duplicate` and `late` (as they come); and, as
 * they happen, `reply`, `timeout` (seq) and `failure` (e.g. port unreachable).
 * Never prints.
 */
export class Pinger extends EventEmitter<PingerEvents> {
  readonly options: NormalizedPingOptions;
  private socket: dgram.Socket | null = null;
  /** Probe seq is at index seq − 1. */
  private readonly probes: Probe[] = [];
  private readonly rtts = new RttStats();
  private readonly rttValues: number[] = [];
  private readonly ipdvValues: number[] = [];
  private nextSeq = 1;
  /** The next seq whose record is to be emitted. */
  private nextRecord = 1;
  private pendingCount = 0;
  private maxAnswered = 0;
  private sendTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private resolved: Promise<Target> | null = null;
  private startedAt = 0n;
  private transmitted = 0;
  private errors = 0;
  private late = 0;
  private duplicates = 0;
  private reordered = 0;
  private unexpected = 0;
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
    const socket = await connectUdpSocket(target!, host, port);
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
    this.probes.push({
      sentAt: process.hrtime.bigint(),
      timer,
      status: 'pending',
      answered: false,
      rtt: null,
      bytes: null,
      reordered: false,
      error: null,
    });
    this.pendingCount++;
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

  private probe(seq: number | null): Probe | undefined {
    return seq === null || seq < 1 ? undefined : this.probes[seq - 1];
  }

  private onReply(msg: Buffer): void {
    const now = process.hrtime.bigint();
    const seq = replySeq(msg);
    const probe = this.probe(seq);
    if (probe === undefined) {
      this.unexpected++;
      return;
    }
    const rtt = Number(now - probe.sentAt) / 1e6;
    if (probe.answered) {
      this.duplicates++;
      this.emit('duplicate', { type: 'duplicate', seq: seq!, bytes: msg.length, rtt });
      return;
    }
    probe.answered = true;
    if (probe.status !== 'pending') {
      // After its timeout (or after an ICMP error charged to it): late, and not a reply in time.
      this.late++;
      this.emit('late', { type: 'late', seq: seq!, bytes: msg.length, rtt });
      return;
    }
    this.settle(probe);
    probe.status = 'reply';
    probe.rtt = rtt;
    probe.bytes = msg.length;
    if (seq! < this.maxAnswered) {
      probe.reordered = true;
      this.reordered++;
    } else {
      this.maxAnswered = seq!;
    }
    this.rtts.add(rtt);
    this.rttValues.push(rtt);
    this.emit('reply', { seq: seq!, bytes: msg.length, rtt, ...this.target });
    this.flush();
    this.checkDone();
  }

  private settle(probe: Probe): void {
    if (probe.timer !== null) clearTimeout(probe.timer);
    probe.timer = null;
    this.pendingCount--;
  }

  private onTimeout(seq: number): void {
    const probe = this.probe(seq);
    if (probe === undefined || probe.status !== 'pending') return;
    this.settle(probe);
    probe.status = 'timeout';
    this.lost(seq);
    this.emit('timeout', seq);
    this.flush();
    this.checkDone();
  }

  private onError(err: Error): void {
    // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED, without
    // saying which datagram caused it: charge it to the oldest ping still waiting.
    const oldest = this.probes.findIndex((p) => p.status === 'pending');
    const error = networkError({ op: systemCode(err) === 'ECONNREFUSED' ? 'connect' : 'exchange' }, this.where(), err);
    if (oldest < 0) return;
    this.fail(oldest + 1, error);
  }

  private where(): NetworkLocation {
    return { transport: 'udp', address: this.options.host, port: this.options.port };
  }

  private fail(seq: number, error: NetworkError): void {
    const probe = this.probe(seq);
    if (probe === undefined || probe.status !== 'pending') return;
    this.settle(probe);
    probe.status = 'error';
    probe.error = error.syscallCode === 'ECONNREFUSED' ? 'Destination port unreachable' : error.message;
    this.errors++;
    this.lost(seq);
    this.emit('failure', { seq, error });
    this.flush();
    this.checkDone();
  }

  private lost(seq: number): void {
    if (this.firstLoss === null || seq < this.firstLoss) this.firstLoss = seq;
    this.lostAfterFirstLoss++;
  }

  /** Emits the records of the probes settled, in sequence order, up to the first one still waiting. */
  private flush(): void {
    while (this.nextRecord < this.nextSeq) {
      const seq = this.nextRecord;
      const probe = this.probes[seq - 1]!;
      if (probe.status === 'pending') return;
      this.nextRecord++;
      const prev = this.probes[seq - 2];
      let ipdv: number | null = null;
      if (probe.status === 'reply' && prev?.status === 'reply') {
        ipdv = probe.rtt! - prev.rtt!;
        this.ipdvValues.push(Math.abs(ipdv));
      }
      this.emit('probe', {
        type: 'probe',
        seq,
        status: probe.status,
        size: this.options.size,
        bytes: probe.bytes,
        rtt: probe.rtt,
        ipdv,
        reordered: probe.reordered,
        error: probe.error,
      });
    }
  }

  private checkDone(): void {
    const { count } = this.options;
    if (count > 0 && this.transmitted === count && this.pendingCount === 0) this.finish();
  }

  private finish(): void {
    if (this.finished === null) return;
    const resolve = this.finished;
    this.finished = null;
    if (this.sendTimer !== null) clearTimeout(this.sendTimer);
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    for (const probe of this.probes) {
      if (probe.status !== 'pending') continue;
      this.settle(probe);
      probe.status = 'unanswered';
    }
    this.flush();
    this.socket?.close();
    const time = Number(process.hrtime.bigint() - this.startedAt) / 1e6;
    const { transmitted } = this;
    const received = this.rtts.count;
    const rtt = durationStats(this.rttValues);
    resolve({
      transmitted,
      received,
      errors: this.errors,
      loss: transmitted === 0 ? 0 : ((transmitted - received) * 100) / transmitted,
      lost: this.probes.filter((p) => !p.answered && p.status !== 'error').length,
      late: this.late,
      duplicates: this.duplicates,
      reordered: this.reordered,
      unexpected: this.unexpected,
      time,
      rtt:
        rtt === null
          ? null
          : { min: rtt.min, avg: this.rtts.avg, median: rtt.median, max: rtt.max, mdev: this.rtts.mdev, stddev: rtt.stddev },
      ipdv: durationStats(this.ipdvValues),
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
