import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Loading the optional native addons (built by scripts/build-native.mjs at install):
 * `upcase_udp` (UDP transport), `upcase_tcp` (TCP transport), `upcase_codec` (the C
 * codec for the TypeScript codec's large chunks) and `upcase_bench` (the load generator's
 * engine thread). Each is optional: without it upcase runs on node:dgram, net.Socket
 * streams, the TypeScript codec or the JavaScript bench engine. When one is missing,
 * {@link AddonUnavailable} says why, as data, so that `upcase serve` can say it.
 */

/** The addons, by file name (without `.node`). */
export type AddonName = 'upcase_udp' | 'upcase_tcp' | 'upcase_codec' | 'upcase_bench';

/**
 * Why an addon is not used:
 * - `disabled`: `UPCASE_NATIVE=0` is set;
 * - `platform`: the addon does not exist for this OS (the transports are Linux-only);
 * - `not-built`: there is no file (the install could not build it: `detail` says why when
 *   the build recorded it, e.g. no C compiler);
 * - `load-error`: the file is there but did not load (`detail`: the loader's message);
 * - `refused`: it loaded, but refused the case tables (a Unicode it cannot handle).
 */
export interface AddonUnavailable {
  readonly reason: 'disabled' | 'platform' | 'not-built' | 'load-error' | 'refused';
  readonly detail: string;
}

export type AddonStatus<T> =
  | { readonly binding: T; readonly unavailable: null }
  | { readonly binding: null; readonly unavailable: AddonUnavailable };

/**
 * Where the addons are: `UPCASE_NATIVE_DIR` when set (e.g. the sanitizer build of
 * `npm run test:sanitize`), else build/Release in the package.
 */
export function addonDir(): string {
  const dir = process.env.UPCASE_NATIVE_DIR;
  return dir !== undefined && dir !== '' ? resolve(dir) : fileURLToPath(new URL('../build/Release/', import.meta.url));
}

/** What the build recorded for an addon it could not build (native-build.json), if it did. */
function buildReason(dir: string, name: AddonName): string | undefined {
  try {
    const record = JSON.parse(readFileSync(join(dir, 'native-build.json'), 'utf8')) as {
      addons?: Record<string, { built?: boolean; reason?: string }>;
    };
    const entry = record.addons?.[name];
    return entry?.built === false && typeof entry.reason === 'string' ? entry.reason : undefined;
  } catch {
    return undefined;
  }
}

/** Loads one addon (every call loads anew: callers cache). `linuxOnly` addons are not tried elsewhere. */
export function loadAddon<T>(name: AddonName, linuxOnly: boolean): AddonStatus<T> {
  const fail = (reason: AddonUnavailable['reason'], detail: string): AddonStatus<T> => ({ binding: null, unavailable: { reason, detail } });
  if (process.env.UPCASE_NATIVE === '0') return fail('disabled', 'UPCASE_NATIVE=0');
  if (linuxOnly && process.platform !== 'linux') return fail('platform', `Linux only (this is ${process.platform})`);
  const dir = addonDir();
  const file = join(dir, `${name}.node`);
  try {
    return { binding: createRequire(import.meta.url)(file) as T, unavailable: null };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND') return fail('not-built', buildReason(dir, name) ?? `no such file in ${dir}`);
    return fail('load-error', e.message.split('\n')[0] ?? String(err));
  }
}

/** What to do about it, for a person: the fix that works for a project that depends on upcase. */
export function addonFix(unavailable: AddonUnavailable): string {
  switch (unavailable.reason) {
    case 'disabled':
      return 'unset UPCASE_NATIVE to use them';
    case 'platform':
      return 'they exist for Linux only';
    case 'refused':
      return 'upgrade upcase';
    case 'not-built':
      if (/UPCASE_NATIVE=0/.test(unavailable.detail)) return 'run `npm rebuild upcase` without UPCASE_NATIVE=0';
      if (/no C compiler/.test(unavailable.detail)) return 'install a C compiler (e.g. gcc) and run `npm rebuild upcase`';
      return 'run `npm rebuild upcase` (it says what fails)';
    default:
      return 'run `npm rebuild upcase` (it says what fails)';
  }
}

// ---------------------------------------------------------------- constants

// The constants an addon exports (native/napi_constants.h): the C enums are the one
// definition, and TypeScript looks each value up by name, so a reordered or renamed
// constant is found when the addon loads, not as a wrong close reason or a counter in
// the wrong metric.

/**
 * `exported[table]` as `{ name: value }` for every name in `names`: each present,
 * a non-negative integer, no two alike, and below `exported[table].length` when
 * `bounded`. Throws an Error naming the first problem; the loaders
 * catch it and fall back to the Node.js transport (never seen by callers).
 */
export function readNamedInts<K extends string>(
  exported: unknown,
  table: string,
  names: readonly K[],
  options: { bounded?: boolean } = {},
): Record<K, number> & { length?: number } {
  const object = (exported as Record<string, unknown> | null | undefined)?.[table];
  if (object === null || typeof object !== 'object') throw new Error(`the addon exports no \`${table}\``);
  const values = object as Record<string, unknown>;
  const result: Record<string, number> = {};
  const seen = new Map<number, string>();
  const limit = options.bounded === true ? values.length : undefined;
  if (options.bounded === true && !isIndex(limit)) throw new Error(`\`${table}.length\` is missing`);
  for (const name of names) {
    const value = values[name];
    if (!isIndex(value)) throw new Error(`\`${table}.${name}\` is missing (got ${String(value)})`);
    if (limit !== undefined && value >= (limit as number)) {
      throw new Error(`\`${table}.${name}\` is ${value}, past \`${table}.length\` ${String(limit)}`);
    }
    const twin = seen.get(value);
    if (twin !== undefined) throw new Error(`\`${table}.${name}\` and \`${table}.${twin}\` are both ${value}`);
    seen.set(value, name);
    result[name] = value;
  }
  if (limit !== undefined) result.length = limit as number;
  return result as Record<K, number> & { length?: number };
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
