// Writes the TypeScript codec's case tables (src/codec/fast.ts caseTables()) as the files the
// C codec's stand-alone tools read (native/codec_tools.h): table.bin, offsets.bin, bytes.bin.
// Needs the build (dist/).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caseTables } from '../dist/codec/fast.js';

export function writeCaseTables(dir) {
  const { table, specialOffsets, specialBytes } = caseTables();
  writeFileSync(join(dir, 'table.bin'), table);
  writeFileSync(join(dir, 'offsets.bin'), specialOffsets);
  writeFileSync(join(dir, 'bytes.bin'), specialBytes);
}
