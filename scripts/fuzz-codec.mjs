#!/usr/bin/env node
// Fuzzer for the C codec, built with AddressSanitizer and UndefinedBehaviorSanitizer: every
// block path this CPU has (or the one UPCASE_CODEC_PATH names) must give the TypeScript codec's
// output on a recorded set of streams (test/fixtures/codec-digest.json holds its SHA-256) and
// the scalar path's bytes on random streams, cut into random chunks, without a single
// out-of-bounds access (test/native/codec-fuzz.c says how).
//
//   npm run fuzz:codec                              # 40,000 streams, about 20 s
//   node scripts/fuzz-codec.mjs --iterations N --seed S
//   node scripts/fuzz-codec.mjs --record            # rewrites the fixture from the TypeScript codec
//
// The fixture is checked against the TypeScript codec first, on every run.
//
// Compiles with `CC` (default `cc`; `CFLAGS` and `LDFLAGS` are added), which needs the sanitizer runtimes (gcc's libasan and
// libubsan). Exits with the fuzzer's status: 0 when every path agreed, 1 at the first
// difference (with the seed to replay it), 2 on a usage or build error.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { writeCaseTables } from './case-tables.mjs';
import { compiler } from './compiler.mjs';
import { buildFuzzer, DIGEST_FIXTURE, fuzzerArgs, readDigestFixture, typescriptDigest, writeDigestFixture } from './codec-fuzzer.mjs';

const values = fuzzerArgs(
  'fuzz-codec',
  `usage: node scripts/fuzz-codec.mjs [--iterations N] [--seed S] [--record]
  --iterations N  random streams after the recorded ones (default 40000)
  --seed S        the random streams' seed, a decimal number (default: the time)
  --record        rewrite test/fixtures/codec-digest.json from the TypeScript codec
CC (default cc), CFLAGS and LDFLAGS build the fuzzer. Exit status: 0 every path agreed,
1 a difference (with the seed to replay it), 2 a usage or build error.
`,
  { iterations: '40000', seed: String(Date.now()) },
  { record: { type: 'boolean', default: false } },
);
const iterations = Number(values.iterations);
const seed = values.seed;

const work = mkdtempSync(join(os.tmpdir(), 'upcase-codec-fuzz-'));
try {
  const exe = join(work, 'codec-fuzz');
  try {
    buildFuzzer(compiler(), exe);
  } catch (err) {
    console.error(`fuzz-codec: could not build the fuzzer (${err.message.split('\n')[0]})`);
    process.exit(2);
  }
  // The reference, checked against the TypeScript codec here and now: the fixture records it
  // for where no Node.js runs beside the codec (scripts/test-arm64.mjs), and flags a change.
  const recorded = readDigestFixture();
  const emitted = execFileSync(exe, ['--emit', String(recorded.streams), recorded.seed], { maxBuffer: 1 << 30 });
  if (values.record) {
    console.error(`fuzz-codec: recorded ${JSON.stringify(writeDigestFixture(recorded.streams, recorded.seed, emitted))}`);
  } else if (typescriptDigest(emitted) !== recorded.sha256) {
    console.error(
      `fuzz-codec: ${DIGEST_FIXTURE} does not hold the TypeScript codec's digest (${typescriptDigest(emitted)}); if the codec changed on purpose, run with --record`,
    );
    process.exit(1);
  }
  writeCaseTables(work);
  const digest = readDigestFixture();
  console.error(`fuzz-codec: ${digest.streams} recorded streams, then ${iterations} random ones, seed ${seed}`);
  // The case tables live as long as the process: not a leak worth reporting.
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1' };
  const args = [work, String(iterations), seed, String(digest.streams), digest.seed, digest.sha256];
  const run = spawnSync(exe, args, { stdio: 'inherit', env });
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
