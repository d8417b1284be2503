import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { reportFile, writeReport } from '../bench/chart.js';
import {
  BENCH_OPTIONS,
  type BenchOptions,
  type BenchProgress,
  type NormalizedBenchOptions,
  normalizeBenchOptions,
} from '../bench/options.js';
import { mergeResults, type MergedResult } from '../bench/merge.js';
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
  threads: BENCH_OPTIONS.threads,
  engine: BENCH_OPTIONS.engine,
  interval: { ...BENCH_OPTIONS.interval, default: undefined },
  json: { kind: boolean(), help: 'print one JSON object with every figure, and nothing else', cli: true },
  report: { kind: reportFile(), help: 'also write a chart of latency percentiles and throughput: .svg, .png or .html', cli: true },
} as const satisfies Table;

type BenchFlags = BenchOptions & { udp?: boolean; json?: boolean; report?: string };

export function benchCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('bench').description('load-test an upcase server over TCP or UDP, verifying every reply');
  // bench's own flags (--json) come before `merge`, so merge's flags of the same name are merge's.
  command.enablePositionalOptions().addCommand(mergeCommand(setExitCode));
  return addOptions(command, BENCH_COMMAND_OPTIONS).action(async (_flags: unknown, cmd: Command) => {
    setExitCode(await bench(new Flags('upcase bench', BENCH_COMMAND_OPTIONS, cmd)));
  });
}

