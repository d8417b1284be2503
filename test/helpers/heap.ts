import v8 from 'node:v8';

/**
 * How many objects this process's heap holds of each of `names` (constructor names), from a
 * heap snapshot: what a test of memory per connection can assert without timing anything.
 */
export async function countObjects(names: readonly string[]): Promise<Record<string, number>> {
  let text = '';
  for await (const chunk of v8.getHeapSnapshot()) text += chunk;
  const snapshot = JSON.parse(text) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const nameAt = fields.indexOf('name');
  const typeAt = fields.indexOf('type');
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf('object');
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    if (snapshot.nodes[i + typeAt] !== objectType) continue;
    const name = snapshot.strings[snapshot.nodes[i + nameAt]!]!;
    if (name in counts) counts[name]!++;
  }
  return counts;
}
