#!/usr/bin/env node
// The benchmark suite: upcase against its peers, side by side, interleaved, over several rounds,
// with medians and ratios. See docs/benchmarks.md.
//
//   npm run bench                 # full run (3 rounds; about 15 minutes on 2 cores)
//   npm run bench -- --quick      # smoke run (1 round, short; under 2 minutes)
//
// Options (flags win over the UPCASE_BENCH_* environment variables):
//   --quick                  short durations, 1 round
//   --rounds N               UPCASE_BENCH_ROUNDS       (full: 3)
//   --duration SEC           UPCASE_BENCH_DURATION     seconds measured per run (full: 5)
//   --warmup SEC             UPCASE_BENCH_WARMUP       (full: 1)
//   --bulk-bytes N           UPCASE_BENCH_BULK_BYTES   bytes streamed per ASCII bulk run (full: 1 GiB)
//   --bulk-utf8-bytes N      UPCASE_BENCH_BULK_UTF8_BYTES   per UTF-8 bulk run (full: 1 GiB)
//   --idle-conns N           UPCASE_BENCH_IDLE_CONNS   connections held open at once (full: 15000)
//   --memory-rounds N        UPCASE_BENCH_MEMORY_ROUNDS   fresh servers per memory figure (full: 3, quick: 2)
//   --only a,b               only these workloads (ids below)
//   --peers a,b              only these peers (upcase, naive, python, socat, c)
//   --out DIR                where latest.md/latest.json and charts go (default bench/results)
//
// Every server listens on 127.0.0.1 only, every run is bounded in time, and every process
// started here is stopped at the end.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCommand, compiler } from '../scripts/compiler.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'upcase.js');

// ------------------------------------------------------------------ configuration

function parseArgs(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') flags.quick = true;
    else if (a === '--help' || a === '-h') flags.help = true;
    else if (a.startsWith('--')) {
      const [k, inline] = a.slice(2).split('=', 2);
      flags[k] = inline ?? argv[++i];
    } else throw new Error(`unexpected argument ${a}`);
  }
  return flags;
}

