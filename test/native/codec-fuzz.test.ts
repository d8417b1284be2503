// The C codec's fuzzer (scripts/fuzz-codec.mjs, test/native/codec-fuzz.c), built with
// AddressSanitizer and UndefinedBehaviorSanitizer: a short run here; `npm run fuzz:codec`
// runs 40,000 streams. Every path this CPU has must give the TypeScript codec's output for
// the recorded streams (test/fixtures/codec-digest.json, checked against the TypeScript
// codec first) and the scalar path's on random ones; the addon is not involved.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { codecPathsUnknown, expectedCodecPaths } from '../helpers/cpu.js';

const script = fileURLToPath(new URL('../../scripts/fuzz-codec.mjs', import.meta.url));
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
