#!/usr/bin/env node
// upcase on 64-bit ARM, from an x86-64 machine: cross-builds the native addons and the C codec's
// fuzzer with an aarch64 compiler, runs the fuzzer under qemu-user (every path aarch64 has,
// scalar and NEON, against the TypeScript codec's recorded output and against each other, under
// AddressSanitizer and UndefinedBehaviorSanitizer), and, given an arm64 Node.js, a TCP+UDP smoke
// test of the server with the cross-built addons.
//
//   npm run test:arm64                          # 2,000 random streams after the 600 recorded ones
//   node scripts/test-arm64.mjs --iterations N --seed S
//
// Tools (Debian: apt-get install gcc-aarch64-linux-gnu qemu-user-static):
//   CC                 the cross compiler, with arguments if any (default aarch64-linux-gnu-gcc);
//                      CFLAGS and LDFLAGS are added, as everywhere (scripts/compiler.mjs)
//   UPCASE_QEMU        the emulator (default qemu-aarch64-static)
//   UPCASE_SYSROOT     the aarch64 libraries for it (default /usr/aarch64-linux-gnu)
//   UPCASE_ARM64_NODE  an arm64 `node` binary (Node.js 20): runs the smoke test, skipped without it
// Exits 0 when everything that ran passed, 1 when something failed or a tool is missing, 2 on a usage error.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { upcase } from '../dist/codec/upcase.js';
import { writeCaseTables } from './case-tables.mjs';
import { compiler } from './compiler.mjs';
import { buildFuzzer, fuzzerArgs, readDigestFixture, ROOT, typescriptDigest } from './codec-fuzzer.mjs';

const values = fuzzerArgs(
  'test:arm64',
  `usage: node scripts/test-arm64.mjs [--iterations N] [--seed S]
  --iterations N  random streams after the recorded ones (default 2000)
  --seed S        the random streams' seed, a decimal number (default 20261201)
Tools: CC (default aarch64-linux-gnu-gcc; CFLAGS and LDFLAGS are added), UPCASE_QEMU
(default qemu-aarch64-static), UPCASE_SYSROOT (default /usr/aarch64-linux-gnu),
UPCASE_ARM64_NODE (an arm64 node for the smoke test; skipped without it).
Exit status: 0 everything that ran passed, 1 something failed or a tool is missing, 2 a usage error.
`,
  { iterations: '2000', seed: '20261201' },
);
const say = (message) => console.error(`test:arm64: ${message}`);
const fail = (message) => {
  say(`FAILED: ${message}`);
  process.exit(1);
};

const cc = compiler(process.env, 'aarch64-linux-gnu-gcc');
const qemu = process.env.UPCASE_QEMU || 'qemu-aarch64-static';
const sysroot = process.env.UPCASE_SYSROOT || '/usr/aarch64-linux-gnu';
const emulate = (command, args) => [qemu, ['-L', sysroot, command, ...args]];

// The tools, or a loud failure: CI installs them (.ci/run), so missing means broken.
for (const [tool, args, apt] of [
  [cc.command, [...cc.args, '--version'], 'gcc-aarch64-linux-gnu'],
  [qemu, ['--version'], 'qemu-user-static'],
]) {
  if (spawnSync(tool, args, { stdio: 'ignore' }).status !== 0)
    fail(`\`${tool}\` does not run: install it (apt-get install ${apt}) or set CC / UPCASE_QEMU`);
}
if (!existsSync(sysroot)) fail(`no aarch64 libraries in ${sysroot} (apt-get install gcc-aarch64-linux-gnu) or set UPCASE_SYSROOT`);

/** Whether `file` is an ELF object for AArch64 (e_machine 183). */
function isAarch64(file) {
  const header = readFileSync(file).subarray(0, 20);
  return header.readUInt32BE(0) === 0x7f454c46 && header.readUInt16LE(18) === 183;
}

