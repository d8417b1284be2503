import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { COMMAND_OPTIONS, DOCS_WITH_OPTION_TABLES } from '../../src/cli/tables.js';
import { fillOptionTables } from '../../src/options/docs.js';
import { ROOT } from '../helpers/serve.js';

test('the option tables in the docs are the ones the code generates (npm run docs:options)', () => {
  const stale: string[] = [];
  const found = new Set<string>();
  for (const path of DOCS_WITH_OPTION_TABLES) {
    const text = readFileSync(`${ROOT}${path}`, 'utf8');
    for (const m of text.matchAll(/<!-- options:([\w-]+) -->/g)) found.add(m[1]!);
    if (fillOptionTables(text, COMMAND_OPTIONS) !== text) stale.push(path);
  }
  assert.deepEqual(stale, [], `option tables out of date in ${stale.join(', ')}: run \`npm run docs:options\` and commit the result`);
  assert.deepEqual([...found].sort(), Object.keys(COMMAND_OPTIONS).sort(), 'every command has its table in the docs');
});

test('a table is rendered from its rows: a changed default shows up as a difference', () => {
  const text = '<!-- options:ping -->\n<!-- /options:ping -->';
  const filled = fillOptionTables(text, COMMAND_OPTIONS);
  assert.match(
    filled,
    /\| `-W, --timeout <sec>` \| `UPCASE_TIMEOUT` \| `1` \| a number of seconds >= 0\.001 \| seconds to wait for each reply \|/,
  );
  const changed = { ...COMMAND_OPTIONS, ping: { ...COMMAND_OPTIONS.ping, timeout: { ...COMMAND_OPTIONS.ping!.timeout!, default: 2 } } };
  assert.notEqual(fillOptionTables(filled, changed), filled);
});
