#!/usr/bin/env node
// The codecs alone, without sockets: MB/s of input for the TypeScript codec and for each
// block path of the C codec this CPU has, on several kinds of text. See docs/benchmarks.md.
//
//   npm run bench:codec            # builds first; about a minute
//   node bench/codec.mjs --json    # one JSON object instead of the table
//   UPCASE_CODEC_PATH=avx2 npm run bench:codec    # that path only
//
//   node bench/codec.mjs --threshold             # only the TypeScript codec against the addon, per chunk size
//
// Compiles the C side with `CC` (default `cc`; `CFLAGS` are added).
//
// Every payload is 2 MiB, pushed as one stream in 64 KiB chunks (the native TCP transport's
// read size), so a branch predictor cannot learn it; each figure is the best of 15 passes, timed
// in CPU time (the C side in its thread's, the TypeScript side in the process's), so that other
// load on a shared machine does not count.
// Each path's output is checked against the TypeScript codec's first.
// Then the TypeScript codec against the codec addon (upcase_codec.node) per chunk size,
// 16 B to 64 KiB, on ASCII, the UTF-8 mix and mostly-ASCII German: where src/codec/upcase.ts's
// NATIVE_MIN_BYTES belongs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBody, prng } from '../dist/bench/payload.js';
import { nativeCodecPaths, nativeUpcaseFunction } from '../dist/codec/native.js';
import { NATIVE_MIN_BYTES, Upcaser } from '../dist/codec/upcase.js';
import { writeCaseTables } from '../scripts/case-tables.mjs';
import { compileCommand } from '../scripts/compiler.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SIZE = 2 << 20;
const CHUNK = 64 * 1024;
const json = process.argv.includes('--json');
// Only the TypeScript codec against the codec addon, chunk size by chunk size.
const thresholdOnly = process.argv.includes('--threshold');

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
  paths = thresholdOnly ? [] : process.env.UPCASE_CODEC_PATH ? nativeCodecPaths().slice(0, 1) : nativeCodecPaths().slice(1);
} catch (err) {
  console.error(`bench:codec: ${err.message}`);
  process.exit(2);
}
if (paths.length === 0 && !thresholdOnly)
  console.error('bench:codec: the native addon is not built (npm run build:native): only the TypeScript codec is measured');

const work = mkdtempSync(join(os.tmpdir(), 'upcase-codec-'));
const rows = [];
try {
  const exe = join(work, 'codec-bench');
  if (paths.length > 0) {
    execFileSync(...compileCommand(['-O2', '-o', exe, join(ROOT, 'bench', 'codec', 'codec-bench.c'), join(ROOT, 'native', 'codec.c')]), {
      stdio: 'inherit',
    });
    writeCaseTables(work);
  }
  for (const [name, description, make] of thresholdOnly ? [] : PAYLOADS) {
    const input = make();
    writeFileSync(join(work, `${name}.in`), input);
    writeFileSync(join(work, `${name}.out`), typescriptUpcase(input));
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

/** The TypeScript codec alone (the reference every path is held to). */
function typescriptUpcase(input) {
  const codec = new Upcaser({ native: false });
  return Buffer.concat([codec.push(input), codec.end()]);
}

/** The TypeScript codec (an Upcaser, chunks uppercased in place where it can), best of 15 passes in CPU time. */
function typescriptMbps(input) {
  const chunks = [];
  for (let off = 0; off < input.length; off += CHUNK) chunks.push(input.subarray(off, off + CHUNK));
  const copies = chunks.map((c) => Buffer.allocUnsafe(c.length));
  let best = 0;
  for (let r = 0; r < 15; r++) {
    const codec = new Upcaser({ native: false });
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

// ---- TypeScript against the codec addon, chunk by chunk: one call per chunk, as a transport makes.
const SIZES = [16, 64, 128, 256, 512, 1024, 4096, 16384, 65536];
const nativeUpcase = nativeUpcaseFunction();
const sizes = [];
if (nativeUpcase === null) {
  console.error('bench:codec: the codec addon (upcase_codec.node) is not built: no threshold comparison');
} else {
  const SOURCES = {
    ascii: () => makeBody('ascii', SIZE, 9),
    utf8: () => makeBody('utf8', SIZE, 9),
    german: () => words(`${LATIN.repeat(6)}äöüß`, SIZE, 11),
  };
  for (const [kind, make] of Object.entries(SOURCES)) {
    const source = make();
    for (const size of SIZES) {
      // Chunks cut at character boundaries, as the Upcaser hands them on.
      const chunks = [];
      for (let off = 0; off + size <= source.length && chunks.length < 4096; off += size) {
        let end = off + size;
        while (end > off && (source[end] & 0xc0) === 0x80) end--;
        chunks.push(source.subarray(off, end));
      }
      for (const c of chunks.slice(0, 64))
        if (!nativeUpcase(c).equals(typescriptUpcase(c))) throw new Error(`codec addon differs at ${kind} ${size}`);
      const ts = perChunkMbps(chunks, (c) => new Upcaser({ native: false }).push(c, { inPlace: true }));
      const c = perChunkMbps(chunks, (chunk) => nativeUpcase(chunk));
      sizes.push({ kind, size, typescript: ts, addon: c, ratio: Math.round((c / ts) * 100) / 100 });
    }
  }
}

/** MB/s of input for `fn` on each chunk in turn (a fresh copy each time: the TypeScript codec works in place), best of 9 passes. */
function perChunkMbps(chunks, fn) {
  const copies = chunks.map((c) => Buffer.allocUnsafe(c.length));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  let best = 0;
  for (let r = 0; r < 9; r++) {
    const start = process.hrtime.bigint();
    for (let rep = 0; rep < 4; rep++) {
      for (let k = 0; k < chunks.length; k++) {
        chunks[k].copy(copies[k]);
        fn(copies[k]);
      }
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    best = Math.max(best, (4 * total) / seconds / 1e6);
  }
  return Math.round(best);
}

if (json) {
  console.log(
    JSON.stringify(
      {
        cpu: os.cpus()[0]?.model,
        chunk: CHUNK,
        bytes: SIZE,
        auto: nativeCodecPaths()[0] ?? null,
        rows,
        sizes,
        nativeMinBytes: NATIVE_MIN_BYTES,
      },
      null,
      2,
    ),
  );
} else {
  const cols = ['typescript', ...paths];
  if (!thresholdOnly) {
    console.log(
      `MB/s of input (CPU time), best of 15 passes over 2 MiB in ${CHUNK / 1024} KiB chunks; ${os.cpus()[0]?.model ?? 'unknown CPU'}; servers use: ${nativeCodecPaths()[0] ?? 'TypeScript'}\n`,
    );
    console.log(`| payload | ${cols.join(' | ')} | text |`);
    console.log(`|---|${cols.map(() => '---:').join('|')}|---|`);
    for (const row of rows)
      console.log(`| ${row.payload} | ${cols.map((c) => row[c].toLocaleString('en-US')).join(' | ')} | ${row.description} |`);
  }
  if (sizes.length > 0) {
    console.log(
      `\nThe TypeScript codec against the codec addon, one call per chunk (MB/s of input, best of 9); the Upcaser uses the addon for non-ASCII chunks of ${NATIVE_MIN_BYTES} B and more\n`,
    );
    console.log('| text | chunk | TypeScript | addon | addon/TS |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of sizes)
      console.log(
        `| ${r.kind} | ${r.size.toLocaleString('en-US')} B | ${r.typescript.toLocaleString('en-US')} | ${r.addon.toLocaleString('en-US')} | ${r.ratio}× |`,
      );
  }
}