const work = mkdtempSync(join(os.tmpdir(), 'upcase-arm64-'));
try {
  // 1. The addons, built by scripts/build-native.mjs itself (one list of addons and sources)
  // with the cross compiler; it says they cannot be loaded here, which is expected.
  const release = join(work, 'build', 'Release');
  const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--out', release], {
    cwd: ROOT,
    env: { ...process.env, CC: cc.label, UPCASE_NATIVE: undefined },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (build.status !== 0) fail(`build-native.mjs exited with ${build.status ?? build.signal}`);
  const addons = ['upcase_udp', 'upcase_tcp', 'upcase_codec', 'upcase_bench'];
  for (const name of addons) {
    const out = join(release, `${name}.node`);
    if (!existsSync(out)) fail(`${name}.node was not built with ${cc.label}`);
    if (!isAarch64(out)) fail(`${out} is not an AArch64 object: is CC a cross compiler?`);
  }
  say(`built ${addons.join(', ')} for aarch64 with ${cc.label}`);

  // 2. The fuzzer, under qemu: the recorded streams' digest first (emitted by the aarch64 build,
  // digested here by the TypeScript codec), then every path against it and against scalar.
  const exe = join(work, 'codec-fuzz');
  buildFuzzer(cc, exe);
  if (!isAarch64(exe)) fail(`${exe} is not an AArch64 program`);
  writeCaseTables(work);
  const digest = readDigestFixture();
  // LeakSanitizer cannot run under qemu-user (and the case tables live as long as the process).
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1' };
  delete env.UPCASE_CODEC_PATH;
  const [q, emitArgs] = emulate(exe, ['--emit', String(digest.streams), digest.seed]);
  const emit = spawnSync(q, emitArgs, { env, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] });
  if (emit.status !== 0) fail(`codec-fuzz --emit under ${qemu} exited with ${emit.status ?? emit.signal}`);
  if (typescriptDigest(emit.stdout) !== digest.sha256)
    fail('the recorded digest is not the TypeScript codec output for the streams the aarch64 fuzzer draws');
  const [q2, fuzzArgs] = emulate(exe, [work, values.iterations, values.seed, String(digest.streams), digest.seed, digest.sha256]);
  const fuzz = spawnSync(q2, fuzzArgs, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
  if (fuzz.status !== 0) fail(`the codec fuzzer under ${qemu} exited with ${fuzz.status ?? fuzz.signal}`);
  const result = JSON.parse(fuzz.stdout);
  if (result.paths.join() !== 'scalar,neon') fail(`the fuzzer ran the paths ${result.paths.join(', ')}, not scalar and neon`);
  say(
    `codec fuzzer under ${qemu}: scalar and neon gave the TypeScript codec output for ${digest.streams} recorded streams and agreed on ${values.iterations} random ones (seed ${values.seed})`,
  );

  // 3. The server itself, given an arm64 Node.js.
  const armNode = process.env.UPCASE_ARM64_NODE;
  if (!armNode) {
    say('SKIPPED the TCP+UDP smoke test: no arm64 Node.js here (set UPCASE_ARM64_NODE to an arm64 `node` binary to run it)');
  } else {
    await smokeTest(emulate(armNode, []), release, 'neon');
    say('TCP+UDP smoke test under qemu: served natively (neon codec), byte for byte');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/**
 * `upcase serve` run by `node` (a command and its arguments) from a copy of the package whose
 * build/Release holds `release`'s addons: both native transports must load, with the C codec on
 * `codec`, and a TCP stream and a UDP datagram must come back uppercased.
 */
async function smokeTest([command, args], release, codec) {
  const tree = mkdtempSync(join(os.tmpdir(), 'upcase-arm64-tree-'));
  let server;
  try {
    for (const entry of ['bin', 'dist', 'node_modules', 'package.json']) symlinkSync(join(ROOT, entry), join(tree, entry));
    cpSync(release, join(tree, 'build', 'Release'), { recursive: true });
    server = spawn(command, [...args, join(tree, 'bin', 'upcase.js'), 'serve', '--host', '127.0.0.1', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UPCASE_CODEC_PATH: '', UPCASE_LOG_LEVEL: 'info' },
    });
    let stdout = '';
    let stderr = '';
    server.stdout.on('data', (d) => (stdout += d));
    server.stderr.on('data', (d) => (stderr += d));
    const deadline = Date.now() + 120_000;
    while (!/ready to receive on \S+ \S+:(\d+)/.test(stdout)) {
      if (server.exitCode !== null || Date.now() > deadline) fail(`the server did not start:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const port = Number(/ready to receive on \S+ \S+:(\d+)/.exec(stdout)[1]);
    const listening = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'listening');
    const want = { tcpTransport: 'native', udpTransport: 'native', tcpCodec: codec };
    for (const [field, value] of Object.entries(want))
      if (listening?.[field] !== value) fail(`listening line: ${field} is ${listening?.[field]}, not ${value}`);
    const input = Buffer.from('straße ΐ ﬃ ǆ жé 中 😀 plain text '.repeat(2000));
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks = [];
    socket.on('data', (c) => chunks.push(c));
    await once(socket, 'connect');
    socket.end(input);
    await once(socket, 'end');
    if (!Buffer.concat(chunks).equals(upcase(input))) fail('TCP reply differs from the TypeScript codec');
    const udp = dgram.createSocket('udp4');
    udp.send('héllo, udp', port, '127.0.0.1');
    const [reply] = await Promise.race([
      once(udp, 'message'),
      new Promise((_, no) => setTimeout(() => no(new Error('no UDP reply in 10 s')), 10_000)),
    ]);
    udp.close();
    if (reply.toString() !== 'HÉLLO, UDP') fail(`UDP reply ${JSON.stringify(reply.toString())}`);
  } finally {
    server?.kill('SIGTERM');
    rmSync(tree, { recursive: true, force: true });
  }
}
