import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTraceWriter, escapeBytes, payload, TRACE_PAYLOAD_BYTES } from '../src/trace.js';

// The trace's payload rendering: JSON-style escapes, bytes that are not UTF-8
// as \xNN, cut at TRACE_PAYLOAD_BYTES without splitting a character into garbage.

test('text, quotes, backslashes and control characters are escaped as in JSON', () => {
  assert.equal(escapeBytes(Buffer.from('straße "q" \\ \n\r\t\u0000')), 'straße \\"q\\" \\\\ \\n\\r\\t\\u0000');
});

test('bytes that are not well-formed UTF-8 show as \\xNN, the characters around them as text', () => {
  assert.equal(escapeBytes(Buffer.from([0x61, 0xff, 0xc3, 0xa9, 0xc3, 0x62, 0xed, 0xa0, 0x80])), 'a\\xffé\\xc3b\\xed\\xa0\\x80');
});

test('a payload is cut at 40 bytes; a character cut in two shows its bytes, not a replacement character', () => {
  assert.equal(payload(Buffer.from('hello')), '5 bytes "hello"');
  assert.equal(payload(Buffer.from('x')), '1 byte "x"');
  const long = Buffer.from(`${'a'.repeat(TRACE_PAYLOAD_BYTES - 1)}é and more`);
  assert.equal(payload(long), `${long.length} bytes "${'a'.repeat(39)}\\xc3…" (first 40 shown)`);
});

test('the writer stamps each line with milliseconds since its first event', () => {
  const lines: string[] = [];
  const times = [1000, 1000.5, 1012.25];
  const tracer = createTraceWriter((line) => lines.push(line), { now: () => times.shift()! });
  tracer({ type: 'listening', transport: 'tcp', local: { address: '::', port: 12000 } });
  tracer({ type: 'accept', transport: 'tcp', id: 1, client: { address: '::1', port: 40000 } });
  tracer({ type: 'peer-fin', transport: 'tcp', id: 1 });
  assert.deepEqual(lines, [
    '[0.000 ms] tcp: welcoming socket listening on [::]:12000; waiting in accept()\n',
    '[0.500 ms] tcp: accept() created connection socket #1 for client [::1]:40000\n',
    '[12.250 ms] tcp #1: the client sent FIN: no more bytes will come\n',
  ]);
});