const flags = parseArgs(process.argv.slice(2));
if (flags.help) {
  process.stdout.write(
    `${readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('//'))
      .slice(0, 21)
      .join('\n')}\n`,
  );
  process.exit(0);
}
const quick = flags.quick === true;
const num = (flag, env, full, short) => {
  const v = flags[flag] ?? process.env[env];
  const n = v === undefined ? (quick ? short : full) : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag}: expected a positive number, got ${v}`);
  return n;
};
const config = {
  quick,
  rounds: Math.round(num('rounds', 'UPCASE_BENCH_ROUNDS', 3, 1)),
  duration: num('duration', 'UPCASE_BENCH_DURATION', 5, 1),
  warmup: num('warmup', 'UPCASE_BENCH_WARMUP', 1, 0.3),
  bulkBytes: Math.round(num('bulk-bytes', 'UPCASE_BENCH_BULK_BYTES', 1024 ** 3, 128 * 1024 ** 2)),
  // As long as the ASCII run: at 256 MiB upcase finished in 0.3 s and single runs scattered by
  // ±20%. The slowest peer (naive Node, about 40 MB/s) then takes about 25 s of its 120.
  bulkUtf8Bytes: Math.round(num('bulk-utf8-bytes', 'UPCASE_BENCH_BULK_UTF8_BYTES', 1024 ** 3, 128 * 1024 ** 2)),
  idleConns: Math.round(num('idle-conns', 'UPCASE_BENCH_IDLE_CONNS', 15_000, 2_000)),
  memoryRounds: Math.round(num('memory-rounds', 'UPCASE_BENCH_MEMORY_ROUNDS', 3, 2)),
  out: flags.out ?? join(ROOT, 'bench', 'results'),
};
const only = flags.only ? new Set(flags.only.split(',')) : null;
const onlyPeers = flags.peers ? new Set(flags.peers.split(',')) : null;

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// ------------------------------------------------------------------ processes

const children = new Set();
function cleanup() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Runs a command to completion, bounded by `timeoutMs`; resolves to its stdout. */
function run(cmd, args, { timeoutMs, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function lastJson(text) {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  if (lines.length === 0) return null;
  try {
    return JSON.parse(lines.at(-1));
  } catch {
    return null;
  }
}

function have(cmd) {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A port free for both TCP and UDP on 127.0.0.1. */
async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const srv = net.createServer();
    await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
    const { port } = srv.address();
    const sock = dgram.createSocket('udp4');
    const ok = await new Promise((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise((resolve) => srv.close(resolve));
    await new Promise((resolve) => {
      try {
        sock.close(resolve);
      } catch {
        resolve();
      }
    });
    if (ok) return port;
  }
  throw new Error('no free port');
}

function tcpReachable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts a long-running server and waits until its TCP port accepts connections. */
async function startPeer(name, cmd, args, port, { tcp = true, readyText } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${output.trim()}`);
    const ready = readyText ? output.includes(readyText) : tcp && (await tcpReachable(port));
    if (ready) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not start: ${output.trim()}`);
}

function rssKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]);
}

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]
      .trim();
  } catch {
    return 'n/a';
  }
}

// ------------------------------------------------------------------ set-up

if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  console.error('bench: dist/ is missing: run `npm run build` first (npm run bench does)');
  process.exit(1);
}
if (!have(compiler().command)) {
  console.error(
    `bench: no C compiler (${compiler().command}): the C ceiling and the C load generator need one (apt-get install gcc, or set CC)`,
  );
  process.exit(1);
}

const work = mkdtempSync(join(os.tmpdir(), 'upcase-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const LOADGEN = join(work, 'loadgen');
const EPOLL = join(work, 'epoll-upcase');
execFileSync(...compileCommand(['-O2', '-o', LOADGEN, join(ROOT, 'bench', 'loadgen', 'loadgen.c')]), { stdio: 'inherit' });
execFileSync(...compileCommand(['-O2', '-o', EPOLL, join(ROOT, 'bench', 'peers', 'epoll-upcase.c')]), { stdio: 'inherit' });

const notes = [];
if (!have('socat')) {
  if (have('apt-get') && process.getuid?.() === 0) {
    log('installing socat with apt-get');
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'socat'], { stdio: 'ignore', timeout: 180_000 });
    } catch {
      log('apt-get install socat failed');
    }
  }
}
const hasSocat = have('socat');
if (!hasSocat) notes.push('socat is not installed (apt-get install socat): its column is skipped.');
const hasPython = have('python3');
if (!hasPython) notes.push('python3 is not installed: the textbook servers are skipped.');

// Bulk payloads: whole characters, so the expected stream is the uppercase pattern repeated.
const { makeBody } = await import(join(ROOT, 'dist', 'bench', 'payload.js'));
const { upcase } = await import(join(ROOT, 'dist', 'codec', 'upcase.js'));
const { judgeIdleMemory, rssSettled, summarizeIdleMemory, idleMemoryTargetMet } = await import(join(ROOT, 'dist', 'bench', 'memory.js'));
const patterns = {};
for (const kind of ['ascii', 'utf8']) {
  const body = makeBody(kind, 64 * 1024, 42);
  patterns[kind] = { pattern: join(work, `${kind}.pattern`), expect: join(work, `${kind}.expect`) };
  writeFileSync(patterns[kind].pattern, body);
  writeFileSync(patterns[kind].expect, upcase(body));
}

// ------------------------------------------------------------------ peers

const PEERS = [
  { id: 'upcase', title: 'upcase serve' },
  { id: 'naive', title: 'naive Node' },
  { id: 'python', title: 'textbook Python' },
  { id: 'socat', title: 'socat + tr' },
  { id: 'c', title: 'C epoll (ceiling)' },
];

/** `upcase serve` as every workload runs it, on `port`. */
const upcaseServeArgs = (port) => [
  BIN,
  'serve',
  '--host',
  '127.0.0.1',
  '--port',
  String(port),
  '--udp-rate-limit',
  '0',
  '--max-connections',
  '20000',
  // Every load comes from 127.0.0.1: no per-source limit.
  '--max-connections-per-source',
  '0',
  '--log-level',
  'warn',
];
const want = (id) => onlyPeers === null || onlyPeers.has(id) || id === 'c' || id === 'upcase';

async function startPeers() {
  const started = {};
  let port = await freePort();
  started.upcase = {
    port,
    proc: await startPeer('upcase serve', process.execPath, upcaseServeArgs(port), port, { readyText: 'ready to receive' }),
  };
  if (want('naive')) {
    port = await freePort();
    started.naive = {
      port,
      proc: await startPeer('naive', process.execPath, [join(ROOT, 'bench', 'peers', 'naive.mjs'), String(port)], port, {
        readyText: 'ready',
      }),
    };
  }
  if (want('python') && hasPython) {
    port = await freePort();
    const tcp = await startPeer(
      'python tcp',
      'python3',
      ['-u', join(ROOT, 'bench', 'peers', 'textbook_tcp_server.py'), String(port)],
      port,
      { readyText: 'ready' },
    );
    const udp = await startPeer(
      'python udp',
      'python3',
      ['-u', join(ROOT, 'bench', 'peers', 'textbook_udp_server.py'), String(port)],
      port,
      { readyText: 'ready' },
    );
    started.python = { port, proc: udp, procs: { tcp, udp } };
  }
  if (want('socat') && hasSocat) {
    port = await freePort();
    started.socat = {
      port,
      proc: await startPeer('socat', 'socat', [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, 'EXEC:tr a-z A-Z'], port),
    };
  }
  port = await freePort();
  started.c = { port, proc: await startPeer('epoll-upcase', EPOLL, [String(port)], port, { readyText: 'ready' }) };
  return started;
}

// ------------------------------------------------------------------ workloads

const D = config.duration;
const W = config.warmup;
const runTimeout = (extra = 0) => (D + W + 30 + extra) * 1000;

/** `upcase bench --json` against a port; the last round of the upcase peer also writes a chart. */
async function upcaseBench(port, args, chart) {
  const extra = chart ? ['--report', chart] : [];
  const r = await run(
    process.execPath,
    [BIN, 'bench', '-p', String(port), '-d', String(D), '--warmup', String(W), '--json', ...args, ...extra],
    {
      timeoutMs: runTimeout(),
    },
  );
  const j = lastJson(r.stdout);
  if (j === null) return { failed: `upcase bench exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 200)}` };
  return {
    value: j.throughput.requestsPerSec,
    p50: j.latency.p50,
    p99: j.latency.p99,
    errors: j.errors.total,
    cpu: j.cpu.percentOfOneCore,
    raw: j,
  };
}

async function loadgen(args, timeoutMs = runTimeout()) {
  const r = await run(LOADGEN, args, { timeoutMs });
  const j = lastJson(r.stdout);
  if (j === null) return { failed: `loadgen exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 200)}` };
  return j;
}

function rr(j) {
  if (j.failed) return j;
  return { value: j.rps, p50: j.p50_us, p99: j.p99_us, errors: j.errors, cpu: j.cpu_pct, raw: j };
}

const NA_RR_PYTHON = 'closes after one recv()';
const NA_RR_SOCAT = 'tr holds replies until 4 KiB or EOF';

const WORKLOADS = [
  {
    id: 'tcp-rr',
    title: 'TCP request/response, 64 conns × 64 B',
    unit: 'req/s',
    higher: true,
    na: { python: NA_RR_PYTHON, socat: NA_RR_SOCAT },
    loadgen: (p) => loadgen(['tcp-rr', '-p', p.port, '-c', 64, '-P', 1, '-s', 64, '-d', D, '-w', W].map(String)).then(rr),
    bench: (p, chart) => upcaseBench(p.port, ['--tcp', '-c', '64', '--pipeline', '1', '-s', '64'], chart),
  },
  {
    id: 'tcp-pipelined',
    title: 'TCP pipelined, 64 conns × 16 in flight × 64 B',
    unit: 'req/s',
    higher: true,
    na: { python: NA_RR_PYTHON, socat: NA_RR_SOCAT },
    loadgen: (p) => loadgen(['tcp-rr', '-p', p.port, '-c', 64, '-P', 16, '-s', 64, '-d', D, '-w', W].map(String)).then(rr),
    bench: (p, chart) => upcaseBench(p.port, ['--tcp', '-c', '64', '--pipeline', '16', '-s', '64'], chart),
  },
  {
    id: 'udp-rr',
    title: 'UDP request/response, 64 in flight × 64 B',
    unit: 'req/s',
    higher: true,
    na: { socat: 'TCP only here' },
    loadgen: (p) => loadgen(['udp-rr', '-p', p.port, '-c', 1, '-P', 64, '-s', 64, '-d', D, '-w', W, '-t', 1].map(String)).then(rr),
    bench: (p, chart) => upcaseBench(p.port, ['--udp', '-c', '1', '--pipeline', '64', '-s', '64'], chart),
  },
  {
    id: 'bulk-ascii',
    title: `TCP bulk, 1 conn, ${fmtBytes(config.bulkBytes)} ASCII`,
    unit: 'MB/s',
    higher: true,
    na: { python: 'one recv(1024), then close' },
    loadgen: (p) => bulk(p, 'ascii'),
  },
  {
    id: 'bulk-utf8',
    title: `TCP bulk, 1 conn, ${fmtBytes(config.bulkUtf8Bytes)} UTF-8 (~30% non-ASCII)`,
    unit: 'MB/s',
    higher: true,
    na: { python: 'one recv(1024), then close' },
    loadgen: (p) => bulk(p, 'utf8'),
  },
  {
    id: 'conn-per-request',
    title: 'one connection per request (64 B, half-close), 16 at a time',
    unit: 'conn/s',
    higher: true,
    na: {},
    loadgen: (p) => loadgen(['conn', '-p', p.port, '-c', 16, '-s', 64, '-d', D, '-w', W].map(String)).then(rr),
  },
  {
    id: 'idle-conns',
    title: `${config.idleConns.toLocaleString('en-US')} concurrent connections, one 64 B request each`,
    unit: 'KB RSS/conn',
    higher: false,
    na: { python: 'one client at a time', socat: 'a process pair per connection' },
    // Measured in a phase of its own, on fresh servers (MEMORY_SERVERS).
    memory: true,
  },
  {
    id: 'ping-pong',
    title: 'ping-pong, 1 TCP conn × 64 B, latency p50',
    unit: 'µs p50',
    higher: false,
    na: { python: NA_RR_PYTHON, socat: NA_RR_SOCAT },
    loadgen: (p) =>
      loadgen(['tcp-rr', '-p', p.port, '-c', 1, '-P', 1, '-s', 64, '-d', D, '-w', W].map(String)).then((j) =>
        j.failed ? j : { value: j.p50_us, p50: j.p50_us, p99: j.p99_us, errors: j.errors, cpu: j.cpu_pct, raw: j },
      ),
    bench: (p, chart) =>
      upcaseBench(p.port, ['--tcp', '-c', '1', '--pipeline', '1', '-s', '64'], chart).then((r) => (r.failed ? r : { ...r, value: r.p50 })),
  },
];

async function bulk(p, kind) {
  const j = await loadgen(
    [
      'bulk',
      '-p',
      String(p.port),
      '-B',
      String(kind === 'utf8' ? config.bulkUtf8Bytes : config.bulkBytes),
      '--pattern',
      patterns[kind].pattern,
      '--expect',
      patterns[kind].expect,
      '-d',
      '120',
    ],
    150_000,
  );
  if (j.failed) return j;
  return { value: j.mbps, errors: j.correct ? 0 : 1, wrong: !j.correct, raw: j };
}

// ------------------------------------------------------------------ memory per idle connection
//
// Each figure comes from a fresh server process (a server's RSS never shrinks back after a load,
// so a second measurement in the same process would reuse the first one's freed memory and read
// too little). Per server and round: a warm-up batch is opened and closed (code compiled, lazily
// made structures made); a full, memory-reducing GC (Node.js servers: bench/peers/gc-hook.cjs on SIGUSR2); RSS is
// sampled until it settles (the baseline); N connections are opened, one round trip each, and
// held; GC and settle again; (after − before) ÷ N. judgeIdleMemory (src/bench/memory.ts) refuses
// a figure from lost connections, an RSS that did not settle, or one below what a connection
// must cost (floorKb). RSS is user space only: the kernel's socket memory (struct tcp_sock, the
// socket inode, the file, the epoll item: about 3.5 KiB per socket in /proc/slabinfo, and buffers
// while bytes are queued) is not in it, and is the same whichever server holds the socket.

const GC_HOOK = join(ROOT, 'bench', 'peers', 'gc-hook.cjs');
const MEMORY_SERVERS = [
  // floorKb: a libuv poll handle (160 B) and conn_t (native/tcp_serve.c) with malloc's overhead.
  {
    id: 'upcase',
    title: 'upcase serve, native transport',
    floorKb: 0.25,
    node: (port) => [...upcaseServeArgs(port), '--tcp-transport', 'native'],
    readyText: 'ready to receive',
  },
  // floorKb: a net.Socket with its TCPWrap and stream state is well over half a KiB.
  {
    id: 'upcase-stream',
    title: 'upcase serve, stream transport',
    floorKb: 0.5,
    node: (port) => [...upcaseServeArgs(port), '--tcp-transport', 'stream'],
    readyText: 'ready to receive',
  },
  {
    id: 'naive',
    title: 'naive Node',
    floorKb: 0.5,
    node: (port) => [join(ROOT, 'bench', 'peers', 'naive.mjs'), String(port)],
    readyText: 'ready',
  },
  // floorKb 0: it keeps nothing per idle connection in user space (its struct conn array is
  // touched only when a reply is owed; the epoll item is the kernel's).
  { id: 'c', title: 'C epoll (ceiling)', floorKb: 0, cmd: (port) => [EPOLL, String(port)], readyText: 'ready' },
].filter((m) => want(m.id) || m.id === 'upcase-stream');

/** Opens `n` connections with `loadgen idle`, one round trip each, and holds them until release(). */
async function holdConnections(port, n) {
  const child = spawn(LOADGEN, ['idle', '-p', String(port), '-n', String(n), '-s', '64', '-d', '60', '-H', '120'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const deadline = Date.now() + 70_000;
  while (!out.includes('"ready"') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  const ready = lastJson(out.split('\n')[0] ?? '');
  return {
    ready,
    release: async () => {
      const closed = once(child, 'close');
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await closed;
      clearTimeout(timer);
      children.delete(child);
      return lastJson(out);
    },
  };
}

/** A full GC in a server started with the hook (memoryUsage() after it), then RSS sampled until it settles. */
async function settledRss(server) {
  let usage = null;
  if (server.gcLines !== null) {
    const seen = server.gcLines.length;
    server.proc.kill('SIGUSR2');
    const deadline = Date.now() + 5_000;
    while (server.gcLines.length === seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    usage = server.gcLines[seen] ?? null;
    if (usage === null) return { kb: rssKb(server.proc.pid), settled: false, usage };
  }
  const samples = [];
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    samples.push(rssKb(server.proc.pid));
    // Five samples 100 ms apart within 64 KiB (16 pages): nothing is still being freed or touched.
    if (rssSettled(samples, 5, 64)) return { kb: samples.at(-1), settled: true, usage };
    await new Promise((r) => setTimeout(r, 100));
  }
  return { kb: samples.at(-1), settled: false, usage };
}

/** One memory figure: a fresh `m` server, a baseline, `config.idleConns` connections held. */
async function idle(m) {
  const port = await freePort();
  const [cmd, ...args] = m.node ? [process.execPath, '--require', GC_HOOK, ...m.node(port)] : m.cmd(port);
  const proc = await startPeer(m.title, cmd, args, port, { readyText: m.readyText });
  const server = { proc, gcLines: m.node ? [] : null };
  if (server.gcLines !== null) {
    let buffered = '';
    proc.stderr.on('data', (d) => {
      buffered += d;
      for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        if (line.startsWith('bench-gc ')) server.gcLines.push(JSON.parse(line.slice('bench-gc '.length)));
      }
    });
  }
  try {
    const warm = await holdConnections(port, Math.min(200, Math.ceil(config.idleConns / 10)));
    await warm.release();
    const before = await settledRss(server);
    const held = await holdConnections(port, config.idleConns);
    const after = await settledRss(server);
    const final = await held.release();
    if (held.ready === null || final === null) return { failed: 'loadgen idle did not report' };
    const open = Math.min(held.ready.open, final.open);
    const verdict = judgeIdleMemory({
      requested: config.idleConns,
      open,
      rssBeforeKb: before.kb,
      rssAfterKb: after.kb,
      settled: before.settled && after.settled,
      floorKb: m.floorKb,
      heap:
        before.usage === null || after.usage === null
          ? undefined
          : {
              growthKb: (after.usage.heapUsed - before.usage.heapUsed) / 1024,
              freeBeforeKb: (before.usage.heapTotal - before.usage.heapUsed) / 1024,
            },
    });
    const perConn = (a, b) => (a === undefined || b === undefined ? undefined : Math.round(((b - a) / open) * 10) / 10);
    const raw = {
      ...final,
      rssBeforeKb: before.kb,
      rssAfterKb: after.kb,
      kbPerConnection: Math.round(verdict.kbPerConnection * 1000) / 1000,
      openSeconds: held.ready.seconds,
      // Bytes per connection in the JS heap and off it (Buffers, addons), after GC: where RSS goes.
      heapBytesPerConnection: perConn(before.usage?.heapUsed, after.usage?.heapUsed),
      externalBytesPerConnection: perConn(before.usage?.external, after.usage?.external),
    };
    const value = Math.round(verdict.kbPerConnection * 100) / 100;
    if (!verdict.ok) return { failed: verdict.reason, value, open, errors: config.idleConns - open, raw };
    return { value, errors: config.idleConns - open, open, raw };
  } finally {
    proc.kill('SIGKILL');
    children.delete(proc);
  }
}

function fmtBytes(n) {
  if (n >= 1024 ** 3 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3} GiB`;
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MiB`;
  return `${n} B`;
}

// ------------------------------------------------------------------ the run

const started = Date.now();
const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
  kernel: `${os.type()} ${os.release()}`,
  node: process.version,
  python: hasPython ? version('python3', ['--version']) : 'n/a',
  cc: version(compiler().command, [...compiler().args, '--version']),
  socat: hasSocat ? version('sh', ['-c', 'socat -V 2>/dev/null | grep "socat version"']) : 'n/a',
  loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  commit: version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
  date: new Date().toISOString(),
};
log(`machine: ${machine.cpus} cores, ${machine.node}, ${machine.kernel}, load ${machine.loadAverageAtStart.join(' ')}`);
log(`config: ${JSON.stringify(config)}`);

const peers = await startPeers();
const activePeers = PEERS.filter((p) => peers[p.id] !== undefined);
const workloads = WORKLOADS.filter((w) => only === null || only.has(w.id));
mkdirSync(config.out, { recursive: true });

/** results[workload][peer][tool] = array of per-round results */
const results = {};
for (let round = 0; round < config.rounds; round++) {
  for (const w of workloads) {
    if (w.memory) continue;
    // Rotate the order every round, so no peer always runs first (or right after the ceiling).
    const order = activePeers.map((_, i) => activePeers[(i + round) % activePeers.length]);
    for (const peer of order) {
      if (w.na[peer.id] !== undefined) continue;
      const p = peers[peer.id];
      const tools = w.bench ? ['loadgen', 'upcase-bench'] : ['loadgen'];
      if (round % 2 === 1) tools.reverse();
      for (const tool of tools) {
        const lastRound = round === config.rounds - 1;
        const chart = tool === 'upcase-bench' && peer.id === 'upcase' && lastRound ? join(config.out, `upcase-${w.id}.svg`) : undefined;
        const t = Date.now();
        let r;
        try {
          r = tool === 'loadgen' ? await w.loadgen(p) : await w.bench(p, chart);
        } catch (err) {
          r = { failed: String(err?.message ?? err) };
        }
        ((results[w.id] ??= {})[peer.id] ??= {})[tool] ??= [];
        results[w.id][peer.id][tool].push(r);
        const shown = r.failed ? `FAILED ${r.failed}` : `${fmt(r.value)} ${w.unit}${r.errors ? ` (${r.errors} errors)` : ''}`;
        log(`round ${round + 1}/${config.rounds} ${w.id} ${peer.id} ${tool}: ${shown} [${((Date.now() - t) / 1000).toFixed(1)}s]`);
      }
    }
  }
}

for (const p of Object.values(peers)) {
  for (const proc of p.procs ? Object.values(p.procs) : [p.proc]) proc.kill('SIGTERM');
}

// Memory per idle connection, once the other servers are gone: fresh servers, rotated each round.
if (workloads.some((w) => w.memory)) {
  for (let round = 0; round < config.memoryRounds; round++) {
    const order = MEMORY_SERVERS.map((_, i) => MEMORY_SERVERS[(i + round) % MEMORY_SERVERS.length]);
    for (const m of order) {
      const t = Date.now();
      let r;
      try {
        r = await idle(m);
      } catch (err) {
        r = { failed: String(err?.message ?? err) };
      }
      (((results['idle-conns'] ??= {})[m.id] ??= {}).loadgen ??= []).push(r);
      const shown = r.failed ? `FAILED ${r.failed}` : `${fmt(r.value)} KB RSS/conn`;
      const heap = r.raw?.heapBytesPerConnection === undefined ? '' : `, heap ${r.raw.heapBytesPerConnection} B/conn`;
      log(`memory round ${round + 1}/${config.memoryRounds} ${m.id}: ${shown}${heap} [${((Date.now() - t) / 1000).toFixed(1)}s]`);
    }
  }
}

// ------------------------------------------------------------------ medians and ratios

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function fmt(n) {
  if (!Number.isFinite(n)) return 'n/a';
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return (Math.round(n * 100) / 100).toString();
}

const summary = {};
for (const w of workloads) {
  summary[w.id] = {};
  for (const peer of activePeers) {
    if (w.na[peer.id] !== undefined) {
      summary[w.id][peer.id] = { na: w.na[peer.id] };
      continue;
    }
    const cell = {};
    for (const tool of ['loadgen', 'upcase-bench']) {
      const runs = results[w.id]?.[peer.id]?.[tool];
      if (!runs) continue;
      const ok = runs.filter((r) => !r.failed);
      cell[tool] = {
        median: median(ok.map((r) => r.value)),
        runs: runs.map((r) => (r.failed ? null : r.value)),
        errors: ok.reduce((s, r) => s + (r.errors || 0), 0),
        failed: runs.filter((r) => r.failed).map((r) => r.failed),
        wrong: ok.some((r) => r.wrong),
        p50: median(ok.map((r) => r.p50)),
        p99: median(ok.map((r) => r.p99)),
        cpu: median(ok.map((r) => r.cpu)),
      };
    }
    summary[w.id][peer.id] = cell;
  }
}

const figure = (w, peer) => summary[w.id]?.[peer]?.loadgen?.median ?? NaN;

function cellText(w, peerId) {
  const s = summary[w.id][peerId];
  if (s === undefined) return 'skipped';
  if (s.na) return `n/a (${s.na})`;
  const c = s.loadgen;
  if (c === undefined || !Number.isFinite(c.median)) return c?.failed?.length ? `failed` : 'n/a';
  let t = fmt(c.median);
  if (c.wrong) t += ' ✗ wrong output';
  else if (c.errors > 0) t += ` ⚠ ${c.errors} errors`;
  return t;
}

function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}×`;
}

