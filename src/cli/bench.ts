import { Command } from 'commander';
import { reportFile, writeReport } from '../bench/chart.js';
import {
  BENCH_OPTIONS,
  type BenchOptions,
  type BenchProgress,
  type NormalizedBenchOptions,
  normalizeBenchOptions,
} from '../bench/options.js';
import { type BenchResult, runBench } from '../bench/run.js';
import { TLS_OPTIONS, TRANSPORT_OPTIONS } from '../client/options.js';
import { SERVER_DEFAULTS } from '../options.js';
import { boolean } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { pick } from './client.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, errorMessage } from './common.js';
import { reportFailure } from './failure.js';
import { addOptions, Flags, isUsageError } from './options.js';

/** `upcase bench`'s options: transport, then the load generator's (src/bench/options.ts), then the output's. */
export const BENCH_COMMAND_OPTIONS = {
  tcp: { ...TRANSPORT_OPTIONS.tcp, help: 'TCP request/response (the default)' },
  udp: { ...TRANSPORT_OPTIONS.udp, help: 'UDP datagrams; each request carries a sequence number' },
  host: BENCH_OPTIONS.host,
  port: BENCH_OPTIONS.port,
  tls: BENCH_OPTIONS.tls,
  ca: TLS_OPTIONS.ca,
  servername: TLS_OPTIONS.servername,
  insecure: TLS_OPTIONS.insecure,
  connections: BENCH_OPTIONS.connections,
  duration: BENCH_OPTIONS.duration,
  size: BENCH_OPTIONS.size,
  pipeline: BENCH_OPTIONS.pipeline,
  rate: BENCH_OPTIONS.rate,
  warmup: BENCH_OPTIONS.warmup,
  timeout: BENCH_OPTIONS.timeout,
  payload: BENCH_OPTIONS.payload,
  json: { kind: boolean(), help: 'print one JSON object with every figure, and nothing else', cli: true },
  report: { kind: reportFile(), help: 'also write a chart of latency percentiles and throughput: .svg, .png or .html', cli: true },
} as const satisfies Table;

type BenchFlags = BenchOptions & { udp?: boolean; json?: boolean; report?: string };

export function benchCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('bench').description('load-test an upcase server over TCP or UDP, verifying every reply');
  return addOptions(command, BENCH_COMMAND_OPTIONS).action(async (_flags: unknown, cmd: Command) => {
    setExitCode(await bench(new Flags('upcase bench', BENCH_COMMAND_OPTIONS, cmd)));
  });
}

/** Client CPU (% of one core) above which the human output warns that the client may be the bottleneck. */
const CLIENT_BUSY = 90;

async function bench(cli: Flags): Promise<number> {
  let flags: BenchFlags;
  let options: BenchOptions;
  let normalized: NormalizedBenchOptions;
  try {
    flags = cli.options<BenchFlags>(BENCH_COMMAND_OPTIONS);
    options = { ...pick<BenchOptions>(flags, Object.keys(BENCH_OPTIONS)), transport: flags.udp === true ? 'udp' : 'tcp' };
    normalized = normalizeBenchOptions(options);
  } catch (err) {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`${cli.describe(err)}\n`);
    return EXIT_USAGE;
  }
  if (normalized.tls?.insecure === true) process.stderr.write('upcase: warning: --insecure: the server certificate is not verified\n');

  const progress = process.stderr.isTTY === true && flags.json !== true ? new ProgressLine() : null;
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  let result: BenchResult;
  try {
    result = await runBench({ ...options, signal: controller.signal, onProgress: progress === null ? undefined : (p) => progress.show(p) });
  } catch (err) {
    progress?.clear();
    if (!isUsageError(err)) return reportFailure(err);
    process.stderr.write(`${cli.describe(err)}\n`);
    return EXIT_USAGE;
  } finally {
    process.off('SIGINT', onSignal);
  }
  progress?.clear();

  if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(formatResult(result));
  for (const hint of hints(result, normalized)) process.stderr.write(`upcase: hint: ${hint}\n`);

  if (flags.report !== undefined) {
    try {
      await writeReport(result, flags.report);
    } catch (err) {
      process.stderr.write(`upcase: cannot write report ${flags.report}: ${errorMessage(err)}\n`);
      return EXIT_FAILURE;
    }
  }
  return result.errors.total > 0 ? EXIT_FAILURE : EXIT_OK;
}

