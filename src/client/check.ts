import { Transform, type TransformCallback } from 'node:stream';
import { upcase, Upcaser } from '../codec/upcase.js';

/**
 * The client knows the uppercase rule, so it can tell when a reply is not the
 * uppercase of what it sent: typically a server that truncates (the textbook's
 * reads 1,024 bytes over TCP, 2,048 over UDP). One verdict, for every way the
 * client sends (docs/clients.md, "Replies that are not the uppercase").
 */
export type ReplyVerdict = 'match' | 'truncated' | 'mismatch';

export interface ReplyCheck {
  verdict: ReplyVerdict;
  /** Bytes of uppercase the messages sent call for. */
  expected: number;
  /** Reply bytes received. */
  received: number;
}

/** The verdict for one message and its whole reply. */
export function checkReply(message: Uint8Array, reply: Uint8Array): ReplyCheck {
  const expected = upcase(message);
  const r = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
  const verdict: ReplyVerdict = r.equals(expected)
    ? 'match'
    : r.length < expected.length && expected.subarray(0, r.length).equals(r)
      ? 'truncated'
      : 'mismatch';
  return { verdict, expected: expected.length, received: r.length };
}

/**
 * The same verdict over a byte stream, as it flows: {@link sent} is fed the
 * bytes sent (their uppercase is computed with the streaming codec) and
 * {@link received} the reply bytes, which are compared with that uppercase as
 * they come. Memory holds only the uppercase sent but not yet answered.
 */
export class StreamReplyChecker {
  private readonly upcaser = new Upcaser();
  private readonly queue: Buffer[] = [];
  private expected = 0;
  private receivedBytes = 0;
  private matched = 0;
  private differs = false;

  sent(chunk: Uint8Array): void {
    this.owe(this.upcaser.push(chunk));
  }

  /** The end of what is sent: bytes held back (an incomplete character) are owed unchanged. */
  endOfInput(): void {
    this.owe(this.upcaser.end());
  }

  received(chunk: Uint8Array): void {
    this.receivedBytes += chunk.length;
    if (this.differs) return;
    let pos = 0;
    while (pos < chunk.length) {
      const head = this.queue[0];
      // More reply than the input calls for.
      if (head === undefined) {
        this.differs = true;
        return;
      }
      const n = Math.min(head.length, chunk.length - pos);
      if (Buffer.compare(head.subarray(0, n), chunk.subarray(pos, pos + n)) !== 0) {
        this.differs = true;
        return;
      }
      pos += n;
      this.matched += n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
  }

  result(): ReplyCheck {
    const verdict: ReplyVerdict = this.differs ? 'mismatch' : this.matched === this.expected ? 'match' : 'truncated';
    return { verdict, expected: this.expected, received: this.receivedBytes };
  }

  /** A pass-through stream that feeds {@link sent} (put it between the input and the socket). */
  sentTap(): Transform {
    return tap(
      (chunk) => this.sent(chunk),
      () => this.endOfInput(),
    );
  }

  /** A pass-through stream that feeds {@link received} (put it between the socket and the output). */
  receivedTap(): Transform {
    return tap((chunk) => this.received(chunk));
  }

  private owe(out: Buffer): void {
    if (out.length === 0) return;
    // The codec may return its input uppercased in place for owned chunks; this copy is ours.
    this.queue.push(Buffer.from(out));
    this.expected += out.length;
  }
}

function tap(onChunk: (chunk: Buffer) => void, onEnd?: () => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      onChunk(chunk);
      callback(null, chunk);
    },
    flush(callback: TransformCallback): void {
      onEnd?.();
      callback();
    },
  });
}
