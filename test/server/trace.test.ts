import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UpcaseServer } from '../../src/server/server.js';
import type { TraceEvent } from '../../src/trace.js';
import { TcpPeer, UdpPeer } from '../helpers/roundtrip.js';
import { delay, within } from '../helpers/wait.js';

// The server's trace hooks as a library user sees them: structured events, in
// the order of the textbook's figures, on the transports that can report them.

/** Events without times and payload copies, for comparison. */
function collect(): { events: Array<Record<string, unknown>>; tracer: (e: TraceEvent) => void } {
  const events: Array<Record<string, unknown>> = [];
  return {
    events,
    tracer: (e) => {
      const copy: Record<string, unknown> = { ...e };
      // The data may be uppercased in place after the call: copy it now, as text.
      if ('data' in e) copy.data = Buffer.from(e.data).toString();
      if ('client' in e) copy.client = { address: e.client.address, port: e.client.port };
      delete copy.ms;
      events.push(copy);
    },
  };
}

test('a tracer selects the stream and dgram transports and reports each step in order', async (t) => {
  const { events, tracer } = collect();
  const server = new UpcaseServer({ host: '127.0.0.1', port: 0 }, { tracer });
  t.after(() => server.close());
  const { port } = await server.listen();
  assert.equal(server.tcpTransport, 'stream');
  assert.equal(server.udpTransport, 'dgram');
  const until = (what: string, done: () => boolean): Promise<void> =>
    within(
      5000,
      what,
      (async () => {
        while (!done()) await delay(10);
      })(),
    );

  const client = await TcpPeer.connect(port);
  const clientPort = client.socket.localPort;
  client.socket.end('straße');
  assert.equal((await client.waitForClose()).toString(), 'STRASSE');
  await until('the closed event', () => events.some((e) => e.type === 'closed'));

  const udp = await UdpPeer.open();
  t.after(() => udp.close());
  await udp.send('hi', port);
  assert.equal((await udp.next()).toString(), 'HI');
  await until('the sendto event', () => events.some((e) => e.type === 'sendto'));

  const tcp = events.filter((e) => e.id === 1 || e.type === 'accept');
  assert.deepEqual(tcp, [
    { type: 'accept', transport: 'tcp', id: 1, client: { address: '127.0.0.1', port: clientPort } },
    { type: 'recv', transport: 'tcp', id: 1, data: 'straße' },
    { type: 'send', transport: 'tcp', id: 1, data: 'STRASSE' },
    { type: 'peer-fin', transport: 'tcp', id: 1 },
    { type: 'closed', transport: 'tcp', id: 1, bytesIn: 7, bytesOut: 7, error: undefined },
  ]);
  assert.deepEqual(
    events.filter((e) => e.type === 'listening'),
    [
      { type: 'listening', transport: 'tcp', local: { address: '127.0.0.1', port } },
      { type: 'listening', transport: 'udp', local: { address: '127.0.0.1', port } },
    ],
  );
  const datagrams = events.filter((e) => e.type === 'recvfrom' || e.type === 'sendto').map((e) => [e.type, e.data]);
  assert.deepEqual(datagrams, [
    ['recvfrom', 'hi'],
    ['sendto', 'HI'],
  ]);
});

test('a tracer with a native transport asked for by name is refused', () => {
  const tracer = (): void => {};
  assert.throws(() => new UpcaseServer({ tcpTransport: 'native' }, { tracer }), { code: 'UPCASE_ERR_INVALID_ARG' });
  assert.throws(() => new UpcaseServer({ udpTransport: 'native' }, { tracer }), { code: 'UPCASE_ERR_INVALID_ARG' });
});
