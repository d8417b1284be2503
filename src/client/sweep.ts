import { upcase } from '../codec/upcase.js';
import { InvalidArgumentError } from '../errors.js';
import { checkInteger } from '../options.js';
import { systemCode } from '../errors.js';
import { type NormalizedPingOptions, normalizePingOptions, PING_DEFAULTS, type PingOptions } from './options.js';
import { pingPayload, replySeq } from './ping.js';
import { connectUdpSocket, resolveTargets } from './resolve.js';

/**
 * `upcase ping --sweep MIN:MAX[:STEP]`: UDP probes of growing sizes, to find the
 * largest datagram that gets a whole reply over a path (fragmentation and MTU
 * problems show as a size above which nothing comes back). Node's dgram cannot
 * set DF (IP_MTU_DISCOVER), so datagrams above the path MTU are fragmented by
 * the sender's kernel: the sweep finds the largest datagram the path delivers,
 * fragments and all, and the server answers whole (docs/clients.md).
 */

/** Sizes: MIN to MAX by STEP (MAX always included); `tries` probes per size before it counts as unanswered. */
export interface SweepOptions extends Omit<PingOptions, 'size' | 'count'> {
  min: number;
  max: number;
  /** Bytes between sizes. Default: (max − min) / 10, rounded up (11 sizes). */
  step?: number;
  /** Probes per size before it counts as unanswered (a lossy path loses some of any size). Default 3. */
  tries?: number;
}

/** One size of a sweep: what came back for a datagram of `size` bytes. */
export interface SweepStep {
  size: number;
  /**
   * `reply`: the whole uppercase came back; `truncated`: a shorter reply (the
   * server read less than the datagram: the textbook's recvfrom(2048)); `timeout`:
   * no reply to any try; `error`: the send failed (EMSGSIZE: larger than the local
   * interface allows) or ICMP unreachable.
   */
  status: 'reply' | 'truncated' | 'timeout' | 'error';
  /** Bytes in the reply, or null. */
  bytes: number | null;
  /** Round-trip time of the answered try, ms, or null. */
  rtt: number | null;
  /** Probes sent for this size. */
  tries: number;
  error: string | null;
}

/** What a sweep found: the largest size with a whole reply, and the first without one. */
export interface SweepResult {
  /** The largest size whose whole reply came back; null if none did. */
  largest: number | null;
  /** The smallest size that got no whole reply; null if every size did. */
  firstFailure: number | null;
  steps: SweepStep[];
}

/** Defaults of {@link sweep}: sizes tried between MIN and MAX when no STEP is given, and tries per size. */
export const SWEEP_DEFAULTS = {
  tries: 3, // probes per size
  sizes: 10, // intervals between MIN and MAX when no STEP is given
} as const;

/** The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header). */
const MAX_DATAGRAM = 65_507;

/** `MIN:MAX[:STEP]` → sizes; throws InvalidArgumentError naming `sweep`. */
export function parseSweep(spec: string): { min: number; max: number; step?: number } {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(spec);
  if (m === null) throw new InvalidArgumentError('sweep', 'MIN:MAX or MIN:MAX:STEP in bytes, like 1000:9000:500', spec);
  return { min: Number(m[1]), max: Number(m[2]), step: m[3] === undefined ? undefined : Number(m[3]) };
}

/** The sizes a sweep tries: MIN, MIN + STEP, …, MAX (STEP defaults to a tenth of the range); checks each bound. */
export function sweepSizes(min: number, max: number, step?: number): number[] {
  checkInteger('sweep MIN', min, PING_DEFAULTS.minSize, MAX_DATAGRAM, 'bytes');
  checkInteger('sweep MAX', max, min, MAX_DATAGRAM, 'bytes');
  const by =
    step === undefined
      ? Math.max(1, Math.ceil((max - min) / SWEEP_DEFAULTS.sizes))
      : checkInteger('sweep STEP', step, 1, MAX_DATAGRAM, 'bytes');
  const sizes: number[] = [];
  for (let s = min; s < max; s += by) sizes.push(s);
  sizes.push(max);
  return sizes;
}

/** Runs the sweep; `onStep` sees each size as it is settled. Rejects only if the host cannot be resolved or the socket cannot connect. */
export async function sweep(options: SweepOptions, onStep?: (step: SweepStep) => void): Promise<SweepResult> {
  const sizes = sweepSizes(options.min, options.max, options.step);
  const tries = options.tries === undefined ? SWEEP_DEFAULTS.tries : checkInteger('tries', options.tries, 1, 100, 'probes per size');
  const o: NormalizedPingOptions = normalizePingOptions({ ...options, size: options.min, count: 1 });
  const [target] = await resolveTargets(o.host, o.port, 'udp');
  const socket = await connectUdpSocket(target!, o.host, o.port);
  // The one try in flight: replies to earlier tries (late) carry another seq and are ignored.
  let waiting: { seq: number; settle: (reply: Buffer | Error | null) => void } | null = null;
  socket.on('message', (msg: Buffer) => {
    if (waiting !== null && replySeq(msg) === waiting.seq) waiting.settle(msg);
  });
  socket.on('error', (err: Error) => waiting?.settle(err));
  const steps: SweepStep[] = [];
  let seq = 0;
  try {
    for (const size of sizes) {
      const step: SweepStep = { size, status: 'timeout', bytes: null, rtt: null, tries: 0, error: null };
      for (let t = 0; t < tries; t++) {
        seq++;
        step.tries++;
        const request = pingPayload(seq, size);
        const sentAt = process.hrtime.bigint();
        const reply = await new Promise<Buffer | Error | null>((resolve) => {
          const timer = setTimeout(() => settle(null), o.timeout * 1000);
          const settle = (r: Buffer | Error | null): void => {
            clearTimeout(timer);
            waiting = null;
            resolve(r);
          };
          waiting = { seq, settle };
          socket.send(request, (err) => {
            if (err !== null) settle(err);
          });
        });
        if (reply === null) continue;
        if (reply instanceof Error) {
          step.status = 'error';
          const code = systemCode(reply);
          step.error =
            code === 'EMSGSIZE'
              ? 'message too long for the local interface (EMSGSIZE)'
              : code === 'ECONNREFUSED'
                ? 'port unreachable'
                : reply.message;
          // A size the local stack refuses stays refused; ICMP unreachable: try again, it may be another datagram's.
          if (code === 'EMSGSIZE') break;
          continue;
        }
        step.rtt = Number(process.hrtime.bigint() - sentAt) / 1e6;
        step.bytes = reply.length;
        step.status = reply.equals(upcase(request)) ? 'reply' : 'truncated';
        step.error = null;
        break;
      }
      steps.push(step);
      onStep?.(step);
    }
  } finally {
    socket.close();
  }
  const whole = steps.filter((s) => s.status === 'reply');
  return {
    largest: whole.length === 0 ? null : whole.at(-1)!.size,
    firstFailure: steps.find((s) => s.status !== 'reply')?.size ?? null,
    steps,
  };
}