/** Notes for a person reading the result: no UDP server, or lost datagrams that look like the server's rate limit. */
function hints(r: BenchResult, o: NormalizedBenchOptions): string[] {
  const out: string[] = [];
  // `upcase serve` allows SERVER_DEFAULTS.udpRateLimit datagrams/s per source address, with a burst
  // of as many: a run that loses datagrams while getting about that many replies has probably hit it.
  const okRate = r.requests.ok / Math.max(0.001, o.warmup + r.duration);
  if (r.transport === 'udp' && r.errors.timeout > 0 && r.requests.ok === 0) {
    out.push(`no UDP reply at all from ${r.host}:${r.port}: is a server listening there over UDP (and on that address family)?`);
  } else if (r.transport === 'udp' && r.errors.timeout > 0 && okRate < 2.5 * SERVER_DEFAULTS.udpRateLimit) {
    out.push(
      `${r.errors.timeout} UDP requests got no reply at about ${Math.round(okRate)} replies/s. If the server is \`upcase serve\`, ` +
        `its per-source rate limit (--udp-rate-limit, default ${SERVER_DEFAULTS.udpRateLimit}/s) drops the rest: ` +
        'run `upcase serve --udp-rate-limit 0` for benchmarking.',
    );
  }
  return out;
}

function num(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function formatResult(r: BenchResult): string {
  const load =
    r.transport === 'udp'
      ? `${r.connections} socket(s) × ${r.pipeline} in flight`
      : `${r.connections} connection(s) × ${r.pipeline} in flight`;
  const mode = r.rate === null ? 'closed loop' : `fixed rate ${num(r.rate)}/s`;
  const e = r.errors;
  const lines = [
    `upcase bench: ${r.tls ? 'TLS' : r.transport.toUpperCase()} ${r.host}:${r.port}, ${load}, ${r.size} B ${r.payload} requests, ${mode}`,
    `  requests    ${num(r.throughput.requestsPerSec, 1)}/s  (${num(r.requests.measured)} answered correctly in ${r.duration.toFixed(2)} s${r.endedEarly ? ', ended early' : ''})`,
    `  throughput  ${num(r.throughput.mbPerSec, 2)} MB/s of requests  (wire: ${num(r.throughput.sentBytesPerSec / 1e6, 2)} MB/s out, ${num(r.throughput.receivedBytesPerSec / 1e6, 2)} MB/s in)`,
    `  latency     p50 ${num(r.latency.p50, 1)} µs  p90 ${num(r.latency.p90, 1)} µs  p99 ${num(r.latency.p99, 1)} µs  p99.9 ${num(r.latency.p99_9, 1)} µs  max ${num(r.latency.max, 1)} µs`,
    `  errors      ${num(e.total)}  (mismatch ${e.mismatch}, timeout ${e.timeout}, closed ${e.closed}, unexpected ${e.unexpected}, socket ${e.socket}${e.late > 0 ? `; late replies ${e.late}` : ''})`,
    `  client CPU  ${num(r.cpu.percentOfOneCore, 1)}% of one core${r.cpu.percentOfOneCore >= CLIENT_BUSY ? ' (the client itself may be the bottleneck)' : ''}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** One status line on stderr, rewritten in place once per second. */
class ProgressLine {
  private shown = false;

  show(p: BenchProgress): void {
    const phase = p.warmingUp ? 'warmup ' : 'running';
    process.stderr.write(`\r\x1b[2K  ${p.elapsed.toFixed(0).padStart(4)}s ${phase}  ${num(p.rate)} req/s  errors ${num(p.errors)}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
