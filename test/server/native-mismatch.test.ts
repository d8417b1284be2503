// An addon whose constants do not match the TypeScript (a stale build/) is not
// used: with `auto` the server warns and serves with streams and node:dgram; with
// `native` it refuses to start, naming the mismatch. The addons are loaded through
// require(), so this file (its own process) hands the server doctored copies.
import assert from 'node:assert/strict';
import Module from 'node:module';
import { test } from 'node:test';
import { startServer } from '../../src/server/server.js';
import { captureLogger } from '../helpers/logs.js';

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
const loader = Module as unknown as { _load: Load };
const load = loader._load;
let built = true;
loader._load = function (this: unknown, request: string, parent: unknown, isMain: boolean): unknown {
  const real = load.call(this, request, parent, isMain) as Record<string, unknown>;
  if (request.endsWith('upcase_tcp.node')) {
    // The reasons renumbered: `stall` now shares its number with `idle`.
    const closeReasons = { ...(real.closeReasons as Record<string, number>), stall: 1 };
    return Object.create(real, { closeReasons: { value: closeReasons } });
  }
  // A UDP addon from before the layout was exported.
  if (request.endsWith('upcase_udp.node')) return Object.create(real, { udpMeta: { value: undefined } });
  return real;
};
try {
  Module.createRequire(import.meta.url)('../../build/Release/upcase_tcp.node');
} catch {
  built = false;
}

const skip = process.platform !== 'linux' || !built ? 'the native addons are not built here' : false;

test('auto: a mismatched addon is not used, and the server says why', { skip }, async (t) => {
  const { logger, lines } = captureLogger('info');
  const server = await startServer({ host: '127.0.0.1', port: 0, logger });
  t.after(() => server.close());
  assert.equal(server.tcpTransport, 'stream');
  assert.equal(server.udpTransport, 'dgram');
  const warnings = lines.filter((l) => l.level === 40).map((l) => [l.msg, l.problem]);
  assert.deepEqual(warnings, [
    [
      'native TCP transport not used; serving TCP with streams',
      'upcase_tcp.node does not match src/tcp/native.ts: `closeReasons.stall` and `closeReasons.idle` are both 1',
    ],
    [
      'native UDP transport not used; serving UDP with node:dgram',
      'upcase_udp.node does not match src/udp/native.ts: the addon exports no `udpMeta`',
    ],
  ]);
});

test('native: a mismatched addon stops the start, naming the mismatch', { skip }, async () => {
  await assert.rejects(startServer({ host: '127.0.0.1', port: 0, udp: false, tcpTransport: 'native' }), {
    code: 'UPCASE_ERR_INVALID_ARG',
    message:
      /cannot be used here \(upcase_tcp.node does not match src\/tcp\/native.ts: `closeReasons.stall` and `closeReasons.idle` are both 1\)/,
  });
  await assert.rejects(startServer({ host: '127.0.0.1', port: 0, tcp: false, udpTransport: 'native' }), {
    code: 'UPCASE_ERR_INVALID_ARG',
    message: /cannot be used here \(upcase_udp.node does not match src\/udp\/native.ts: the addon exports no `udpMeta`\)/,
  });
});
