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

/** This process's heap, from a snapshot: how many nodes of each type (object, closure, array, …) and their bytes. */
export async function heapCensus(): Promise<{ nodes: Record<string, number>; bytes: number }> {
  let text = '';
  for await (const chunk of v8.getHeapSnapshot()) text += chunk;
  const snapshot = JSON.parse(text) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf('type');
  const sizeAt = fields.indexOf('self_size');
  const types = snapshot.snapshot.meta.node_types[0];
  const nodes: Record<string, number> = {};
  let bytes = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    nodes[type] = (nodes[type] ?? 0) + 1;
    bytes += snapshot.nodes[i + sizeAt]!;
  }
  return { nodes, bytes };
}
