import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';

const TABLE = fileURLToPath(new URL('../fixtures/unicode-table.py', import.meta.url));

interface PythonTable {
  version: string;
  isUnassigned: (cp: number) => boolean;
  upper: Map<number, number[]>;
}

/** One python3 call prints its whole view of Unicode (fixtures/unicode-table.py). */
async function pythonTable(): Promise<PythonTable> {
  const { stdout } = await promisify(execFile)('python3', [TABLE], { maxBuffer: 16 * 1024 * 1024 });
  let version = '';
  const unassigned = new Uint8Array(0x110000);
  const upper = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const [kind, a, b] = line.split(' ');
    if (kind === 'version') version = a!;
    else if (kind === 'cn') {
      const [from, to] = a!.split('-').map((x) => parseInt(x, 16));
      unassigned.fill(1, from!, to! + 1);
    } else if (kind === 'up')
      upper.set(
        parseInt(a!, 16),
        b!.split(',').map((x) => parseInt(x, 16)),
      );
  }
  return { version, isUnassigned: (cp) => unassigned[cp] === 1, upper };
}

const hex = (cp: number): string => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

test('every code point: upcase() of its UTF-8 equals Python chr(c).upper()', async (t) => {
  const py = await pythonTable();
  assert.match(py.version, /^\d+\.\d+\.\d+$/);
  assert.ok(py.upper.size > 1000, `Python's table has only ${py.upper.size} mappings`);
  const nodeUnassigned = /\p{Cn}/u;

  let compared = 0;
  let excludedUnassigned = 0; // source unassigned in Python or in Node
  const excludedNewTarget: string[] = []; // assigned in both, but Node maps it to a character Python does not have yet
  const mismatches: string[] = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp === 0xd800) cp = 0xe000; // surrogates are not characters; see the byte tests for ED A0 80 etc.
    const ch = String.fromCodePoint(cp);
    const ours = upcase(Buffer.from(ch, 'utf8'));
    const mapped = py.upper.get(cp);
    const expected = Buffer.from(mapped === undefined ? ch : String.fromCodePoint(...mapped), 'utf8');
    compared++;
    if (ours.equals(expected)) continue;
    if (py.isUnassigned(cp) || nodeUnassigned.test(ch)) {
      excludedUnassigned++;
      continue;
    }
    const ourCps = [...ours.toString('utf8')].map((c) => c.codePointAt(0)!);
    const detail = `${hex(cp)}: ours ${ourCps.map(hex).join(' ')}, Python ${[...expected.toString('utf8')].map((c) => hex(c.codePointAt(0)!)).join(' ')}`;
    if (ourCps.some((c) => py.isUnassigned(c))) excludedNewTarget.push(detail);
    else mismatches.push(detail);
  }

  t.diagnostic(
    `Node ${process.versions.node}: Unicode ${process.versions.unicode} (ICU ${process.versions.icu}); Python unicodedata ${py.version}`,
  );
  t.diagnostic(`${compared} code points compared; ${excludedUnassigned} differ because the code point is unassigned in one version`);
  t.diagnostic(
    `${excludedNewTarget.length} differ because Node maps to a character newer than Python's Unicode: ${excludedNewTarget.join('; ')}`,
  );
  assert.equal(compared, 0x110000 - 0x800);
  assert.deepEqual(
    mismatches.slice(0, 20),
    [],
    `${mismatches.length} code points differ from Python for reasons other than Unicode version`,
  );
});
