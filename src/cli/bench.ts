import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { reportFormat, writeReport } from '../bench/chart.js';
import {
  BENCH_DEFAULTS,
  normalizeBenchOptions,
  type BenchOptions,
  type BenchProgress,
  type NormalizedBenchOptions,
} from '../bench/options.js';
import { mergeResults, type MergedResult } from '../bench/merge.js';
import { runBench, type BenchResult } from '../bench/run.js';
import { InvalidArgumentError, UpcaseError } from '../errors.js';
import { SERVER_DEFAULTS } from '../options.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, errorMessage, parseHost, parseInteger, parseNumber, parsePort } from './common.js';

interface BenchFlags {
  tcp?: boolean;
  udp?: boolean;
  host: string;
  port?: number;
  tls?: boolean;
  ca?: string;
  servername?: string;
  insecure?: boolean;
  connections?: number;
  duration: number;
  size: number;
  pipeline?: number;
  rate: number;
  warmup: number;
  timeout?: number;
  payload: 'ascii' | 'utf8';
  json?: boolean;
  report?: string;
  interval?: number;
  threads?: number;
}

// ---- Issue 17 (instruments): flags added here, in one block, to be ported onto the options table. ----
/** `--interval SEC`: iperf3-style progress lines. */
function addInstrumentOptions(command: Command): void {
  command.addOption(
    new Option(
      '--threads <n>',
      'load threads: the connections are spread over n worker threads, verified and recorded as one (default: the CPUs)',
    ).argParser(parseInteger('--threads', 1, 256)),
  );
  command.addOption(
    new Option('--interval <sec>', 'print a progress line every SEC seconds, as iperf3 does (to stderr with --json)').argParser(
      parseNumber('--interval', 0.1, 3600, 'a number of seconds from 0.1 to 3600'),
    ),
  );
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
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
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
      process.stderr.write(`upcase bench merge: cannot read ${file}: ${errorMessage(err)}\n`);
      return EXIT_FAILURE;
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
// ---- end of issue 17 flags ----

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** `10`, `10s`, `500ms`, `2m`, `1.5h` → seconds. */
export function parseDuration(name: string) {
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (m === null) throw new CommanderArgError(`Expected \`${name}\` to be a duration like 10s, 500ms or 2m, got \`${value}\``);
    return Number(m[1]) * UNITS[m[2] ?? 's']!;
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

/** `64`, `1k`, `64KiB`, `1M` → bytes (binary multiples). */
export function parseSize(name: string) {
  return (value: string): number => {
    const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(value);
    const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
    if (m === null || unit === undefined)
      throw new CommanderArgError(`Expected \`${name}\` to be a size in bytes like 64, 1k or 1M, got \`${value}\``);
    return Number(m[1]) * unit;
  };
}

/** `5000`, `10k`, `1.5M` → requests per second (decimal multiples). */
function parseRate(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(value);
  if (m === null)
    throw new CommanderArgError(`Expected \`--rate\` to be a number of requests per second like 5000 or 10k, got \`${value}\``);
  const unit = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6;
  return Number(m[1]) * unit;
}

export function benchCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('bench')
    .description('load-test an upcase server over TCP or UDP, verifying every reply')
    .addOption(new Option('--tcp', 'TCP request/response (default)').conflicts('udp'))
    .addOption(new Option('--udp', 'UDP datagrams; each request carries a sequence number').conflicts(['tcp', 'tls']))
    .addOption(
      new Option('--tls', 'TCP over TLS: every connection verifies the server certificate (handshakes happen before the clock starts)'),
    )
    .addOption(new Option('--ca <file>', 'with --tls: trust the CA certificate(s) in this PEM file instead of the system store'))
    .addOption(
      new Option('--servername <name>', 'with --tls: the name the certificate must carry (default: --host)').argParser(
        parseHost('--servername'),
      ),
    )
    .addOption(new Option('--insecure', 'with --tls: do not verify the certificate'))
    .addOption(new Option('--host <host>', 'server address').argParser(parseHost('--host')).default(BENCH_DEFAULTS.host))
    .addOption(
      new Option('-p, --port <port>', 'server port')
        .argParser(parsePort('--port'))
        .default(undefined, `${SERVER_DEFAULTS.port}, or ${SERVER_DEFAULTS.tlsPort} with --tls`),
    )
    .addOption(
      new Option(
        '-c, --connections <n>',
        `TCP connections or UDP sockets (default: ${BENCH_DEFAULTS.tcpConnections} for TCP, ${BENCH_DEFAULTS.udpConnections} for UDP)`,
      ).argParser(parseInteger('--connections', 1, 100_000)),
    )
    .addOption(
      new Option('-d, --duration <time>', 'time to measure, after the warmup: 10s, 500ms, 2m')
        .argParser(parseDuration('--duration'))
        .default(BENCH_DEFAULTS.duration, '10s'),
    )
    .addOption(new Option('-s, --size <bytes>', 'request size: 64, 1k, 1M').argParser(parseSize('--size')).default(BENCH_DEFAULTS.size))
    .addOption(
      new Option(
        '--pipeline <n>',
        `requests in flight per connection or socket (default: ${BENCH_DEFAULTS.tcpPipeline} for TCP, ${BENCH_DEFAULTS.udpPipeline} for UDP); with --rate, the cap per TCP connection`,
      ).argParser(parseInteger('--pipeline', 1, 65_536)),
    )
    .addOption(
      new Option('--rate <r>', 'fixed total rate in requests/s (open loop; latency from each intended send time); 0 = closed loop')
        .argParser(parseRate)
        .default(0),
    )
    .addOption(
      new Option('--warmup <time>', 'load before recording starts')
        .argParser(parseDuration('--warmup'))
        .default(BENCH_DEFAULTS.warmup, '1s'),
    )
    .addOption(
      new Option('--timeout <time>', 'a request with no reply this long is an error (default: 1s UDP, 10s TCP)').argParser(
        parseDuration('--timeout'),
      ),
    )
    .addOption(
      new Option('--payload <kind>', 'request text: ascii, or utf8 (about 30% non-ASCII characters)')
        .choices(['ascii', 'utf8'])
        .default(BENCH_DEFAULTS.payload),
    )
    .addOption(new Option('--json', 'print one JSON object with every figure, and nothing else'))
    .addOption(new Option('--report <file>', 'write a chart of latency percentiles and throughput: .svg, .png or .html'));
  addInstrumentOptions(command);
  // bench's own flags (--json) come before `merge`, so merge's flags of the same name are merge's.
  command.enablePositionalOptions().addCommand(mergeCommand(setExitCode));
  return command.action(async (flags: BenchFlags, command: Command) => {
    const tlsOnly = (['ca', 'servername', 'insecure'] as const).filter((k) => flags[k] !== undefined);
    if (flags.tls !== true && tlsOnly.length > 0) command.error(`error: --${tlsOnly[0]} needs --tls`, { exitCode: EXIT_USAGE });
    if (flags.insecure === true) process.stderr.write('upcase bench: warning: --insecure: the server certificate is not verified\n');
    setExitCode(await bench(flags));
  });
}

/** Busy share (%) of a load thread's event loop above which the human output warns that the client may be the bottleneck. */
const CLIENT_BUSY = 90;

/** The load threads' busy shares, and a warning when one nears its limit. */
function clientLimit(r: BenchResult): string {
  const busy = r.cpu.loadThreads ?? [];
  const shares =
    busy.length > 1 ? `; ${busy.length} load threads, event loops busy ${busy.map((b) => `${Math.round(b)}%`).join(' / ')}` : '';
  const limit =
    busy.some((b) => b >= CLIENT_BUSY) || (busy.length === 0 && r.cpu.percentOfOneCore >= CLIENT_BUSY)
      ? busy.length > 1
        ? ' (a load thread is at its limit: the client itself may be the bottleneck; add --threads or machines)'
        : ' (the client itself may be the bottleneck)'
      : '';
  return `${shares}${limit}`;
}
const TCP_DEFAULT_TIMEOUT = 10; // seconds: a stuck TCP connection, not one slow reply

async function bench(flags: BenchFlags): Promise<number> {
  const transport = flags.udp === true ? 'udp' : 'tcp';
  const options: BenchOptions = {
    transport,
    host: flags.host,
    port: flags.port,
    tls: flags.tls === true ? { ca: flags.ca, servername: flags.servername, insecure: flags.insecure === true } : undefined,
    connections: flags.connections,
    duration: flags.duration,
    size: flags.size,
    pipeline: flags.pipeline,
    rate: flags.rate,
    warmup: flags.warmup,
    payload: flags.payload,
    timeout: flags.timeout ?? (transport === 'tcp' ? TCP_DEFAULT_TIMEOUT : BENCH_DEFAULTS.timeout),
    interval: flags.interval,
    threads: flags.threads,
  };
  let normalized: NormalizedBenchOptions;
  try {
    normalized = normalizeBenchOptions(options);
    if (flags.report !== undefined) reportFormat(flags.report);
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      process.stderr.write(`upcase bench: ${err.message}\n(run with --help for usage)\n`);
      return EXIT_USAGE;
    }
    throw err;
  }

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
    process.stderr.write(`upcase bench: ${errorMessage(err)}\n`);
    return err instanceof UpcaseError && err.code === 'UPCASE_ERR_INVALID_ARG' ? EXIT_USAGE : EXIT_FAILURE;
  } finally {
    process.off('SIGINT', onSignal);
  }
  progress?.clear();

  if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(formatResult(result));
  for (const hint of hints(result, normalized)) process.stderr.write(`upcase bench: ${hint}\n`);

  if (flags.report !== undefined) {
    try {
      await writeReport(result, flags.report);
    } catch (err) {
      process.stderr.write(`upcase bench: cannot write report ${flags.report}: ${errorMessage(err)}\n`);
      return EXIT_FAILURE;
    }
  }
  return result.errors.total > 0 ? EXIT_FAILURE : EXIT_OK;
}

/** Notes for a person reading the result: no UDP server, or lost datagrams that look like the server's rate limit. */
function hints(r: BenchResult, o: NormalizedBenchOptions): string[] {
  const out: string[] = [];
  // `upcase serve` allows 1000 datagrams/s per source address with a burst of 1000:
  // a run that loses datagrams while getting about that many replies has probably hit it.
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

function num(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function us(v: number | null): string {
  return v === null ? '–' : `${num(v, 1)} µs`;
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
