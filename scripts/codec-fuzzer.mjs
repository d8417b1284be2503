// The C codec's fuzzer (test/native/codec-fuzz.c), for scripts/fuzz-codec.mjs (this CPU) and
// scripts/test-arm64.mjs (aarch64 under qemu): building it, and the reference it checks every
// path against, the SHA-256 of the TypeScript codec's output for a fixed set of streams
// (test/fixtures/codec-digest.json). Needs the build (dist/).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { upcase } from '../dist/codec/upcase.js';
import { shellWords } from './compiler.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIGEST_FIXTURE = join(ROOT, 'test', 'fixtures', 'codec-digest.json');

/** `CC` as a command and its leading arguments (`CC="ccache gcc"`, split as a shell would), or `fallback`. */
export function compilerFrom(cc, fallback) {
  const words = shellWords(cc ?? '');
  return words.length > 0 ? words : [fallback];
}

/** Compiles the fuzzer with the C codec into `exe`: `compiler` is a command and its arguments. */
export function buildFuzzer(compiler, exe, { sanitize = true } = {}) {
  const [command, ...args] = compiler;
  const flags = sanitize ? ['-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : ['-O2', '-g'];
  // codec-fuzz.c includes native/codec.c.
  execFileSync(command, [...args, ...flags, '-o', exe, join(ROOT, 'test', 'native', 'codec-fuzz.c')], {
    stdio: 'inherit',
  });
}

/** The recorded reference: how many streams, from which seed, and the SHA-256 of the TypeScript codec's output. */
export function readDigestFixture() {
  return JSON.parse(readFileSync(DIGEST_FIXTURE, 'utf8'));
}

/**
 * The SHA-256 the fuzzer computes, from the TypeScript codec: `emitted` is what
 * `codec-fuzz --emit STREAMS SEED` wrote (each stream as a 4-byte little-endian length and
 * its bytes); the digest is over each output's length (the same way) and bytes, in turn.
 */
export function typescriptDigest(emitted) {
  const hash = createHash('sha256');
  for (let at = 0; at < emitted.length; ) {
    const n = emitted.readUInt32LE(at);
    const out = upcase(emitted.subarray(at + 4, at + 4 + n));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(out.length);
    hash.update(length).update(out);
    at += 4 + n;
  }
  return hash.digest('hex');
}

/** Writes the fixture for `streams` streams from `seed`, with the TypeScript codec's digest of `emitted` (those streams). */
export function writeDigestFixture(streams, seed, emitted) {
  const fixture = { streams, seed, sha256: typescriptDigest(emitted) };
  writeFileSync(DIGEST_FIXTURE, `${JSON.stringify(fixture, null, 2)}\n`);
  return fixture;
}
