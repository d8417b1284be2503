/**
 * The open TCP connections of one server, for `/connections` (docs/operations.md).
 * Each entry holds addresses and a way to read its counters; never payload.
 * Cost: one entry per connection (src/server/admission.ts makes it), and for the
 * stream transport two additions and a clock read per chunk (the native transport
 * counts in C).
 */

/** A connection's figures at one moment. */
export interface ConnectionFigures {
  bytesIn: number;
  bytesOut: number;
  /** Milliseconds since the last read or write progress. */
  idleMs: number;
  /** Reply bytes handed to the transport that the client has not taken yet. */
  owedBytes: number;
}

/** What the server knows of an open connection. */
export interface ConnectionEntry {
  /** Unique within the server, increasing: older connections have smaller ids. */
  readonly id: number;
  /** The listener it came in on. */
  readonly transport: 'tcp' | 'tls';
  /** Who serves its bytes: node:net streams or the native addon (set once served). */
  readonly engine: 'stream' | 'native' | null;
  /** `proxy`: waiting for the PROXY header; `handshake`: TLS handshake; `open`: served. */
  readonly state: 'proxy' | 'handshake' | 'open';
  /** `Date.now()` when it was accepted. */
  readonly openedAt: number;
  /** The client: the socket's peer, or with PROXY protocol the address from the header. */
  readonly clientAddress: string | undefined;
  readonly clientPort: number | undefined;
  /** With PROXY protocol: the balancer that connected to us. */
  readonly proxy: { address: string | undefined; port: number | undefined; version: 1 | 2 } | null;
  /** The counters as of `now` (`Date.now()`), once served; null before. */
  figures(now: number): ConnectionFigures | null;
}

/** One connection as `/connections` shows it. */
export interface ConnectionView {
  id: number;
  /** With `--workers`: the worker slot serving it. */
  worker?: number;
  client: { address: string | null; port: number | null };
  proxy: { address: string | null; port: number | null; version: 1 | 2 } | null;
  transport: 'tcp' | 'tls';
  engine: 'stream' | 'native' | null;
  state: 'proxy' | 'handshake' | 'open';
  /** When it was accepted, in milliseconds since the epoch. */
  openedAt: number;
  ageSeconds: number;
  bytesIn: number;
  bytesOut: number;
  idleSeconds: number;
  /** Replies are waiting for the client to read them. */
  replyOwed: boolean;
  owedBytes: number;
}

/** One page of `/connections`: the open connections from `offset`, at most `limit` of them. */
export interface ConnectionsPage {
  /** Open connections in all (not only on this page). */
  total: number;
  offset: number;
  limit: number;
  /** Oldest first. */
  connections: ConnectionView[];
}

/** Which page of `/connections` to list (`?offset=&limit=`). */
export interface ConnectionsQuery {
  offset: number;
  limit: number;
}

/** Page sizes of `/connections`. */
export const CONNECTIONS_PAGE = {
  defaultLimit: 100, // connections per page when `limit` is not given
  maxLimit: 1000, // the most one request returns
} as const;

/**
 * `?limit=&offset=` from a query string. Returns a message naming the parameter
 * and the value when one is not a whole number in range.
 */
export function parseConnectionsQuery(params: URLSearchParams): ConnectionsQuery | { error: string } {
  const read = (name: string, fallback: number, min: number, max: number): number | string => {
    const raw = params.get(name);
    if (raw === null || raw === '') return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      return `Expected \`${name}\` to be an integer from ${min} to ${max}, got \`${raw.slice(0, 32)}\``;
    }
    return n;
  };
  const limit = read('limit', CONNECTIONS_PAGE.defaultLimit, 1, CONNECTIONS_PAGE.maxLimit);
  if (typeof limit === 'string') return { error: limit };
  const offset = read('offset', 0, 0, Number.MAX_SAFE_INTEGER);
  if (typeof offset === 'string') return { error: offset };
  return { limit, offset };
}

const seconds = (ms: number): number => Math.max(0, Math.round(ms) / 1000);

