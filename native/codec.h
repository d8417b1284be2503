// The upcase codec in C, for the native TCP transport (native/tcp_serve.c).
//
// It implements exactly the rule of src/codec/ (docs/protocol.md): well-formed
// UTF-8 is uppercased, every byte that is not part of a well-formed sequence
// passes through unchanged, and a character cut by a chunk boundary is held
// back (at most 3 bytes) until the next chunk completes it.
//
// The case data is not compiled in: it is the table the TypeScript codec builds
// from String.prototype.toUpperCase() (src/codec/fast.ts caseTables()), handed
// over once, so both codecs can never disagree on a character.
#ifndef UPCASE_CODEC_H
#define UPCASE_CODEC_H

#include <stddef.h>
#include <stdint.h>

// Code points below this have a table entry; above it nothing has a case mapping.
#define CODEC_TABLE_SIZE 0x20000
// No character's uppercase is more than 3 times as long as the character in UTF-8
// (ΐ: 2 bytes → 6). caseTables() checks this when it builds the table.
#define CODEC_MAX_GROWTH 3
// Readable bytes after special_bytes' last, so a special is copied with one fixed-size move.
#define CODEC_SPECIAL_PAD 16

typedef struct {
  // For each code point: its uppercase when that is one code point of the same UTF-8
  // length (often itself); otherwise -1 - k, where k indexes the specials below.
  const int32_t *table;
  // Special k's uppercase is special_bytes[special_offsets[k], special_offsets[k + 1]).
  const int32_t *special_offsets;
  const uint8_t *special_bytes;  // followed by CODEC_SPECIAL_PAD readable bytes
  int32_t special_count;
} codec_tables_t;

typedef struct {
  uint8_t held[4];  // the start of a character cut by the end of the last chunk
  uint8_t held_length;
} codec_stream_t;

// Writable bytes codec_push() needs in front of `buf` (for a character completed
// across chunks, put before the rest of the output).
#define CODEC_HEADROOM 16

// Scratch space for codec_push() of up to n bytes: the output when characters
// change length (with room for copies that overshoot), and where those characters
// are and their table entries.
#define CODEC_OUT_SIZE(n) ((size_t)(n) * CODEC_MAX_GROWTH + 128)
#define CODEC_SPECIALS_SIZE(n) ((size_t)(n) / 2 + 1)
typedef struct {
  uint8_t *out;        // CODEC_OUT_SIZE(n) bytes
  uint32_t *specials;  // CODEC_SPECIALS_SIZE(n) entries
  int32_t *kinds;      // CODEC_SPECIALS_SIZE(n) entries
} codec_scratch_t;

// Fills the codec's own constant tables; call once per process before codec_push().
void codec_init(void);

// Uppercases the next chunk of a stream. `buf` is owned by the caller, may be
// rewritten, and has CODEC_HEADROOM writable bytes before it. Returns where the
// output is (inside `buf` or its headroom when no character changed length, else
// `scratch->out`) and sets *out_length.
uint8_t *codec_push(const codec_tables_t *t, codec_stream_t *s, uint8_t *buf, size_t n, const codec_scratch_t *scratch, size_t *out_length);

// Ends the stream: copies the held-back bytes (never completed, so unchanged) to
// `out` (4 bytes) and returns how many there were.
size_t codec_end(codec_stream_t *s, uint8_t *out);

#endif