const md = [];
md.push(`# upcase benchmark results`);
md.push('');
md.push(
  `${machine.date} · commit ${machine.commit} · ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB · ${machine.kernel} · Node ${machine.node} · ${machine.python} · load average at start ${machine.loadAverageAtStart.join(' ')}`,
);
md.push('');
md.push(
  `${config.rounds} round(s), interleaved; each figure is the median over rounds, measured by the C load generator (bench/loadgen/loadgen.c). ` +
    `Runs: ${config.duration}s measured after ${config.warmup}s warmup; bulk ${fmtBytes(config.bulkBytes)} ASCII, ${fmtBytes(config.bulkUtf8Bytes)} UTF-8; ${config.idleConns} idle connections.${quick ? ' **Quick smoke run: not for quoting.**' : ''}`,
);
md.push('');
md.push(`## Figures`);
md.push('');
md.push(`| workload | unit | ${activePeers.map((p) => p.title).join(' | ')} |`);
md.push(`|---|---|${activePeers.map(() => '---:').join('|')}|`);
for (const w of workloads)
  md.push(`| ${w.title} | ${w.unit}${w.higher ? '' : ' (lower is better)'} | ${activePeers.map((p) => cellText(w, p.id)).join(' | ')} |`);
md.push('');
md.push(`## Ratios`);
md.push('');
md.push(
  'Each ratio is value ÷ value of the same workload in the same run. For req/s, MB/s and conn/s higher is better; for RSS/conn and latency lower is better.',
);
md.push('');
const others = activePeers.filter((p) => p.id !== 'upcase' && p.id !== 'c');
md.push(
  `| workload | upcase ÷ C ceiling | ${others.map((p) => `upcase ÷ ${p.title}`).join(' | ')} | ${others.map((p) => `${p.title} ÷ C ceiling`).join(' | ')} |`,
);
md.push(`|---|---:|${others.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`);
for (const w of workloads) {
  const u = figure(w, 'upcase');
  md.push(
    `| ${w.title} | ${ratio(u, figure(w, 'c'))} | ${others.map((p) => ratio(u, figure(w, p.id))).join(' | ')} | ${others.map((p) => ratio(figure(w, p.id), figure(w, 'c'))).join(' | ')} |`,
  );
}
md.push('');

