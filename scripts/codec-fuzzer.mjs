// The C codec's fuzzer (test/native/codec-fuzz.c), for scripts/fuzz-codec.mjs (this CPU) and
// scripts/test-arm64.mjs (aarch64 under qemu): building it, and the reference it checks every
// path against, the SHA-256 of the TypeScript codec's output for a fixed set of streams
// (test/fixtures/codec-digest.json). Needs the build (dist/).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { upcase } from '../dist/codec/upcase.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIGEST_FIXTURE = join(ROOT, 'test', 'fixtures', 'codec-digest.json');

/**
 * The fuzzer scripts' command line: `--iterations N` (random streams), `--seed S` and the
 * script's own `options` (node:util parseArgs form), or `--help`, which prints `usage` and
 * exits 0. A mistake is one line, `NAME: …`, and exit 2.
 */
export function fuzzerArgs(name, usage, defaults, options = {}) {
  const refuse = (message) => {
    console.error(`${name}: ${message} (see --help)`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        iterations: { type: 'string', default: defaults.iterations },
        seed: { type: 'string', default: defaults.seed },
        help: { type: 'boolean', short: 'h', default: false },
        ...options,
      },
    }));
  } catch (err) {
    refuse(err.message.split('\n')[0].replace(/\. To specify a positional argument.*$/, ''));
  }
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  if (!/^\d+$/.test(values.iterations)) refuse(`--iterations takes a whole number, got ${values.iterations}`);
  if (!/^\d+$/.test(values.seed)) refuse(`--seed takes a decimal number, got ${values.seed}`);
  return values;
}

/**
 * Compiles the fuzzer with the C codec into `exe`, with `cc` (scripts/compiler.mjs: `CC`,
 * then CFLAGS and LDFLAGS after the fuzzer's own flags).
 */
export function buildFuzzer(cc, exe, { sanitize = true } = {}) {
  const flags = sanitize ? ['-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : ['-O2', '-g'];
  // codec-fuzz.c includes native/codec.c.
  execFileSync(cc.command, cc.argv([...flags, '-o', exe, join(ROOT, 'test', 'native', 'codec-fuzz.c')]), {
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
