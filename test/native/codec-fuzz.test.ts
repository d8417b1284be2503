// The C codec's block paths against its scalar path, built with AddressSanitizer and
// UndefinedBehaviorSanitizer (scripts/fuzz-codec.mjs, test/native/codec-fuzz.c): a short
// run here; `npm run fuzz:codec` runs 40,000 streams.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { codecPathsUnknown, expectedCodecPaths } from '../helpers/cpu.js';

const script = fileURLToPath(new URL('../../scripts/fuzz-codec.mjs', import.meta.url));

test('every C codec path agrees with the scalar one on random streams, with no memory error under ASan/UBSan', {
  skip: codecPathsUnknown(),
}, () => {
  const run = spawnSync(process.execPath, [script, '--iterations', '2000', '--seed', '20261124'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  // scalar, and every block path this CPU has (sse2, avx512 here); the addon is not involved
  assert.deepEqual(JSON.parse(run.stdout), { iterations: 2000, paths: expectedCodecPaths().length });
});
