// The native build (scripts/build-native.mjs) as a user meets it: a checkout at a path
// with a space, CC with arguments and CFLAGS, a compiler that fails for one addon, and no
// compiler at all. Every build goes to a directory of its own (--out, or a copied checkout),
// never to build/Release, which the other tests load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADDONS = ['upcase_udp', 'upcase_tcp', 'upcase_codec', 'upcase_bench'];
const linux = process.platform === 'linux';
const cc = spawnSync('sh', ['-c', 'command -v gcc'], { encoding: 'utf8' }).stdout.trim();
const skip = !linux ? 'the transports build on Linux only' : cc === '' ? 'no gcc here (apt-get install gcc)' : false;

function tempDir(t: { after: (fn: () => void) => void }, name: string): string {
  const dir = mkdtempSync(join(os.tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the build script (bounded), with `env` added to a clean environment. */
function build(script: string, args: string[], env: Record<string, string>) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('UPCASE_') && !['CC', 'CFLAGS', 'LDFLAGS'].includes(k)),
  );
  const run = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', env: { ...base, ...env }, timeout: 180_000 });
  assert.equal(run.status, 0, `the build never fails the install: ${run.stderr}`);
  return run.stderr;
}

/** Which of `dir`'s addons a fresh node loads. */
function loadable(dir: string): string[] {
  return ADDONS.filter((name) => {
    const file = join(dir, `${name}.node`);
    const run = spawnSync(process.execPath, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', file], { timeout: 30_000 });
    return existsSync(file) && run.status === 0;
  });
}

function record(dir: string): Record<string, { built: boolean; reason?: string }> {
  return JSON.parse(readFileSync(join(dir, 'native-build.json'), 'utf8')).addons;
}

/** A compiler wrapper: logs each call's arguments (one line each) to `log`, then runs `body`. */
function wrapper(dir: string, log: string, body: string): string {
  const path = join(dir, 'cc wrapper.sh');
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

test('a checkout at a path with a space builds every addon, and they load', { skip, timeout: 240_000 }, (t) => {
  const checkout = join(tempDir(t, 'upcase build-'), 'my projects', 'upcase');
  for (const part of ['native', 'scripts/build-native.mjs', 'scripts/compiler.mjs'])
    cpSync(join(ROOT, part), join(checkout, part), { recursive: true });
  const said = build(join(checkout, 'scripts', 'build-native.mjs'), [], {});
  const out = join(checkout, 'build', 'Release');
  assert.deepEqual(loadable(out), ADDONS, said);
  assert.match(
    said,
    /built upcase_udp\.node \(UDP transport\), upcase_tcp\.node \(TCP transport\), upcase_codec\.node \(C codec\), upcase_bench\.node \(bench engine\)/,
  );
  // No percent-encoded twin of the path was made anywhere.
  assert.deepEqual(
    readdirSync(join(checkout, '..', '..'), { recursive: true }).filter((f) => String(f).includes('%20')),
    [],
  );
});

test('CC with arguments and CFLAGS are used as a shell would split them', { skip, timeout: 240_000 }, (t) => {
  const dir = tempDir(t, 'upcase-cc-');
  const log = join(dir, 'calls.log');
  const cc = wrapper(dir, log, 'exec "$@"');
  const out = join(dir, 'out');
  // The wrapper's path holds a space, so it is quoted; `gcc` is its argument.
  const said = build(join(ROOT, 'scripts', 'build-native.mjs'), ['--out', out], {
    CC: `'${cc}' gcc`,
    CFLAGS: '-O3 -DUPCASE_BUILD_TEST="a b"',
  });
  assert.deepEqual(loadable(out), ADDONS, said);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(calls.length, ADDONS.length, 'one compiler call per addon');
  for (const call of calls) {
    assert.ok(call.startsWith('gcc -O2 '), call);
    // CFLAGS come after the build's own flags, so -O3 wins; the quoted word stays one word.
    assert.match(call, / -O3 -DUPCASE_BUILD_TEST=a b( |$)/);
  }
  assert.match(said, new RegExp(`with '?${cc.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'? gcc`));
});

test('a compiler that fails for one addon: the message names that addon, its reason and its fallback; the others are built', {
  skip,
  timeout: 240_000,
}, (t) => {
  const dir = tempDir(t, 'upcase-fail-');
  const log = join(dir, 'calls.log');
  const cc = wrapper(
    dir,
    log,
    `case "$*" in *tcp_serve.c*) echo "tcp_serve.c:1: error: injected failure" >&2; exit 1;; esac\nexec gcc "$@"`,
  );
  const out = join(dir, 'out');
  const said = build(join(ROOT, 'scripts', 'build-native.mjs'), ['--out', out], { CC: `'${cc}'` });
  assert.deepEqual(loadable(out), ['upcase_udp', 'upcase_codec', 'upcase_bench'], said);
  assert.match(said, /built upcase_udp\.node \(UDP transport\), upcase_codec\.node \(C codec\), upcase_bench\.node \(bench engine\)/);
  assert.match(said, /not built: upcase_tcp\.node \(TCP transport\): .*exit 1.*injected failure.*; TCP uses net\.Socket streams/);
  assert.doesNotMatch(said, /native transports/);
  assert.equal(record(out).upcase_tcp?.built, false);
  assert.match(record(out).upcase_tcp?.reason ?? '', /injected failure/);
});

test('without a compiler nothing is built, and the message says what runs instead and how to fix it', {
  skip: linux ? false : 'Linux only',
  timeout: 120_000,
}, (t) => {
  const out = join(tempDir(t, 'upcase-nocc-'), 'out');
  const said = build(join(ROOT, 'scripts', 'build-native.mjs'), ['--out', out], { CC: '/nonexistent/cc' });
  assert.deepEqual(loadable(out), []);
  for (const name of ADDONS) {
    assert.match(said, new RegExp(`not built: ${name}\\.node .*no C compiler`));
    assert.equal(record(out)[name]?.reason, 'no C compiler (`/nonexistent/cc` not found)');
  }
  assert.match(said, /node:dgram, net\.Socket streams and the TypeScript codec \(and `upcase bench` on its JavaScript engine\)/);
  assert.match(said, /install a C compiler .* and run `npm rebuild upcase`/);
  assert.doesNotMatch(said, /build:native/);
});