// Issue 8's targets, checked on this run.
const targets = [];
const t = (name, value, pass) => targets.push({ name, value, pass });
const W_ = Object.fromEntries(WORKLOADS.map((w) => [w.id, w]));
const has = (id) => workloads.some((w) => w.id === id);
if (has('tcp-rr')) {
  const r1 = figure(W_['tcp-rr'], 'upcase') / figure(W_['tcp-rr'], 'c');
  const r2 = figure(W_['tcp-rr'], 'upcase') / figure(W_['tcp-rr'], 'naive');
  t('TCP request/response ≥ 0.8× C ceiling', `${fmt(r1)}×`, r1 >= 0.8);
  t('TCP request/response ≥ 1.3× naive Node', `${fmt(r2)}×`, r2 >= 1.3);
}
if (has('tcp-pipelined')) {
  const r = figure(W_['tcp-pipelined'], 'upcase') / figure(W_['tcp-pipelined'], 'c');
  t('TCP pipelined ≥ 0.7× C ceiling', `${fmt(r)}×`, r >= 0.7);
}
if (has('udp-rr')) {
  const r = figure(W_['udp-rr'], 'upcase') / figure(W_['udp-rr'], 'python');
  t('UDP request/response ≥ 1.0× textbook Python', `${fmt(r)}×`, r >= 1.0);
}
if (has('bulk-ascii')) {
  const r = figure(W_['bulk-ascii'], 'upcase') / figure(W_['bulk-ascii'], 'c');
  t('TCP bulk ASCII ≥ 0.95× C ceiling', `${fmt(r)}×`, r >= 0.95);
}
if (has('bulk-utf8') && has('bulk-ascii')) {
  const r = figure(W_['bulk-utf8'], 'upcase') / figure(W_['bulk-ascii'], 'upcase');
  const wrong = summary['bulk-utf8'].upcase?.loadgen?.wrong;
  t('TCP bulk UTF-8 ≥ 0.5× upcase ASCII (and correct)', `${fmt(r)}×${wrong ? ' (wrong output)' : ''}`, r >= 0.5 && !wrong);
}
const memory = {};
if (has('idle-conns')) {
  for (const m of MEMORY_SERVERS) {
    const runs = results['idle-conns']?.[m.id]?.loadgen ?? [];
    memory[m.id] = summarizeIdleMemory(
      runs.map((r) =>
        r.failed ? { ok: false, reason: r.failed, kbPerConnection: r.value ?? NaN } : { ok: true, kbPerConnection: r.value },
      ),
    );
  }
  const shown = (id) => {
    const s = memory[id];
    return s.failures.length > 0 ? `FAILED (${s.failures.join('; ')})` : `${fmt(s.median)} KB`;
  };
  t(
    `${config.idleConns.toLocaleString('en-US')} connections open at once, all served, ≤ 3 KB RSS each (native transport)`,
    shown('upcase'),
    idleMemoryTargetMet([memory.upcase], (kb) => kb <= 3),
  );
  if (memory.naive !== undefined) {
    t(
      'stream transport ≤ naive Node in RSS per idle connection',
      `${shown('upcase-stream')} vs ${shown('naive')}`,
      idleMemoryTargetMet([memory['upcase-stream'], memory.naive], (stream, naive) => stream <= naive),
    );
  }
}
if (has('ping-pong')) {
  const r = figure(W_['ping-pong'], 'upcase') / figure(W_['ping-pong'], 'c');
  t('ping-pong p50 ≤ 1.5× C ceiling', `${fmt(r)}×`, r <= 1.5);
}
if (Object.keys(memory).length > 0) {
  md.push('## Memory per idle connection');
  md.push('');
  md.push(
    `Fresh server per round (${config.memoryRounds} rounds); RSS after a full GC (Node.js servers) once settled, before and after ${config.idleConns} connections each made one round trip; (after − before) ÷ open. ` +
      "RSS is user space only: the kernel's own socket memory (about 3.5 KiB per socket, the same for every server) is not in it. A round with lost connections, an RSS that did not settle or a figure below the floor is a failed measurement; the heap columns are process.memoryUsage() deltas after the same GC.",
  );
  md.push('');
  md.push('| server | KB RSS/conn (median) | rounds (min–max) | JS heap B/conn | off-heap B/conn | floor KB | failed rounds |');
  md.push('|---|---:|---:|---:|---:|---:|---|');
  for (const m of MEMORY_SERVERS) {
    const s = memory[m.id];
    const runs = (results['idle-conns']?.[m.id]?.loadgen ?? []).filter((r) => !r.failed);
    const rawMedian = (key) => fmt(median(runs.map((r) => r.raw?.[key])));
    md.push(
      `| ${m.title} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${rawMedian('heapBytesPerConnection')} | ${rawMedian('externalBytesPerConnection')} | ${m.floorKb} | ${s.failures.length === 0 ? 'none' : s.failures.join('; ')} |`,
    );
  }
  md.push('');
}
if (targets.length > 0) {
  md.push('## Targets (issue 8)');
  md.push('');
  md.push('| target | measured | met |');
  md.push('|---|---:|:---:|');
  for (const x of targets) md.push(`| ${x.name} | ${x.value} | ${x.pass ? 'yes' : 'no'} |`);
  md.push('');
}

