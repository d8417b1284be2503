import { constants } from 'node:os';
import { resolveTargets } from '../client/resolve.js';
import { networkError } from '../errors.js';
import type { LatencyHistogram } from './histogram.js';
import type { NormalizedBenchOptions } from './options.js';
import { type EngineHandle, type LoadedNativeBench, nativeBenchStatus } from './addon.js';
import type { PayloadSet } from './payload.js';
import type { LoadDriver, Tally } from './tally.js';
import { answeringAddress } from './udp.js';

/**
 * The optional native engine of `upcase bench` (native/bench_engine.c): the
 * closed-loop TCP and UDP loops on a thread of their own (epoll; batched reads
 * and writes for TCP, recvmmsg/sendmmsg for UDP), so the load generator is not
 * bounded by one JavaScript event loop. It sends the requests TypeScript prepared
 * (src/bench/payload.ts), compares every reply with its expected uppercase and
 * counts the same error classes as the JavaScript engine (src/bench/tcp.ts,
 * src/bench/udp.ts); its latencies come back as counts in hdr-histogram-js's own
 * bucket layout with the exact min and max, and are added into the run's
 * histogram. Closed loop only, without TLS: other workloads run on the
 * JavaScript engine. Linux only; built by `npm ci` where a C compiler is.
 */

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** A connect failure as Node would report it: `code`, `errno`, `syscall`. */
function connectFailure(errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`connect ${code}`), { code, errno: -errno, syscall: 'connect' });
}

/** A refusal for which another address of the host may do better. */
const TRY_NEXT = new Set(['ECONNREFUSED', 'EADDRNOTAVAIL', 'ENETUNREACH', 'EHOSTUNREACH', 'EAFNOSUPPORT']);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A {@link LoadDriver} over the native engine: the engine thread does the I/O and the
 * verification; {@link sync} brings the run's {@link Tally} and histogram up to date.
 */
export class NativeDriver implements LoadDriver {
  private engine: EngineHandle | null = null;
  private readonly native: LoadedNativeBench;
  private readonly counters: Float64Array;
  private readonly values: Float64Array;
  private readonly counts: Float64Array;
  private closed = false;

  constructor(
    readonly options: NormalizedBenchOptions,
    readonly tally: Tally,
    private readonly payloads: PayloadSet,
  ) {
    const status = nativeBenchStatus();
    if (status.binding === null) throw new Error('the native bench engine is not loaded');
    this.native = status.binding;
    this.counters = new Float64Array(this.native.constants.counterCount);
    this.values = new Float64Array(this.native.constants.slots);
    this.counts = new Float64Array(this.native.constants.slots);
  }

  async open(): Promise<void> {
    const o = this.options;
    const udp = o.transport === 'udp';
    const where = { transport: o.transport, address: o.host, port: o.port };
    const addresses = udp
      ? [
          await answeringAddress(o.host, o.port, o.timeout).catch((err: unknown) =>
            Promise.reject(networkError({ op: 'connect' }, where, err)),
          ),
        ]
      : (await resolveTargets(o.host, o.port, 'tcp')).map((t) => t.address);
    const { bodies, expected } = this.payloads;
    const offsets = new Uint32Array(expected.length + 1);
    for (let k = 0; k < expected.length; k++) offsets[k + 1] = offsets[k]! + expected[k]!.length;
    const config = {
      udp: udp ? 1 : 0,
      port: o.port,
      connections: o.connections,
      pipeline: o.pipeline,
      size: o.size,
      timeoutMs: Math.max(1, Math.round(o.timeout * 1000)),
      bodies: Buffer.concat(bodies),
      expected: Buffer.concat(expected),
      expectedOffsets: offsets,
    };
    const { state, counter } = this.native.constants;
    let failure: NodeJS.ErrnoException | null = null;
    for (const address of addresses) {
      const engine = this.native.binding.create({ ...config, address });
      // The engine thread connects (bounded by the timeout); it says when it is done.
      for (;;) {
        this.native.binding.poll(engine, this.counters, this.values, this.counts);
        if (this.counters[counter.state] !== state.connecting) break;
        await sleep(2);
      }
      if (this.counters[counter.state] === state.ready) {
        this.engine = engine;
        return;
      }
      this.native.binding.close(engine);
      failure = connectFailure(this.counters[counter.errno]!);
      if (!TRY_NEXT.has(failure.code!)) break;
    }
    throw networkError({ op: 'connect' }, where, failure);
  }

  start(_t0: number): void {
    if (this.engine !== null) this.native.binding.start(this.engine);
  }

  tick(_now: number): void {
    // Closed loop only: the engine sends as replies come.
  }

  scan(_now: number): void {
    // The engine finds timeouts itself; here the figures are brought up to date.
    this.sync();
  }

  stopSending(): void {
    if (this.engine !== null) this.native.binding.stopSending(this.engine);
  }

  inFlight(): number {
    this.sync();
    return this.counters[this.native.constants.counter.inFlight]!;
  }

  alive(): number {
    return this.engine === null ? 0 : this.counters[this.native.constants.counter.alive]!;
  }

  /** CPU seconds the engine thread had used at the last {@link sync}. */
  cpuSeconds(): number {
    return this.counters[this.native.constants.counter.cpuNs]! / 1e9;
  }

  /** Copies the engine's counters into the tally, and its latencies into the tally's histogram while it records. */
  sync(): void {
    if (this.engine === null) return;
    const n = this.native.binding.poll(this.engine, this.counters, this.values, this.counts);
    this.copy(n);
  }

  private copy(n: number): void {
    const c = this.counters;
    const k = this.native.constants.counter;
    const t = this.tally;
    t.ok = c[k.ok]!;
    t.mismatch = c[k.mismatch]!;
    t.timeout = c[k.timeout]!;
    t.closed = c[k.closed]!;
    t.unexpected = c[k.unexpected]!;
    t.socket = c[k.socket]!;
    t.late = c[k.late]!;
    t.sent = c[k.sent]!;
    t.bytesSent = c[k.bytesSent]!;
    t.bytesReceived = c[k.bytesReceived]!;
    if (n > 0 && t.recording) (t.histogram as LatencyHistogram).recordCounts(this.values, this.counts, n, c[k.minNs]!, c[k.maxNs]!);
  }

  async close(): Promise<void> {
    if (this.closed || this.engine === null) return;
    this.closed = true;
    const engine = this.engine;
    this.native.binding.close(engine);
    this.copy(this.native.binding.poll(engine, this.counters, this.values, this.counts));
  }
}
