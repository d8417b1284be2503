/** What this CPU offers the C codec, from /proc/cpuinfo: which block paths it should have. */
import { readFileSync } from 'node:fs';

const flags = new Set(/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/) ?? []);

/** The C codec's paths this CPU can run, narrowest first (native/codec.h). */
export function expectedCodecPaths(): string[] {
  if (process.arch === 'arm64') return ['scalar', 'neon'];
  if (process.arch !== 'x64') return ['scalar'];
  const avx2 = ['avx2', 'bmi1', 'popcnt'].every((f) => flags.has(f));
  const avx512 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512vbmi', 'avx512_vbmi2', 'bmi2'].every((f) => flags.has(f));
  return ['scalar', 'sse2', ...(avx2 ? ['avx2'] : []), ...(avx512 ? ['avx512'] : [])];
}
