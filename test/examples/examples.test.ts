import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { type Started, startOnFreePort, tsxArgs } from '../helpers/programs.js';
import { run, runCli } from '../helpers/cli.js';

// The textbook's four programs in TypeScript (examples/), run as the README
// says (through tsx), on free ports given as arguments.

const READY = /^The server is ready to receive\n/;

describe('examples/tcp-server.ts and examples/tcp-client.ts', () => {
  let server: Started;
  before(async () => {
    server = await startOnFreePort('tcp', process.execPath, (port) => tsxArgs('examples/tcp-server.ts', String(port)), READY);
  });
  after(() => server.stop());

  test('the client prompts, sends the sentence and prints "From server: …"', async () => {
    const r = await run(process.execPath, tsxArgs('examples/tcp-client.ts', '127.0.0.1', String(server.port)), { input: 'hello, world\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentence: From server: HELLO, WORLD\n');
    assert.equal(r.code, 0, r.stderr);
  });

  test('the example server answers upcase client too', async () => {
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(server.port), 'straße']);
    assert.equal(r.stdout.toString(), 'STRASSE\n');
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('examples/udp-server.ts and examples/udp-client.ts', () => {
  let server: Started;
  before(async () => {
    server = await startOnFreePort('udp', process.execPath, (port) => tsxArgs('examples/udp-server.ts', String(port)), READY);
  });
  after(() => server.stop());

  test('the client prompts, sends the message and prints the reply', async () => {
    const r = await run(process.execPath, tsxArgs('examples/udp-client.ts', '127.0.0.1', String(server.port)), { input: 'hello, world\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentence: HELLO, WORLD\n');
    assert.equal(r.code, 0, r.stderr);
  });

  test('the example server answers upcase client --udp too', async () => {
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(server.port), 'straße']);
    assert.equal(r.stdout.toString(), 'STRASSE\n');
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('the example clients against the upcase server', () => {
  let server: UpcaseServer;
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0 });
  });
  after(() => server.close());

  test('tcp-client.ts', async () => {
    const r = await run(process.execPath, tsxArgs('examples/tcp-client.ts', '127.0.0.1', String(server.address().port)), { input: 'ﬃ\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentence: From server: FFI\n');
  });

  test('udp-client.ts', async () => {
    const r = await run(process.execPath, tsxArgs('examples/udp-client.ts', '127.0.0.1', String(server.address().port)), { input: 'ﬃ\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentence: FFI\n');
  });
});