function view(entry: ConnectionEntry, now: number): ConnectionView {
  const f = entry.figures(now);
  const ageMs = now - entry.openedAt;
  return {
    id: entry.id,
    client: { address: entry.clientAddress ?? null, port: entry.clientPort ?? null },
    proxy:
      entry.proxy === null ? null : { address: entry.proxy.address ?? null, port: entry.proxy.port ?? null, version: entry.proxy.version },
    transport: entry.transport,
    engine: entry.engine,
    state: entry.state,
    openedAt: entry.openedAt,
    ageSeconds: seconds(ageMs),
    bytesIn: f?.bytesIn ?? 0,
    bytesOut: f?.bytesOut ?? 0,
    // Never idle for longer than it has been open (the two clocks are read a moment apart).
    idleSeconds: seconds(f === null ? ageMs : Math.min(f.idleMs, ageMs)),
    replyOwed: (f?.owedBytes ?? 0) > 0,
    owedBytes: f?.owedBytes ?? 0,
  };
}

/** The links {@link ConnectionTable} keeps on each entry (null while it is not in a table). */
export interface TableLinks<E> {
  tablePrev: E | null;
  tableNext: E | null;
}

/**
 * The open connections of one server, oldest first: a list linked through the entries
 * themselves, so a connection costs the table two fields of its entry and no node of its
 * own (a Set's hash table took about 110 bytes per entry; docs/benchmarks.md).
 */
export class ConnectionTable<E extends ConnectionEntry & TableLinks<E>> {
  // Entries are added as they are accepted, at the tail: oldest first.
  private head: E | null = null;
  private tail: E | null = null;
  private count = 0;
  private lastId = 0;

  /** The id for a connection accepted now. */
  nextId(): number {
    return ++this.lastId;
  }

  add(entry: E): void {
    entry.tablePrev = this.tail;
    entry.tableNext = null;
    if (this.tail !== null) this.tail.tableNext = entry;
    else this.head = entry;
    this.tail = entry;
    this.count++;
  }

  /** Removes `entry`; false if it was not there. */
  delete(entry: E): boolean {
    if (entry.tablePrev === null && this.head !== entry) return false;
    if (entry.tablePrev !== null) entry.tablePrev.tableNext = entry.tableNext;
    else this.head = entry.tableNext;
    if (entry.tableNext !== null) entry.tableNext.tablePrev = entry.tablePrev;
    else this.tail = entry.tablePrev;
    entry.tablePrev = entry.tableNext = null;
    this.count--;
    return true;
  }

  get size(): number {
    return this.count;
  }

  /** Every open connection, oldest first (an entry may be deleted while iterating). */
  *values(): IterableIterator<E> {
    for (let entry = this.head; entry !== null; ) {
      const next = entry.tableNext;
      yield entry;
      entry = next;
    }
  }

  /** One page, oldest first. Costs O(offset + limit). */
  page(query: ConnectionsQuery, now = Date.now()): ConnectionsPage {
    const connections: ConnectionView[] = [];
    let skip = query.offset;
    for (let entry = this.head; entry !== null && connections.length < query.limit; entry = entry.tableNext) {
      if (skip > 0) {
        skip--;
        continue;
      }
      connections.push(view(entry, now));
    }
    return { total: this.count, offset: query.offset, limit: query.limit, connections };
  }
}

/**
 * One page over several workers' connections: each worker's first `offset + limit`
 * (its oldest) are enough to find the page, since the page's entries are among them.
 */
export function mergePages(pages: Array<{ worker: number; page: ConnectionsPage }>, query: ConnectionsQuery): ConnectionsPage {
  const all = pages.flatMap(({ worker, page }) => page.connections.map((c) => ({ ...c, worker })));
  // Oldest first across workers, by a key that does not move between requests (pages must not
  // overlap): the accept time, then worker, then id.
  all.sort((a, b) => a.openedAt - b.openedAt || a.worker - b.worker || a.id - b.id);
  return {
    total: pages.reduce((n, p) => n + p.page.total, 0),
    offset: query.offset,
    limit: query.limit,
    connections: all.slice(query.offset, query.offset + query.limit),
  };
}
