/** What this CPU offers the C codec, from /proc/cpuinfo: which block paths it should have. */
import { readFileSync } from 'node:fs';

let flags: Set<string> | null | undefined;

/** The CPU's flags, read on first use; null where there is no /proc/cpuinfo (not Linux). */
function cpuFlags(): Set<string> | null {
  if (flags !== undefined) return flags;
  try {
    flags = new Set(/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/) ?? []);
  } catch {
    flags = null;
  }
  return flags;
}

/** Why the codec paths this CPU should have cannot be known here (a test's skip reason), or false. */
export function codecPathsUnknown(): string | false {
  if (process.arch !== 'x64') return false;
  return cpuFlags() === null ? `no /proc/cpuinfo on ${process.platform}: the CPU's codec paths cannot be checked` : false;
}

/** The C codec's paths this CPU can run, narrowest first (native/codec.h). */
export function expectedCodecPaths(): string[] {
  if (process.arch === 'arm64') return ['scalar', 'neon'];
  if (process.arch !== 'x64') return ['scalar'];
  const have = cpuFlags();
  if (have === null) throw new Error(codecPathsUnknown() || 'no CPU flags');
  const avx2 = ['avx2', 'bmi1', 'popcnt'].every((f) => have.has(f));
  const avx512 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512vbmi', 'avx512_vbmi2', 'bmi2'].every((f) => have.has(f));
  return ['scalar', 'sse2', ...(avx2 ? ['avx2'] : []), ...(avx512 ? ['avx512'] : [])];
}
