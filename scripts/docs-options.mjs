#!/usr/bin/env node
// Rewrites the option tables in the docs from the commands' option tables
// (between <!-- options:NAME --> and <!-- /options:NAME -->). Reads the built dist/.
// Usage: npm run docs:options   (builds first)
import { readFileSync, writeFileSync } from 'node:fs';
import { COMMAND_OPTIONS, DOCS_WITH_OPTION_TABLES } from '../dist/cli/tables.js';
import { fillOptionTables } from '../dist/options/docs.js';

const root = new URL('..', import.meta.url);
for (const path of DOCS_WITH_OPTION_TABLES) {
  const url = new URL(path, root);
  const text = readFileSync(url, 'utf8');
  const filled = fillOptionTables(text, COMMAND_OPTIONS);
  if (filled !== text) {
    writeFileSync(url, filled);
    console.log(`updated ${path}`);
  }
}
