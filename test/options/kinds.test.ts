import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { host, parseBooleanText, port, seconds } from '../../src/options/kinds.js';

describe('option kinds: text from the command line or the environment', () => {
  test('parseBooleanText reads the value, not just its presence (UPCASE_X=0 is off)', () => {
    for (const v of ['1', 'true', 'TRUE', 'yes', 'on', ' on ']) assert.equal(parseBooleanText(v), true, v);
    for (const v of ['0', 'false', 'False', 'no', 'off']) assert.equal(parseBooleanText(v), false, v);
    for (const v of ['maybe', '', '2']) assert.equal(parseBooleanText(v), undefined, v);
  });

  test('a port error shows what was typed', () => {
    const kind = port();
    const parse = (text: string): number => kind.check('port', kind.fromText(text));
    assert.equal(parse('0'), 0);
    assert.equal(parse('65535'), 65535);
    for (const v of ['abc', '', ' ', '65536', '-1', '1e3x', '0x', '0x10', '1e3', '80.0', '+80']) {
      assert.throws(
        () => parse(v),
        (err: unknown) => err instanceof InvalidArgumentError && String(err.value) === v,
        v,
      );
    }
  });

  test('durations are seconds, with fractions and units', () => {
    const kind = seconds({ min: 0 });
    const parse = (text: string): number => kind.check('timeout', kind.fromText(text));
    assert.equal(parse('1.5'), 1.5);
    assert.equal(parse('.5'), 0.5);
    assert.equal(parse('500ms'), 0.5);
    assert.equal(parse('1.5s'), 1.5);
    assert.equal(parse('2m'), 120);
    assert.equal(parse('1h'), 3600);
    assert.throws(() => parse('-1'), { code: 'UPCASE_ERR_INVALID_ARG', expected: 'a non-negative number of seconds', value: -1 });
    assert.throws(() => parse('1 fortnight'), { value: '1 fortnight' });
  });

  test('an IPv6 literal is taken with or without brackets', () => {
    const kind = host();
    assert.equal(kind.check('host', '[::1]'), '::1');
    assert.equal(kind.check('host', '::1'), '::1');
    assert.equal(kind.check('host', '[fe80::1%lo]'), 'fe80::1%lo');
    assert.equal(kind.check('host', 'example.com'), 'example.com');
    for (const bad of ['', 'a b', '[::1', '[example.com]'])
      assert.throws(() => kind.check('host', bad), { option: 'host', value: bad }, bad);
  });
});
