import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVER_OPTIONS } from '../../src/options.js';
import { resolveTable } from '../../src/options/table.js';
import { ROOT } from '../helpers/serve.js';

// docs/security.md explains each limit and why its default was chosen, in a table written by hand.
// The option table (src/options.ts) is the one definition: this keeps the prose's flags, variables,
// library names and defaults true to it, and keeps every limit in the table.

const LIMITS = [
  'maxConnections',
  'maxConnectionsPerSource',
  'idleTimeout',
  'writeTimeout',
  'tlsHandshakeTimeout',
  'proxyHeaderTimeout',
  'udpRateLimit',
  'udpAllowLowPorts',
];

function limitsTable(): string[][] {
  const text = readFileSync(`${ROOT}docs/security.md`, 'utf8');
  const section = text.slice(text.indexOf('## Limits and their defaults'));
  const body = section.slice(0, section.indexOf('\n## ', 4));
  return body
    .split('\n')
    .filter((line) => line.startsWith('| `--'))
    .map((line) =>
      line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
}

test('docs/security.md: every limit, with the flag, variable, library name and default of the option table', () => {
  const rows = resolveTable(SERVER_OPTIONS);
  const documented = new Set<string>();
  for (const [names, shown] of limitsTable()) {
    const flag = /`(--[a-z-]+)`/.exec(names)![1];
    const row = rows.find((r) => r.flag === flag);
    assert.ok(row, `docs/security.md names ${flag}, which upcase serve does not have`);
    documented.add(row.name);
    assert.match(names, new RegExp(`\`${row.env}\``), `${flag}: its variable is ${row.env}`);
    assert.match(names, new RegExp(`\`${row.name}\``), `${flag}: its library option is ${row.name}`);
    if (typeof row.default === 'number') {
      const value = Number(/^[\d.]+/.exec(shown)?.[0]);
      assert.equal(value, row.default, `${flag}: the default is ${row.default}, the docs say "${shown}"`);
    } else {
      assert.ok(shown.startsWith(row.defaultShown!), `${flag}: the default is ${row.defaultShown}, the docs say "${shown}"`);
    }
  }
  assert.deepEqual(
    LIMITS.filter((name) => !documented.has(name)),
    [],
    'limits missing from docs/security.md',
  );
});
