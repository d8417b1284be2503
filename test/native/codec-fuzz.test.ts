// The C codec's fuzzer (scripts/fuzz-codec.mjs, test/native/codec-fuzz.c), built with
// AddressSanitizer and UndefinedBehaviorSanitizer: a short run here; `npm run fuzz:codec`
// runs 40,000 streams. Every path this CPU has must give the TypeScript codec's output for
// the recorded streams (test/fixtures/codec-digest.json, checked against the TypeScript
// codec first) and the scalar path's on random ones; the addon is not involved.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { codecPathsUnknown, expectedCodecPaths } from '../helpers/cpu.js';

const script = fileURLToPath(new URL('../../scripts/fuzz-codec.mjs', import.meta.url));
const gcc = spawnSync('sh', ['-c', 'command -v gcc'], { encoding: 'utf8' }).stdout.trim();
const fixture = JSON.parse(readFileSync(new URL('../fixtures/codec-digest.json', import.meta.url), 'utf8')) as { streams: number };

test('every C codec path gives the TypeScript codec output and agrees with the scalar one, with no memory error under ASan/UBSan', {
  skip: codecPathsUnknown(),
}, () => {
  const run = spawnSync(process.execPath, [script, '--iterations', '2000', '--seed', '20261124'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { iterations: 2000, digestStreams: fixture.streams, paths: expectedCodecPaths() });
});

test('UPCASE_CODEC_PATH holds the fuzzer to one path, and a path this CPU lacks is an error', () => {
  const one = spawnSync(process.execPath, [script, '--iterations', '200', '--seed', '7'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, UPCASE_CODEC_PATH: 'scalar' },
  });
  assert.equal(one.status, 0, one.stderr);
  assert.deepEqual(JSON.parse(one.stdout).paths, ['scalar']);
  const missing = spawnSync(process.execPath, [script, '--iterations', '1', '--seed', '7'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, UPCASE_CODEC_PATH: 'avx9000' },
  });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /UPCASE_CODEC_PATH=avx9000: not a C codec path \(this CPU has scalar/);
});

test('the fuzzer is built with CC (a command and its arguments, quoted as a shell would) and CFLAGS after its own flags', {
  skip: gcc === '' ? 'no gcc here (apt-get install gcc)' : false,
}, (t) => {
  const dir = mkdtempSync(join(os.tmpdir(), 'upcase fuzz cc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls.log');
  // A launcher in the style of ccache, at a path with a space: logs its arguments, then runs them.
  const launcher = join(dir, 'cc launcher.sh');
  writeFileSync(launcher, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec "$@"\n`);
  chmodSync(launcher, 0o755);
  const run = spawnSync(process.execPath, [script, '--iterations', '10', '--seed', '1'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, CC: `'${launcher}' gcc`, CFLAGS: '-DUPCASE_FUZZ_TEST="a b"', UPCASE_CODEC_PATH: 'scalar' },
  });
  assert.equal(run.status, 0, run.stderr);
  const [call, ...more] = readFileSync(log, 'utf8').trim().split('\n');
  assert.deepEqual(more, [], 'one compiler call');
  assert.ok(call!.startsWith('gcc -O1 -g -fsanitize=address,undefined '), call);
  assert.match(call!, /codec-fuzz\.c -DUPCASE_FUZZ_TEST=a b$/);
});

test('--help prints the usage and exits 0; a mistake is one line and exit 2', () => {
  const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: node scripts\/fuzz-codec\.mjs \[--iterations N\] \[--seed S\] \[--record\]\n/);
  assert.equal(help.stderr, '');
  for (const [args, line] of [
    [['--bogus'], "fuzz-codec: Unknown option '--bogus' (see --help)\n"],
    [['--iterations', 'many'], 'fuzz-codec: --iterations takes a whole number, got many (see --help)\n'],
    [['--seed=-1'], 'fuzz-codec: --seed takes a decimal number, got -1 (see --help)\n'],
  ] as const) {
    const run = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.stderr, line);
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
  }
});
