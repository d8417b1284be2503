import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { tcpRequest } from '../../src/client/tcp.js';
import { describe as describeEvent, type TraceEvent } from '../../src/trace.js';
import { UpcaseServer } from '../../src/server/server.js';
import { delay, within } from '../helpers/wait.js';
import { makePki, type TestPki } from '../helpers/pki.js';

// --trace over TLS: the server reports the TLS listener, accept() and the
// decrypted reads; the client's connected line names both handshakes.

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

test('a traced TLS exchange, both sides', async (t) => {
  const serverLines: string[] = [];
  const traced = new UpcaseServer(
    { host: '127.0.0.1', port: 0, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0, tcp: false, udp: false },
    { tracer: (e: TraceEvent) => serverLines.push(describeEvent(e)) },
  );
  t.after(() => traced.close());
  const { tlsPort } = await traced.listen();

  const clientLines: string[] = [];
  const reply = await tcpRequest('secret', {
    host: '127.0.0.1',
    port: tlsPort!,
    tls: { ca: pki.ca, servername: 'localhost' },
    tracer: (e) => clientLines.push(describeEvent(e)),
  });
  assert.equal(reply.toString(), 'SECRET');
  assert.match(clientLines[0]!, new RegExp(`^tls: socket\\(\\); connect\\(\\) to 127\\.0\\.0\\.1:${tlsPort}`));
  assert.match(
    clientLines[1]!,
    /^tls: connected from 127\.0\.0\.1:\d+ \(a port the OS chose\) to 127\.0\.0\.1:\d+; the TCP and TLS handshakes took/,
  );
  assert.ok(clientLines.includes('tcp: send() 6 bytes "secret"'), clientLines.join('\n'));
  assert.ok(clientLines.includes('tcp: recv() got 6 bytes "SECRET"'), clientLines.join('\n'));

  await within(
    5000,
    'the server closes connection socket #1',
    (async () => {
      while (!serverLines.some((l) => l.includes('closing connection socket #1'))) await delay(10);
    })(),
  );
  assert.equal(serverLines[0], `tls: welcoming socket listening on 127.0.0.1:${tlsPort}; waiting in accept()`);
  assert.match(serverLines[1]!, /^tls: accept\(\) created connection socket #1 for client 127\.0\.0\.1:\d+$/);
  assert.deepEqual(serverLines.slice(2, 5), [
    'tls #1: recv() got 6 bytes "secret"',
    'tls #1: send() 6 bytes "SECRET"',
    'tls #1: the client sent FIN: no more bytes will come',
  ]);
});
