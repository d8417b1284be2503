import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build, decodeFromCompressedBase64 } from 'hdr-histogram-js';
import { mergeResults } from '../../src/bench/merge.js';
import type { BenchResult } from '../../src/bench/run.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { runCli } from '../helpers/cli.js';

/** The oracle: the union of the runs' histograms with hdr-histogram-js's pure-JS build, percentiles clamped to the exact max. */
function unionPercentiles(runs: BenchResult[]): Record<string, number> {
  const union = build({
    bitBucketSize: 64,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (const r of runs) union.add(decodeFromCompressedBase64(r.histogram.encoded, 64, false));
  const max = Math.max(...runs.map((r) => r.histogram.max!));
  const min = Math.min(...runs.map((r) => r.histogram.min!));
  const at = (p: number): number => Math.round(Math.min(max, Math.max(min, union.getValueAtPercentile(p)))) / 1000;
  return { count: union.totalCount, p50: at(50), p90: at(90), p99: at(99), p99_9: at(99.9) };
}

describe('upcase bench merge', () => {
  let server: UpcaseServer;
  let dir: string;
  const runs: BenchResult[] = [];
  const files: string[] = [];
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, udpRateLimit: 0 });
    dir = await mkdtemp(join(tmpdir(), 'upcase-merge-'));
    const port = String(server.address().port);
    // Three bench processes at once against one server, as three machines would.
    const outs = await Promise.all(
      [1, 2, 3].map((c) =>
        runCli(['bench', '-p', port, '-c', String(c), '--threads', '1', '-d', '3', '--warmup', '0.5', '--json'], { timeoutMs: 30_000 }),
      ),
    );
    for (const [i, out] of outs.entries()) {
      assert.equal(out.code, 0, out.stderr);
      runs.push(JSON.parse(out.stdout.toString()) as BenchResult);
      files.push(join(dir, `run-${i}.json`));
      await writeFile(files[i]!, out.stdout);
    }
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('three concurrent runs: counts add up, min = min, max = max, percentiles = those of the union of their histograms', async () => {
    const out = await runCli(['bench', 'merge', '--json', ...files]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, '');
    const m = JSON.parse(out.stdout.toString());
    const sum = (f: (r: BenchResult) => number): number => runs.reduce((n, r) => n + f(r), 0);
    assert.equal(
      m.requests.measured,
      sum((r) => r.requests.measured),
    );
    assert.equal(
      m.requests.sent,
      sum((r) => r.requests.sent),
    );
    assert.equal(
      m.latency.count,
      sum((r) => r.latency.count),
    );
    assert.equal(m.connections, 6);
    assert.equal(m.latency.max, Math.max(...runs.map((r) => r.latency.max!)));
    assert.equal(m.latency.min, Math.min(...runs.map((r) => r.latency.min!)));
    const oracle = unionPercentiles(runs);
    assert.deepEqual(
      { count: m.latency.count, p50: m.latency.p50, p90: m.latency.p90, p99: m.latency.p99, p99_9: m.latency.p99_9 },
      oracle,
    );
    assert.ok(m.latency.p99_9 <= m.latency.max);
    assert.equal(m.throughput.requestsPerSec, Math.round(sum((r) => r.throughput.requestsPerSec) * 10) / 10);
    assert.deepEqual(m.merged.flagged, []);
    assert.ok(m.merged.common !== null && m.merged.common.end > m.merged.common.start);

    // The human form, and a merge of merges is the same merge.
    const human = await runCli(['bench', 'merge', ...files]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout.toString(), /\n {2}merged {6}3 runs, [\d.]+ s shared by every run; rates are the runs' rates added\n/);
    const again = await mergeResults([await mergeResults(runs.slice(0, 2)), runs[2]]);
    assert.deepEqual(again.latency, m.latency);
  });

  test('a run of another workload is refused, naming what differs', async () => {
    const other = { ...runs[0]!, size: 128 };
    await assert.rejects(mergeResults([runs[0], other]), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: /run 2 is another workload than run 1 \(size differ/,
    });
    const file = join(dir, 'udp.json');
    await writeFile(file, `${JSON.stringify({ ...runs[1]!, transport: 'udp' })}\n`);
    const out = await runCli(['bench', 'merge', files[0]!, file]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^upcase bench merge: run 2 is another workload than run 1 \(transport differ/);
    assert.equal(out.stdout.toString(), '');
  });

  test('a run made at another time is flagged, or refused with --strict', async () => {
    const later = { ...runs[2]!, window: { start: runs[2]!.window.start + 60_000, end: runs[2]!.window.end + 60_000 } };
    const merged = await mergeResults([runs[0], runs[1], later]);
    assert.deepEqual(merged.merged.flagged, [2]);
    assert.equal(merged.merged.common, null);
    await assert.rejects(mergeResults([runs[0], runs[1], later], { strict: true }), { message: /run 3 was not measured at the same time/ });
    const file = join(dir, 'later.json');
    await writeFile(file, `upcase bench: a hint line, as kubectl logs mixes in\n${JSON.stringify(later)}\n`);
    const flagged = await runCli(['bench', 'merge', files[0]!, files[1]!, file]);
    assert.equal(flagged.code, 0);
    assert.match(flagged.stderr, /^upcase bench merge: warning: run 3 was not measured at the same time as the others \(0% of its window/);
    const strict = await runCli(['bench', 'merge', '--strict', files[0]!, files[1]!, file]);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /run 3 was not measured at the same time/);
  });

  test('input that is not a bench result is refused with the file named', async () => {
    const file = join(dir, 'junk.json');
    await writeFile(file, 'hello\n');
    const out = await runCli(['bench', 'merge', file]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /junk\.json: no result/);
    await assert.rejects(mergeResults([{ requests: {} }]), { code: 'UPCASE_ERR_INVALID_ARG', message: /results\[0\]/ });
  });
});
