// deploy/kubernetes/bench/bench-job.yaml: parsed, checked against the Service it loads, and its
// bench command run for real (shortened, against a local server) through the documented merge.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startServer } from '../../src/server/server.js';
import { runCli } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field
async function manifest(path: string): Promise<any> {
  const docs = parseAllDocuments(await readFile(join(root, path), 'utf8'));
  assert.equal(docs.length, 1, path);
  assert.deepEqual(docs[0]!.errors, [], path);
  return docs[0]!.toJS();
}

describe('deploy/kubernetes/bench/bench-job.yaml', () => {
  it('is an Indexed Job of N pods at once, never retried, running bench against the upcase Service', async () => {
    const job = await manifest('deploy/kubernetes/bench/bench-job.yaml');
    const service = await manifest('deploy/kubernetes/service.yaml');
    assert.equal(job.apiVersion, 'batch/v1');
    assert.equal(job.kind, 'Job');
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.ok(job.spec.completions >= 2);
    assert.equal(job.spec.parallelism, job.spec.completions, 'all pods at the same time');
    assert.equal(job.spec.backoffLimit, 0);
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');
    const [container] = job.spec.template.spec.containers;
    assert.deepEqual(container.command, ['node', 'bin/upcase.js', 'bench']);
    const args = container.args as string[];
    const flag = (name: string): string => args[args.indexOf(name) + 1]!;
    assert.equal(flag('--host'), service.metadata.name);
    assert.ok(
      service.spec.ports.some((p: { port: number; protocol: string }) => String(p.port) === flag('--port') && p.protocol === 'TCP'),
    );
    assert.ok(args.includes('--json'));
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  });

  it("its bench command runs (shortened, against a local server), and the documented merge of the pods' logs works", async () => {
    const job = await manifest('deploy/kubernetes/bench/bench-job.yaml');
    const [container] = job.spec.template.spec.containers;
    const server = await startServer({ host: '127.0.0.1', port: 0, udp: false });
    const dir = await mkdtemp(join(tmpdir(), 'upcase-job-'));
    try {
      // The pod's args as written, then overrides (the last value of a flag wins): here, and short.
      const local = ['--host', '127.0.0.1', '--port', String(server.address().port), '--duration', '0.5', '--warmup', '0.1', '-c', '2'];
      const pods = await Promise.all([0, 1].map(() => runCli(['bench', ...container.args, ...local], { timeoutMs: 30_000 })));
      for (const p of pods) assert.equal(p.code, 0, p.stderr);
      // `kubectl logs -l job-name=…` concatenates the pods' output into one file.
      const logs = join(dir, 'runs.jsonl');
      await writeFile(logs, pods.map((p) => p.stdout.toString()).join(''));
      const merged = await runCli(['bench', 'merge', '--json', logs]);
      assert.equal(merged.code, 0, merged.stderr);
      const m = JSON.parse(merged.stdout.toString());
      assert.equal(m.merged.runs.length, 2);
      assert.equal(m.connections, 4);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
