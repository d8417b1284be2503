import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ProxyProtocolError } from '../../src/errors.js';
import { parseProxyHeader, PROXY_V1_MAX_LENGTH, PROXY_V2_MAX_LENGTH, ProxyHeaderReader, type ProxyHeader } from '../../src/proxy/header.js';
import { INVALID, largestV2, VALID } from '../fixtures/proxy-headers.js';

const PAYLOAD = Buffer.from('hello, straße\n');

function pick(h: ProxyHeader): Record<string, unknown> {
  const { version, command, family, protocol, source, destination, tlvBytes } = h;
  return { version, command, family, protocol, source, destination, tlvBytes };
}

/** Feeds chunks to a reader; returns the header, the rest, and how many pushes returned null first. */
function feed(chunks: Buffer[]): { header: ProxyHeader | null; rest: Buffer; nulls: number; restChunks: Buffer[] } {
  const reader = new ProxyHeaderReader();
  let nulls = 0;
  for (let i = 0; i < chunks.length; i++) {
    const r = reader.push(chunks[i]!);
    if (r === null) {
      nulls++;
      continue;
    }
    const after = chunks.slice(i + 1);
    return { header: r.header, rest: Buffer.concat([r.rest, ...after]), nulls, restChunks: [r.rest, ...after] };
  }
  return { header: null, rest: Buffer.alloc(0), nulls, restChunks: [] };
}

describe('parseProxyHeader: valid headers (spec examples)', () => {
  for (const f of VALID) {
    test(f.name, () => {
      const h = parseProxyHeader(f.bytes);
      assert.ok(h !== null);
      assert.deepEqual(pick(h), { tlvBytes: 0, ...f.expect });
      assert.equal(h.consumed, f.bytes.length);
    });
  }

  test('the v1 fixtures have the lengths the spec lists (56, 104, 15 and 107 bytes)', () => {
    const lengths = VALID.filter((f) => f.expect.version === 1 && !f.name.includes('compressed')).map((f) => f.bytes.length);
    assert.deepEqual(lengths, [47, 56, 104, 15, 107]);
    assert.equal(PROXY_V1_MAX_LENGTH, 107);
  });

  test('v2 AF_UNIX exposes the socket paths', () => {
    const f = VALID.find((v) => v.expect.family === 'unix')!;
    assert.deepEqual(parseProxyHeader(f.bytes)?.unixPaths, { source: '/run/client.sock', destination: '/run/upcase.sock' });
  });

  test('the largest v2 header (4096 bytes) is accepted', () => {
    const bytes = largestV2();
    assert.equal(bytes.length, PROXY_V2_MAX_LENGTH);
    const h = parseProxyHeader(bytes);
    assert.equal(h?.consumed, 4096);
    assert.deepEqual(h?.source, { address: '127.0.0.2', port: 12345 });
    assert.equal(h?.tlvBytes, 4096 - 16 - 12);
  });

  test('bytes after the header are not part of it (consumed stops at the header)', () => {
    for (const f of VALID) {
      // Even bytes that look like another header or like garbage.
      for (const tail of [PAYLOAD, f.bytes, Buffer.from([0xff, 0x00, 0x0d])]) {
        const h = parseProxyHeader(Buffer.concat([f.bytes, tail]));
        assert.equal(h?.consumed, f.bytes.length, f.name);
      }
    }
  });

  test('accepts a Uint8Array as well as a Buffer', () => {
    const f = VALID[0]!;
    const u8 = new Uint8Array(f.bytes);
    assert.deepEqual(parseProxyHeader(u8)?.source, f.expect.source);
  });
});

describe('parseProxyHeader: invalid headers are refused with a reason', () => {
  for (const f of INVALID) {
    test(`${f.name} → ${f.reason}`, () => {
      assert.throws(
        () => parseProxyHeader(f.bytes),
        (err: unknown) => {
          assert.ok(err instanceof ProxyProtocolError);
          assert.equal(err.code, 'UPCASE_ERR_PROXY_PROTOCOL');
          assert.equal(err.reason, f.reason);
          return true;
        },
      );
    });
  }

  test('garbage is refused at its first byte, without waiting for more', () => {
    assert.throws(() => parseProxyHeader(Buffer.from('G')), { code: 'UPCASE_ERR_PROXY_PROTOCOL', reason: 'missing' });
    assert.throws(() => parseProxyHeader(Buffer.from('PROXX')), { reason: 'missing' });
    assert.throws(() => parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])), { reason: 'missing' });
  });

  test('a v2 length over the limit is refused from the 16-byte fixed part alone', () => {
    assert.throws(() => parseProxyHeader(INVALID.find((f) => f.name.startsWith('v2 length 65535'))!.bytes), { reason: 'too_large' });
  });

  test('error messages name the offending field without echoing unbounded input', () => {
    assert.throws(() => parseProxyHeader(Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n')), /source port "65536"/);
    assert.throws(
      () => parseProxyHeader(Buffer.from('PROXY TCP4 300.1.1.1 192.168.0.11 1 443\r\n')),
      /source "300.1.1.1" is not an IPv4 address/,
    );
    assert.throws(
      () => parseProxyHeader(Buffer.from(`PROXY ${'A'.repeat(90)}\r\n`)),
      (err: Error) => err.message.length < 120,
    );
  });
});

