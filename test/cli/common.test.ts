import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError as CommanderArgError } from 'commander';
import { parseBoolean, parsePort } from '../../src/cli/common.js';

describe('CLI value parsers', () => {
  test('parseBoolean reads the value, not just its presence (UPCASE_X=0 is off)', () => {
    const parse = parseBoolean('--udp-allow-low-ports');
    for (const v of ['1', 'true', 'TRUE', 'yes', 'on', ' on ']) assert.equal(parse(v), true, v);
    for (const v of ['0', 'false', 'False', 'no', 'off', '']) assert.equal(parse(v), false, v);
    assert.throws(() => parse('maybe'), (err: unknown) => {
      assert.ok(err instanceof CommanderArgError);
      assert.match(err.message, /`--udp-allow-low-ports`.*`maybe`/);
      return true;
    });
  });

  test('parsePort shows what was typed', () => {
    const parse = parsePort('--port');
    assert.equal(parse('0'), 0);
    assert.equal(parse('65535'), 65535);
    for (const v of ['abc', '', ' ', '65536', '-1', '1e3x', '0x']) {
      assert.throws(() => parse(v), (err: unknown) => err instanceof CommanderArgError && err.message.includes(`got \`${v}\``), v);
    }
  });
});
