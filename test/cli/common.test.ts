import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError as CommanderArgError } from 'commander';
import { parseBooleanEnv, parsePort } from '../../src/cli/common.js';

describe('CLI value parsers', () => {
  test('parseBooleanEnv reads the value, not just its presence (UPCASE_X=0 is off)', () => {
    for (const v of ['1', 'true', 'TRUE', 'yes', 'on', ' on ']) assert.equal(parseBooleanEnv(v), true, v);
    for (const v of ['0', 'false', 'False', 'no', 'off']) assert.equal(parseBooleanEnv(v), false, v);
    for (const v of ['maybe', '', '2']) assert.equal(parseBooleanEnv(v), undefined, v);
  });

  test('parsePort shows what was typed', () => {
    const parse = parsePort('--port');
    assert.equal(parse('0'), 0);
    assert.equal(parse('65535'), 65535);
    for (const v of ['abc', '', ' ', '65536', '-1', '1e3x', '0x', '0x10', '1e3', '80.0', '+80']) {
      assert.throws(
        () => parse(v),
        (err: unknown) => err instanceof CommanderArgError && err.message.includes(`got \`${v}\``),
        v,
      );
    }
  });
});