describe('parseProxyHeader: truncated headers are incomplete, not errors', () => {
  test('every proper prefix of every valid header returns null', () => {
    for (const f of VALID) {
      for (let n = 0; n < f.bytes.length; n++) assert.equal(parseProxyHeader(f.bytes.subarray(0, n)), null, `${f.name}, ${n} bytes`);
    }
  });

  test('a v1 line waits for its LF after the CR', () => {
    assert.equal(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r')), null);
  });
});

describe('ProxyHeaderReader: headers split across reads', () => {
  test('split in two at every byte position, with the payload in the same chunk as the header end', () => {
    for (const f of VALID) {
      const whole = Buffer.concat([f.bytes, PAYLOAD]);
      for (let i = 1; i < whole.length; i++) {
        const { header, rest, nulls } = feed([whole.subarray(0, i), whole.subarray(i)]);
        assert.ok(header !== null, `${f.name} split at ${i}`);
        assert.deepEqual(pick(header), { tlvBytes: 0, ...f.expect });
        assert.deepEqual(rest, PAYLOAD, `${f.name} split at ${i}`);
        assert.equal(nulls, i < f.bytes.length ? 1 : 0);
      }
    }
  });

  test('one byte per read', () => {
    for (const f of VALID) {
      const whole = Buffer.concat([f.bytes, PAYLOAD]);
      const chunks = [...whole].map((b) => Buffer.from([b]));
      const { header, rest, nulls } = feed(chunks);
      assert.ok(header !== null, f.name);
      assert.equal(nulls, f.bytes.length - 1);
      assert.deepEqual(rest, PAYLOAD);
    }
  });

  test('header alone: rest is empty', () => {
    const r = new ProxyHeaderReader().push(VALID[0]!.bytes);
    assert.equal(r?.rest.length, 0);
  });

  test('rest is passed on untouched, even when it is binary or another PROXY line', () => {
    const tail = Buffer.concat([Buffer.from('PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n'), Buffer.from([0xc3, 0x00, 0xff])]);
    const r = new ProxyHeaderReader().push(Buffer.concat([VALID[6]!.bytes, tail]));
    assert.deepEqual(r?.rest, tail);
  });

  test('invalid headers split across reads fail on the read that shows the fault', () => {
    for (const f of INVALID) {
      const reader = new ProxyHeaderReader();
      let threw = false;
      for (const b of f.bytes) {
        try {
          assert.equal(reader.push(Buffer.from([b])), null);
        } catch (err) {
          assert.ok(err instanceof ProxyProtocolError, f.name);
          assert.equal(err.reason, f.reason, f.name);
          threw = true;
          break;
        }
      }
      assert.ok(threw, `${f.name}: never refused`);
    }
  });

  test('never buffers more than the largest header, however much arrives', () => {
    const reader = new ProxyHeaderReader();
    // A v2 header of the largest size, fed with a huge trailing chunk.
    const big = Buffer.concat([largestV2(), Buffer.alloc(1 << 20, 0x61)]);
    const r = reader.push(big.subarray(0, 100));
    assert.equal(r, null);
    assert.equal(reader.bufferedBytes, 100);
    const done = reader.push(big.subarray(100));
    assert.equal(done?.header.consumed, 4096);
    assert.equal(done?.rest.length, big.length - 4096);
  });

  test('property: any chunking gives the same result as one read', () => {
    const headers = fc.constantFrom(...VALID.map((f) => f.bytes));
    fc.assert(
      fc.property(headers, fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(), { maxLength: 8 }), (header, tail, cuts) => {
        const whole = Buffer.concat([header, tail]);
        const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const p of [...points, whole.length]) {
          chunks.push(whole.subarray(at, p));
          at = p;
        }
        const { header: h, rest } = feed(chunks.filter((c) => c.length > 0));
        assert.deepEqual(h === null ? null : pick(h), pick(parseProxyHeader(whole)!));
        assert.deepEqual(rest, Buffer.from(tail));
      }),
    );
  });

  test('property: arbitrary bytes give a header, null, or a ProxyProtocolError — nothing else', () => {
    const prefixes = fc.constantFrom(Buffer.alloc(0), Buffer.from('PROXY '), Buffer.from('PROXY TCP4 '), VALID[6]!.bytes.subarray(0, 12));
    fc.assert(
      fc.property(prefixes, fc.uint8Array({ maxLength: 300 }), (prefix, bytes) => {
        try {
          const h = parseProxyHeader(Buffer.concat([prefix, bytes]));
          if (h !== null) assert.ok(h.consumed <= prefix.length + bytes.length);
        } catch (err) {
          assert.ok(err instanceof ProxyProtocolError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
