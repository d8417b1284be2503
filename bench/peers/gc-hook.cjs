// Preloaded into the Node.js servers whose memory bench/run.mjs measures:
//   node --require bench/peers/gc-hook.cjs SERVER ARGS
// On SIGUSR2 it asks V8 for the collection it runs on a low-memory notification (the inspector's
// HeapProfiler.collectGarbage, in-process): a full GC that also shrinks the young generation and
// returns free heap pages, so RSS holds what is live rather than headroom a busy heap keeps
// (up to tens of MiB, a fixed cost that would otherwise be divided among the connections). Then it
// reports process.memoryUsage() on stderr as one line:
//   bench-gc {"rss":…,"heapTotal":…,"heapUsed":…,"external":…,"arrayBuffers":…}
// Every Node.js server measured gets the same hook, so none is favoured.
'use strict';
const inspector = require('node:inspector');

const session = new inspector.Session();
session.connect();
const collect = () => new Promise((resolve) => session.post('HeapProfiler.collectGarbage', () => resolve()));

process.on('SIGUSR2', async () => {
  // Twice: what the first one's finalizers released is collected by the second.
  await collect();
  await collect();
  process.stderr.write(`bench-gc ${JSON.stringify(process.memoryUsage())}\n`);
});
