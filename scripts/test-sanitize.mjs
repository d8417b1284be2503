#!/usr/bin/env node
// The native addons under AddressSanitizer and UndefinedBehaviorSanitizer: builds every addon
// (UDP, TCP, the codec, the bench engine) with them into build/sanitize, then runs the TCP, UDP, PROXY, contract
// and adversarial test batteries with the tests (and every `upcase serve` they start) loading
// those addons (UPCASE_NATIVE_DIR) and the ASan runtime preloaded into node. Zero reports are
// allowed: every report is written to a log file of its own (ASan's log_path, and UBSan's through
// test/native/ubsan-log.c), so
// one from a child process whose stderr a test swallowed, or whose exit status nobody sees,
// still fails the run.
//
//   npm run test:sanitize                # every battery (about 10 minutes on 2 cores)
//   npm run test:sanitize -- --quick     # a bounded part, for CI (under 3 minutes)
//   node scripts/test-sanitize.mjs [--quick] [substring ...]   # only matching test files
//
// Needs gcc (or CC) with its sanitizer runtimes (libasan, libubsan); CFLAGS are added.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiler } from './compiler.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'build', 'sanitize');
const LOGS = join(OUT, 'reports');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const filters = args.filter((a) => a !== '--quick');
const say = (message) => process.stderr.write(`test:sanitize: ${message}\n`);

// Test files by path substring (scripts/test.mjs): the TCP, UDP, PROXY, contract and adversarial
// batteries, the codec addon's tests, and the bench engines' contract. The contract suite is matched by name, wherever it lives.
const FULL = [
  'test/tcp/',
  'test/udp/',
  'test/proxy/',
  'contract',
  'test/adversarial/',
  'test/codec/native',
  'test/cli/serve-proxy',
  'test/bench/engines',
];
const QUICK = [
  'test/tcp/native',
  'test/tcp/contract',
  'test/udp/transports',
  'test/codec/native',
  'test/adversarial/resets',
  'test/adversarial/non-reading',
  'test/bench/engines',
];
const FLAGS = '-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1';
// A report is one of these, whoever prints it.
const REPORT = /ERROR: AddressSanitizer|runtime error:|SUMMARY: (?:Address|UndefinedBehavior)Sanitizer/;

if (process.platform !== 'linux') {
  say(`the native transports are Linux-only (this is ${process.platform}); nothing to check`);
  process.exit(0);
}

/** The runtime's path as the compiler knows it (gcc -print-file-name). */
function runtime(name) {
  const cc = compiler();
  const run = spawnSync(cc.command, [...cc.args, `-print-file-name=${name}`], { encoding: 'utf8' });
  const path = run.stdout?.trim();
  if (run.status !== 0 || !path || !path.startsWith('/') || !existsSync(path)) {
    say(`${cc.label} has no ${name} (apt-get install gcc: its sanitizer runtimes come with it)`);
    process.exit(1);
  }
  return path;
}

const asan = runtime('libasan.so');
rmSync(OUT, { recursive: true, force: true });
mkdirSync(LOGS, { recursive: true });
const env = {
  ...process.env,
  CFLAGS: `${process.env.CFLAGS ?? ''} ${FLAGS}`.trim(),
  // ASan must come first in the process; node itself is not instrumented.
  LD_PRELOAD: [asan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  // Node leaks by design at exit; what matters is memory errors and undefined behaviour.
  ASAN_OPTIONS: `detect_leaks=0:abort_on_error=0:halt_on_error=1:log_path=${join(LOGS, 'asan')}`,
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  // UBSan's log file, set by test/native/ubsan-log.c (gcc's libubsan ignores log_path beside ASan).
  UPCASE_UBSAN_LOG: join(LOGS, 'ubsan'),
  UPCASE_NATIVE_DIR: OUT,
};

// The build loads each addon in a fresh node under these settings: a runtime that does not fit shows there.
const build = spawnSync(
  process.execPath,
  [join(ROOT, 'scripts', 'build-native.mjs'), '--out', OUT, '--with', join(ROOT, 'test', 'native', 'ubsan-log.c')],
  { env, stdio: 'inherit', timeout: 600_000 },
);
const record = JSON.parse(readFileSync(join(OUT, 'native-build.json'), 'utf8')).addons;
const missing = Object.entries(record).filter(([, r]) => !r.built || r.loads === false);
if (build.status !== 0 || missing.length > 0) {
  say(`not every addon was built with the sanitizers and loads: ${missing.map(([name, r]) => `${name}: ${r.reason}`).join('; ')}`);
  process.exit(1);
}

const patterns = filters.length > 0 ? filters : quick ? QUICK : FULL;
say(`${quick ? 'quick run' : 'full run'}: ${patterns.join(' ')} against the addons in ${OUT}`);
const child = spawn(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), ...patterns], {
  cwd: ROOT,
  env: { ...env, UPCASE_TEST_CONCURRENCY: process.env.UPCASE_TEST_CONCURRENCY ?? '2' },
  stdio: ['ignore', 'inherit', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => {
  process.stderr.write(d);
  stderr += d.toString();
});
const [code, signal] = await new Promise((resolve) => child.once('close', (c, s) => resolve([c, s])));

// Every report, from this run's processes and their children alike.
const reports = readdirSync(LOGS)
  .map((f) => ({ file: join(LOGS, f), text: readFileSync(join(LOGS, f), 'utf8') }))
  .filter((r) => REPORT.test(r.text));
const onStderr = REPORT.test(stderr);
for (const r of reports) process.stderr.write(`\n---- ${r.file}\n${r.text}`);
if (reports.length > 0 || onStderr) {
  say(`FAILED: ${reports.length} sanitizer report(s)${onStderr ? ', and a report on stderr' : ''} (zero are allowed)`);
  process.exit(1);
}
if (code !== 0) {
  say(`FAILED: the tests exited with ${signal ?? code}`);
  process.exit(1);
}
say('passed: no sanitizer report');
