import { EventEmitter } from 'node:events';
import net from 'node:net';
import { upcase } from '../codec/upcase.js';
import { formatHostPort } from '../errors.js';
import { networkError, systemCode } from '../errors.js';
import { type NormalizedPingOptions, normalizePingOptions, type PingOptions } from './options.js';
import { durationStats, type DurationStats, pingPayload } from './ping.js';
import { resolveTargets } from './resolve.js';

/**
 * `upcase ping --tcp`, in the manner of tcping: each probe opens a new TCP
 * connection, sends the ping payload, reads the reply and closes. Per probe it
 * measures the handshake (connect) time and the time from the write to the
 * first reply byte. It needs nothing of the server but an uppercase (or echo)
 * reply, so it works against the textbook's TCPServer.py (one recv(1024), one
 * reply, close) as against `upcase serve`.
 */

export interface TcpProbeRecord {
  type: 'probe';
  seq: number;
  /** `reply` (some reply came in time), `timeout` (connect or reply took longer than the timeout), `error` (refused, reset, …). */
  status: 'reply' | 'timeout' | 'error';
  /** Bytes sent. */
  size: number;
  /** TCP handshake: from connect() to the connection being established, ms; null if it was not. */
  connect: number | null;
  /** From the write of the request to the first reply byte, ms; null without a reply. */
  firstByte: number | null;
  /** Reply bytes read (up to `size`). */
  bytes: number | null;
  /** The reply is the whole uppercase of the request; false when the server sent less (or other bytes) and closed. */
  complete: boolean | null;
  error: string | null;
}

/** The statistics of a `ping --tcp` run: probes, replies, and connect and first-byte times. */
export interface TcpPingSummary {
  transmitted: number;
  /** Probes with a reply within the timeout. */
  received: number;
  /** Of those, replies shorter than the request or not its uppercase. */
  incomplete: number;
  timeouts: number;
  errors: number;
  /** Percent of probes without a reply. */
  loss: number;
  /** Milliseconds from the first probe to the end. */
  time: number;
  /** Handshake times (ms), over every probe that connected. */
  connect: DurationStats | null;
  /** Times to the first reply byte (ms), over every probe that got a reply. */
  firstByte: DurationStats | null;
}

export interface TcpPingerEvents {
  /** Every probe once done, in sequence order (one connection at a time). */
  probe: [TcpProbeRecord];
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/** Sends `count` probes (or until {@link stop}), one connection each, every `interval` seconds. Never prints. */
export class TcpPinger extends EventEmitter<TcpPingerEvents> {
  readonly options: NormalizedPingOptions;
  private stopped = false;
  private wake: (() => void) | null = null;
  private current: net.Socket | null = null;

  constructor(options: PingOptions = {}) {
    super();
    this.options = normalizePingOptions(options);
  }

  /** Stops after the probe under way (which is cut short). */
  stop(): void {
    this.stopped = true;
    this.current?.destroy();
    this.wake?.();
  }

  /** Runs the probes and resolves with the summary. Rejects only if the host cannot be resolved. */
  async run(): Promise<TcpPingSummary> {
    const { host, port, count, interval } = this.options;
    const [target] = await resolveTargets(host, port, 'tcp');
    const records: TcpProbeRecord[] = [];
    const startedAt = process.hrtime.bigint();
    for (let seq = 1; !this.stopped && (count === 0 || seq <= count); seq++) {
      const record = await this.probe(seq, target!.address);
      records.push(record);
      this.emit('probe', record);
      if (this.stopped || seq === count) break;
      // Scheduled against the start time; a probe that took longer than the interval delays the next one.
      const due = Number(startedAt / 1_000_000n) + seq * interval * 1000;
      const wait = due - Number(process.hrtime.bigint() / 1_000_000n);
      if (wait > 0) await this.sleep(wait);
    }
    const replies = records.filter((r) => r.status === 'reply');
    const transmitted = records.length;
    return {
      transmitted,
      received: replies.length,
      incomplete: replies.filter((r) => r.complete === false).length,
      timeouts: records.filter((r) => r.status === 'timeout').length,
      errors: records.filter((r) => r.status === 'error').length,
      loss: transmitted === 0 ? 0 : ((transmitted - replies.length) * 100) / transmitted,
      time: ms(startedAt, process.hrtime.bigint()),
      connect: durationStats(records.flatMap((r) => (r.connect === null ? [] : [r.connect]))),
      firstByte: durationStats(replies.map((r) => r.firstByte!)),
    };
  }

  private sleep(wait: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, wait);
      this.wake = done;
    });
  }

  private probe(seq: number, address: string): Promise<TcpProbeRecord> {
    const { port, size, timeout, host } = this.options;
    const request = pingPayload(seq, size);
    const expected = upcase(request);
    return new Promise((resolve) => {
      const record: TcpProbeRecord = {
        type: 'probe',
        seq,
        status: 'reply',
        size,
        connect: null,
        firstByte: null,
        bytes: null,
        complete: null,
        error: null,
      };
      const chunks: Buffer[] = [];
      let received = 0;
      let writtenAt = 0n;
      const t0 = process.hrtime.bigint();
      const socket = net.connect({ host: address, port, noDelay: true });
      this.current = socket;
      const done = (status: TcpProbeRecord['status'], error: string | null = null): void => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
        this.current = null;
        record.status = record.firstByte !== null ? 'reply' : status;
        if (record.firstByte !== null) {
          const reply = Buffer.concat(chunks).subarray(0, expected.length);
          record.bytes = reply.length;
          record.complete = reply.equals(expected);
        } else {
          record.error = error;
        }
        resolve(record);
      };
      const timer = setTimeout(
        () => done('timeout', `no ${record.connect === null ? 'connection' : 'reply'} within ${timeout} s`),
        timeout * 1000,
      );
      socket.once('connect', () => {
        const now = process.hrtime.bigint();
        record.connect = ms(t0, now);
        writtenAt = now;
        socket.write(request);
      });
      socket.on('data', (chunk: Buffer) => {
        if (record.firstByte === null) record.firstByte = ms(writtenAt, process.hrtime.bigint());
        chunks.push(chunk);
        received += chunk.length;
        if (received >= expected.length) done('reply');
      });
      // The server closed (the textbook's server does after one reply), or reset.
      socket.once('end', () => done('error', 'the server closed the connection without a reply'));
      socket.once('close', () => done('error', 'the connection closed without a reply'));
      socket.once('error', (err: Error) => {
        const code = systemCode(err);
        done(
          'error',
          code === 'ECONNREFUSED'
            ? 'Connection refused'
            : networkError({ op: 'connect' }, { transport: 'tcp', address: host, port }, err).message,
        );
      });
    });
  }

  /** `host:port` as given, for messages. */
  get destination(): string {
    return formatHostPort(this.options.host, this.options.port);
  }
}
