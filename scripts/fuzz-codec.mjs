#!/usr/bin/env node
// Differential fuzzer for the C codec, built with AddressSanitizer and UndefinedBehaviorSanitizer:
// every block path this CPU has must give the scalar path's bytes on random streams cut into
// random chunks, without a single out-of-bounds access (test/native/codec-fuzz.c says how).
//
//   npm run fuzz:codec                              # 40,000 streams, about 20 s
//   node scripts/fuzz-codec.mjs --iterations N --seed S
//
// Needs a C compiler (`CC`, default cc; `CFLAGS` are added) with the sanitizer runtimes (gcc's libasan and libubsan). Exits with the fuzzer's
// status: 0 when every path agreed, 1 at the first difference (with the seed to replay it).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeCaseTables } from './case-tables.mjs';
import { compileCommand } from './compiler.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { iterations: { type: 'string', default: '40000' }, seed: { type: 'string' } } });
const iterations = Number(values.iterations);
const seed = values.seed ?? String(Date.now());
if (!Number.isSafeInteger(iterations) || iterations < 1 || !/^\d+$/.test(seed)) {
  console.error('fuzz-codec: --iterations takes a positive integer, --seed a decimal number');
  process.exit(2);
}

const work = mkdtempSync(join(os.tmpdir(), 'upcase-codec-fuzz-'));
try {
  const exe = join(work, 'codec-fuzz');
  execFileSync(
    ...compileCommand([
      '-O1',
      '-g',
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all',
      '-o',
      exe,
      join(ROOT, 'test', 'native', 'codec-fuzz.c'),
      join(ROOT, 'native', 'codec.c'),
    ]),
    { stdio: 'inherit' },
  );
  writeCaseTables(work);
  console.error(`fuzz-codec: ${iterations} streams, seed ${seed}`);
  // The case tables live as long as the process: not a leak worth reporting.
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1' };
  const run = spawnSync(exe, [work, String(iterations), seed], { stdio: 'inherit', env });
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