/** Busy share (%) of a load thread (its event loop, or its native engine thread's CPU) above which the human output warns that the client may be the bottleneck. */
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
    return cli.refuse(err);
  }
  if (normalized.tls?.insecure === true) process.stderr.write('upcase: warning: --insecure: the server certificate is not verified\n');

  const progress = process.stderr.isTTY === true && flags.json !== true && flags.interval === undefined ? new ProgressLine() : null;
  const intervals = flags.interval === undefined ? null : flags.json === true ? process.stderr : process.stdout;
  const onProgress =
    intervals !== null
      ? (p: BenchProgress) => intervals.write(`${formatInterval(p)}\n`)
      : progress === null
        ? undefined
        : (p: BenchProgress) => progress.show(p);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  let result: BenchResult;
  try {
    result = await runBench({ ...options, signal: controller.signal, onProgress });
  } catch (err) {
    progress?.clear();
    return isUsageError(err) ? cli.refuse(err) : reportFailure(err);
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
  if (r.transport === 'udp' && r.errors.socket > 0 && r.requests.ok === 0) {
    out.push(`no UDP reply at all from ${r.host}:${r.port}, and ICMP port unreachable: nothing listens there over UDP`);
  } else if (r.transport === 'udp' && r.errors.timeout > 0 && r.requests.ok === 0) {
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

function us(v: number | null): string {
  return v === null ? '–' : `${num(v, 1)} µs`;
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
    r.latency.count === 0
      ? '  latency     no replies'
      : `  latency     p50 ${us(r.latency.p50)}  p90 ${us(r.latency.p90)}  p99 ${us(r.latency.p99)}  p99.9 ${us(r.latency.p99_9)}  max ${us(r.latency.max)}`,
    `  errors      ${num(e.total)}  (mismatch ${e.mismatch}, timeout ${e.timeout}, closed ${e.closed}, unexpected ${e.unexpected}, socket ${e.socket}${e.late > 0 ? `; late replies ${e.late}` : ''})`,
    `  client CPU  ${num(r.cpu.percentOfOneCore, 1)}% of one core${clientLimit(r)}`,
    `  engine      ${r.engine.name} (${r.engine.reason})`,
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

/** One iperf3-style interval line: `[  1.00-2.00 s]  12,345 req/s  p50 41.2 µs  p99 120.3 µs  errors 0`. */
export function formatInterval(p: BenchProgress): string {
  const span = `${p.start.toFixed(2)}-${p.end.toFixed(2)}`.padStart(11);
  const latency = p.p50 === null ? 'no replies' : `p50 ${us(p.p50)}  p99 ${us(p.p99)}`;
  return `[${span} s]  ${num(p.rate)} req/s  ${latency}  errors ${num(p.intervalErrors)}${p.warmingUp ? '  (warmup)' : ''}`;
}
interface MergeFlags {
  strict?: boolean;
  json?: boolean;
}

/** `upcase bench merge A.json B.json …`: one exact result from runs made at the same time. */
function mergeCommand(setExitCode: (code: number) => void): Command {
  return new Command('merge')
    .description(
      'merge the --json results of bench runs made at the same time (several machines or processes): exact percentiles from their histograms, summed counts and rates',
    )
    .argument('<files...>', 'files holding `upcase bench --json` results, one per line (other lines are skipped); - for stdin')
    .addOption(new Option('--strict', "refuse a run whose measured window does not overlap the others' (default: flag it)"))
    .addOption(new Option('--json', 'print the merged result as one JSON object'))
    .action(async (files: string[], flags: MergeFlags) => {
      setExitCode(await merge(files, flags));
    });
}

async function merge(files: string[], flags: MergeFlags): Promise<number> {
  const results: unknown[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      process.stderr.write(`upcase: cannot read ${file}: ${errorMessage(err)}\n`);
      return EXIT_USAGE;
    }
    const before = results.length;
    for (const [n, line] of text.split('\n').entries()) {
      // kubectl logs and shells mix other lines in (hints on stderr): a result is a line that is a JSON object.
      if (!line.trimStart().startsWith('{')) continue;
      try {
        results.push(JSON.parse(line));
      } catch {
        process.stderr.write(`upcase bench merge: ${file}:${n + 1}: not valid JSON\n`);
        return EXIT_FAILURE;
      }
    }
    if (results.length === before) {
      process.stderr.write(`upcase bench merge: ${file}: no result (expected the output of upcase bench --json)\n`);
      return EXIT_FAILURE;
    }
  }
  let merged: MergedResult;
  try {
    merged = await mergeResults(results, { strict: flags.strict === true });
  } catch (err) {
    process.stderr.write(`upcase bench merge: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  }
  if (flags.json === true) process.stdout.write(`${JSON.stringify(merged)}\n`);
  else process.stdout.write(formatMerged(merged));
  for (const i of merged.merged.flagged) {
    const run = merged.merged.runs[i]!;
    process.stderr.write(
      `upcase bench merge: warning: run ${i + 1} was not measured at the same time as the others (${Math.round(run.overlap * 100)}% of its window overlaps theirs); --strict refuses it\n`,
    );
  }
  return merged.errors.total > 0 ? EXIT_FAILURE : EXIT_OK;
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (data += d));
    process.stdin.on('end', () => resolve(data));
    process.stdin.on('error', reject);
  });
}

export function formatMerged(m: MergedResult): string {
  const { common } = m.merged;
  const window =
    common === null ? 'no time shared by every run' : `${((common.end - common.start) / 1000).toFixed(2)} s shared by every run`;
  const lines = formatResult(m).split('\n');
  lines.splice(1, 0, `  merged      ${m.merged.runs.length} runs, ${window}; rates are the runs' rates added`);
  return lines.join('\n');
}
/** The load threads' busy shares, and a warning when one nears its limit. */
function clientLimit(r: BenchResult): string {
  const busy = r.cpu.loadThreads ?? [];
  const native = r.engine?.name === 'native';
  const what = native ? 'native engine threads' : 'event loops';
  const shares =
    busy.length > 1
      ? `; ${busy.length} load threads, ${what} busy ${busy.map((b) => `${Math.round(b)}%`).join(' / ')}`
      : native && busy.length === 1
        ? `; native engine thread busy ${Math.round(busy[0]!)}%`
        : '';
  const limit =
    busy.some((b) => b >= CLIENT_BUSY) || (busy.length === 0 && r.cpu.percentOfOneCore >= CLIENT_BUSY)
      ? busy.length > 1 || native
        ? ` (a load thread is at its limit: the client itself may be the bottleneck; add --threads or machines)`
        : ' (the client itself may be the bottleneck)'
      : '';
  return `${shares}${limit}`;
}
