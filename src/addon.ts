/**
 * Reading the constants a native addon exports (native/napi_constants.h): the C
 * enums are the one definition, and TypeScript looks each value up by name, so a
 * reordered or renamed constant is found when the addon loads, not as a wrong
 * close reason or a counter in the wrong metric.
 */

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