// Cross-check: upcase bench against the C load generator, same workload, same server.
const cross = [];
for (const w of workloads.filter((x) => x.bench)) {
  for (const peer of activePeers) {
    const s = summary[w.id][peer.id];
    if (!s || s.na || !s.loadgen || !s['upcase-bench']) continue;
    cross.push({ w, peer, a: s.loadgen, b: s['upcase-bench'] });
  }
}
if (cross.length > 0) {
  md.push('## Cross-check: `upcase bench` vs the C load generator');
  md.push('');
  md.push(
    "Same workload, same server, same rounds. The load generator's own CPU use (% of one core) shows whether it may have been the bottleneck.",
  );
  md.push('');
  md.push(
    '| workload | server | C loadgen | upcase bench | ratio | p50 µs (C / upcase bench) | p99 µs (C / upcase bench) | client CPU % (C / upcase bench) | errors (C / upcase bench) |',
  );
  md.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const { w, peer, a, b } of cross) {
    md.push(
      `| ${w.title} | ${peer.title} | ${fmt(a.median)} | ${fmt(b.median)} | ${ratio(b.median, a.median)} | ${fmt(a.p50)} / ${fmt(b.p50)} | ${fmt(a.p99)} / ${fmt(b.p99)} | ${fmt(a.cpu)} / ${fmt(b.cpu)} | ${a.errors} / ${b.errors} |`,
    );
  }
  md.push('');
}
if (notes.length > 0) {
  md.push('## Notes');
  md.push('');
  for (const n of notes) md.push(`- ${n}`);
  md.push('');
}
const failures = [];
for (const w of workloads)
  for (const p of activePeers)
    for (const tool of ['loadgen', 'upcase-bench'])
      for (const f of summary[w.id][p.id]?.[tool]?.failed ?? []) failures.push(`${w.id} ${p.id} ${tool}: ${f}`);
if (failures.length > 0) {
  md.push('## Failed runs');
  md.push('');
  for (const f of failures) md.push(`- ${f}`);
  md.push('');
}
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
md.push(
  `Suite wall time: ${minutes} min. Rerun: \`npm run bench\` (\`-- --quick\` for a smoke run). Charts of the last round's upcase runs: ${relative(ROOT, config.out)}/upcase-*.svg.`,
);
md.push('');

const markdown = md.join('\n');
writeFileSync(join(config.out, 'latest.md'), markdown);
writeFileSync(join(config.out, 'latest.json'), `${JSON.stringify({ machine, config, summary, results, targets, notes }, null, 2)}\n`);
process.stdout.write(markdown);
log(`wrote ${relative(ROOT, join(config.out, 'latest.md'))} and latest.json in ${minutes} min`);
