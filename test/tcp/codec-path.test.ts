// UPCASE_CODEC_PATH (native/codec.c codec_init, src/tcp/native.ts): it forces the C codec's
// block path in a server, which its listening line names; a name the CPU does not have is a
// startup error that lists the paths it has, never a silent fallback. Each server is a
// process of its own: the addon reads the variable once per process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { runCli } from '../helpers/cli.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { startServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';
import { expectedCodecPaths } from '../helpers/cpu.js';

const skip = process.platform === 'linux' ? false : 'the native TCP transport is built on Linux only';
const paths = expectedCodecPaths();
// Length-changing characters, every UTF-8 length, ill-formed bytes, and ASCII in 32-byte runs.
const input = Buffer.concat([
  Buffer.from(`${'ßtraße ΐ ﬃ ǆ ж é 中 😀 𐐨 '.repeat(300)}${'plain ascii text, a block or more '.repeat(40)}`),
  Buffer.from([0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0x61]),
]);

for (const path of paths) {
  test(`UPCASE_CODEC_PATH=${path}: the server runs that path, names it, and answers byte for byte`, { skip }, async () => {
    const server = await startServe(['--tcp-transport', 'native', '--no-udp'], { env: { UPCASE_CODEC_PATH: path } });
    try {
      // The log is written asynchronously: the ready line on stdout may come first.
      await until(() => server.logs().some((l) => l.msg === 'listening'), 'the listening log line');
      const listening = server.logs().find((l) => l.msg === 'listening');
      assert.equal(listening?.tcpCodec, path);
      assert.ok((await tcpRoundTrip(server.port, input)).equals(upcase(input)));
    } finally {
      await server.close();
    }
  });
}

test('UPCASE_CODEC_PATH naming no path, or one this CPU lacks, stops the server with the paths it has', { skip }, async () => {
  const missing = process.arch === 'x64' ? 'neon' : 'avx2';
  for (const [name, why] of [
    ['avx9000', 'not a C codec path'],
    [missing, 'not available on this CPU'],
  ]) {
    const run = await runCli(['serve', '--host', '127.0.0.1', '--port', '0'], { env: { UPCASE_CODEC_PATH: name! } });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, new RegExp(`UPCASE_CODEC_PATH=${name}: ${why} \\(this CPU has ${paths.join(', ')}\\)`));
    assert.doesNotMatch(run.stdout, /ready to receive/);
  }
});
