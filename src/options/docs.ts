import { resolveTable, type ResolvedRow, type Table } from './table.js';

/**
 * The docs' option tables, rendered from the option tables: a Markdown table per
 * command, kept between `<!-- options:NAME -->` and `<!-- /options:NAME -->` in the
 * docs (`npm run docs:options` rewrites them; a test fails when they differ).
 */

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function code(text: string): string {
  return `\`${cell(text)}\``;
}

function rowLine(row: ResolvedRow): string {
  const variable = row.kind.arg === undefined ? `${row.env}=true\\|false` : row.env;
  const value = row.kind.arg === undefined ? 'switch' : cell(row.kind.expected);
  // A value in code; words (`none`, `the rate limit, at least 1`) as they are.
  const shown =
    row.defaultShown === undefined
      ? ''
      : /^[^\s`]+$/.test(row.defaultShown) && !/^(off|on|none)$/.test(row.defaultShown)
        ? code(row.defaultShown)
        : cell(row.defaultShown);
  const meaning = row.docs === undefined ? row.help : `${row.help}; ${row.docs}`;
  return `| ${code(row.flags)} | \`${variable}\` | ${shown} | ${value} | ${cell(meaning)} |`;
}

export function renderOptionsTable(table: Table): string {
  const lines = ['| flag | variable | default | value | meaning |', '|---|---|---|---|---|'];
  for (const row of resolveTable(table)) lines.push(rowLine(row));
  return lines.join('\n');
}

/**
 * `text` with every `<!-- options:NAME -->` … `<!-- /options:NAME -->` block filled
 * from `tables[NAME]`. Throws on a marker naming no table.
 */
export function fillOptionTables(text: string, tables: Readonly<Record<string, Table>>): string {
  return text.replace(/(<!-- options:([\w-]+) -->\n)[\s\S]*?(<!-- \/options:\2 -->)/g, (_m, open: string, name: string, close: string) => {
    const table = tables[name];
    if (table === undefined) throw new Error(`no option table named ${name}`);
    return `${open}${renderOptionsTable(table)}\n${close}`;
  });
}
