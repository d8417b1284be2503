// The line `upcase serve` prints after its ready line: which transports and codec run,
// and, when a native addon is missing, why and the fix (src/cli/transports.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { nativeCodecPaths } from '../../src/codec/native.js';
import { NATIVE_MIN_BYTES } from '../../src/codec/upcase.js';
import { nativeTcpStatus } from '../../src/tcp/native.js';
import { nativeUdpStatus } from '../../src/udp/native.js';
import { ROOT, startServe } from '../helpers/serve.js';

const built = nativeTcpStatus().binding !== null && nativeUdpStatus().binding !== null && nativeCodecPaths().length > 0;
const skip =
  process.platform !== 'linux'
    ? 'the native transports are Linux-only'
    : process.env.UPCASE_NATIVE === '0'
      ? 'UPCASE_NATIVE=0: this process cannot see the addons the server loads'
      : false;
const ARGS = ['--log-level', 'warn'];

/** The ready line, then the transports line, from a server started with `args` and `env`. */
async function firstScreen(t: { after: (fn: () => unknown) => void }, args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const serve = await startServe([...ARGS, ...args], { env, t });
  await serve.line(/^Transports: /, 10_000);
  await serve.stop();
  return serve.stdoutLines.slice(0, 2);
}

function tempDir(t: { after: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(os.tmpdir(), 'upcase-addons-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('upcase serve says which transports run', { concurrency: true }, () => {
  test('the native ones, with the codec path, when they are built', { skip }, async (t) => {
    assert.ok(built, 'the addons are missing: run `npm run build:native`');
    const [ready, line] = await firstScreen(t, []);
    assert.match(ready!, /^The server is ready to receive on tcp\+udp 127\.0\.0\.1:\d+$/);
    assert.equal(line, `Transports: tcp native (codec ${nativeCodecPaths()[0]}), udp native`);
  });

  test('the stream transport when asked for, with the C codec for long pieces, and no complaint', { skip }, async (t) => {
    const [, line] = await firstScreen(t, ['--tcp-transport', 'stream', '--udp-transport', 'dgram']);
    const codec = nativeCodecPaths()[0];
    assert.equal(
      line,
      `Transports: tcp stream (codec typescript${codec === undefined ? '' : ` + C ${codec} from ${NATIVE_MIN_BYTES} B`}), udp dgram`,
    );
  });

  test('UPCASE_NATIVE=0: the Node.js transports, why, and how to change it', async (t) => {
    const [ready, line] = await firstScreen(t, [], { UPCASE_NATIVE: '0' });
    assert.match(ready!, /^The server is ready to receive on tcp\+udp 127\.0\.0\.1:\d+$/);
    assert.equal(
      line,
      'Transports: tcp stream (codec typescript), udp dgram — native TCP, native UDP and C codec off (UPCASE_NATIVE=0); unset UPCASE_NATIVE to use them',
    );
  });

  test('no C compiler at install: says so, and the fix for a project that depends on upcase', { skip }, async (t) => {
    // What the install left behind without a compiler: the build's own record, and no addon.
    const dir = tempDir(t);
    const run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--out', dir, '--quiet'], {
      env: { ...process.env, CC: '/nonexistent/cc' },
      timeout: 60_000,
    });
    assert.equal(run.status, 0);
    const [, line] = await firstScreen(t, [], { UPCASE_NATIVE_DIR: dir });
    assert.equal(
      line,
      'Transports: tcp stream (codec typescript), udp dgram — native TCP, native UDP and C codec not built (no C compiler (`/nonexistent/cc` not found)); install a C compiler (e.g. gcc) and run `npm rebuild upcase`',
    );
  });

  test('an addon that fails to load: its message, and the others still run', { skip }, async (t) => {
    assert.ok(built, 'the addons are missing: run `npm run build:native`');
    const dir = tempDir(t);
    for (const name of ['upcase_udp', 'upcase_codec'])
      copyFileSync(join(ROOT, 'build', 'Release', `${name}.node`), join(dir, `${name}.node`));
    writeFileSync(join(dir, 'upcase_tcp.node'), 'not an ELF file');
    const [, line] = await firstScreen(t, [], { UPCASE_NATIVE_DIR: dir });
    assert.match(
      line!,
      /^Transports: tcp stream \(codec typescript \+ C \w+ from \d+ B\), udp native — native TCP failed to load \(.*upcase_tcp\.node.*\); run `npm rebuild upcase` \(it says what fails\)$/,
    );
  });
});
