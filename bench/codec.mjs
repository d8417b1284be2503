#!/usr/bin/env node
// The codecs alone, without sockets: MB/s of input for the TypeScript codec and for each
// block path of the C codec this CPU has, on several kinds of text. See docs/benchmarks.md.
//
//   npm run bench:codec            # builds first; about a minute
//   node bench/codec.mjs --json    # one JSON object instead of the table
//   UPCASE_CODEC_PATH=avx2 npm run bench:codec    # that path only
//
// Compiles the C side with `CC` (default `cc`).
//
// Every payload is 2 MiB, pushed as one stream in 64 KiB chunks (the native TCP transport's
// read size), so a branch predictor cannot learn it; each figure is the best of 15 passes, timed
// in CPU time (the C side in its thread's, the TypeScript side in the process's), so that other
// load on a shared machine does not count.
// Each path's output is checked against the TypeScript codec's first.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBody, prng } from '../dist/bench/payload.js';
import { upcase, Upcaser } from '../dist/codec/upcase.js';
import { nativeCodecPaths } from '../dist/tcp/native.js';
import { writeCaseTables } from '../scripts/case-tables.mjs';
import { compilerFrom } from '../scripts/codec-fuzzer.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SIZE = 2 << 20;
const CHUNK = 64 * 1024;
const json = process.argv.includes('--json');

/** Words of 2–9 letters drawn from `letters`, separated by spaces: `size` bytes of whole characters. */
function words(letters, size, seed) {
  const rand = prng(seed);
  const chars = [...letters];
  const parts = [];
  let bytes = 0;
  while (bytes < size) {
    let word = '';
    for (let k = 2 + Math.floor(rand() * 8); k > 0; k--) word += chars[Math.floor(rand() * chars.length)];
    const piece = Buffer.from(`${word} `);
    if (bytes + piece.length > size) break;
    parts.push(piece);
    bytes += piece.length;
  }
  parts.push(Buffer.alloc(size - bytes, 0x20));
  return Buffer.concat(parts);
}

const LATIN = 'abcdefghijklmnopqrstuvwxyz';
const PAYLOADS = [
  ['mix', 'the bulk-utf8 workload: ~30% non-ASCII, 20 kinds of character, 4 change length', () => makeBody('utf8', SIZE, 7)],
  ['ascii', 'the bulk-ascii workload', () => makeBody('ascii', SIZE, 7)],
  ['german', 'Latin words, ~4% ä ö ü ß (ß → SS changes length)', () => words(`${LATIN.repeat(6)}äöüß`, SIZE, 11)],
  ['russian', 'Cyrillic words (2-byte letters)', () => words('абвгдеёжзийклмнопрстуфхцчшщъыьэюя', SIZE, 12)],
  ['greek', 'Greek words with accents (2-byte letters)', () => words('αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ', SIZE, 13)],
  [
    'chinese',
    'CJK ideographs (3 bytes, no case) between spaces',
    () => words('的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年', SIZE, 14),
  ],
];

// Every path this CPU has, or only the one UPCASE_CODEC_PATH names (an error if it has not that one).
let paths;
try {
  paths = process.env.UPCASE_CODEC_PATH ? nativeCodecPaths().slice(0, 1) : nativeCodecPaths().slice(1);
} catch (err) {
  console.error(`bench:codec: ${err.message}`);
  process.exit(2);
}
if (paths.length === 0)
  console.error('bench:codec: the native addon is not built (npm run build:native): only the TypeScript codec is measured');

const work = mkdtempSync(join(os.tmpdir(), 'upcase-codec-'));
const rows = [];
try {
  const exe = join(work, 'codec-bench');
  if (paths.length > 0) {
    const [cc, ...ccArgs] = compilerFrom(process.env.CC, 'cc');
    execFileSync(cc, [...ccArgs, '-O2', '-o', exe, join(ROOT, 'bench', 'codec', 'codec-bench.c'), join(ROOT, 'native', 'codec.c')], {
      stdio: 'inherit',
    });
    writeCaseTables(work);
  }
  for (const [name, description, make] of PAYLOADS) {
    const input = make();
    writeFileSync(join(work, `${name}.in`), input);
    writeFileSync(join(work, `${name}.out`), upcase(input));
    const row = { payload: name, description, typescript: typescriptMbps(input) };
    for (const path of paths) {
      const out = execFileSync(exe, [work, path, name, String(CHUNK)], { encoding: 'utf8' });
      row[path] = JSON.parse(out).mbps;
    }
    rows.push(row);
    if (!json) console.error(`bench:codec: ${name} done`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** The TypeScript codec (an Upcaser, chunks uppercased in place where it can), best of 15 passes in CPU time. */
function typescriptMbps(input) {
  const chunks = [];
  for (let off = 0; off < input.length; off += CHUNK) chunks.push(input.subarray(off, off + CHUNK));
  const copies = chunks.map((c) => Buffer.allocUnsafe(c.length));
  let best = 0;
  for (let r = 0; r < 15; r++) {
    const codec = new Upcaser();
    const start = process.cpuUsage();
    for (let k = 0; k < chunks.length; k++) {
      chunks[k].copy(copies[k]);
      codec.push(copies[k], { inPlace: true });
    }
    codec.end();
    const { user, system } = process.cpuUsage(start);
    const seconds = (user + system) / 1e6;
    best = Math.max(best, input.length / seconds / 1e6);
  }
  return Math.round(best);
}

if (json) {
  console.log(JSON.stringify({ cpu: os.cpus()[0]?.model, chunk: CHUNK, bytes: SIZE, auto: nativeCodecPaths()[0] ?? null, rows }, null, 2));
} else {
  const cols = ['typescript', ...paths];
  console.log(
    `MB/s of input (CPU time), best of 15 passes over 2 MiB in ${CHUNK / 1024} KiB chunks; ${os.cpus()[0]?.model ?? 'unknown CPU'}; servers use: ${nativeCodecPaths()[0] ?? 'TypeScript'}\n`,
  );
  console.log(`| payload | ${cols.join(' | ')} | text |`);
  console.log(`|---|${cols.map(() => '---:').join('|')}|---|`);
  for (const row of rows)
    console.log(`| ${row.payload} | ${cols.map((c) => row[c].toLocaleString('en-US')).join(' | ')} | ${row.description} |`);
}
