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
// (ΐ: 2 bytes → 6). codec_build_tables() checks this.
#define CODEC_MAX_GROWTH 3
// A special character's record: its uppercase from byte 0 (at most 12 bytes), the
// UTF-8 length of the character at byte 14 and of its uppercase at byte 15.
#define CODEC_RECORD_SIZE 16

typedef struct {
  // For each code point: its uppercase when that is one code point of the same UTF-8
  // length (often itself); otherwise -1 - k, where k indexes the special records.
  int32_t *table;
  uint8_t *specials;  // special_count records of CODEC_RECORD_SIZE bytes
  int32_t special_count;
} codec_tables_t;

// Builds `t` from the arrays of src/codec/fast.ts caseTables() (copied: the caller's
// may go): `table` (CODEC_TABLE_SIZE entries), and special k's uppercase as
// bytes[offsets[k], offsets[k + 1]). Checks everything the codec relies on (lengths,
// ranges, every entry's target) and returns 0, building nothing, if something is off
// or memory runs out.
int codec_build_tables(codec_tables_t *t, const int32_t *table, const int32_t *offsets, size_t special_count, const uint8_t *bytes, size_t bytes_length);

// The block paths, each exactly the same rule (the tests run every one this CPU has),
// narrowest first.
typedef enum {
  CODEC_PATH_AUTO = 0,    // the widest this CPU has, or the one UPCASE_CODEC_PATH names
  CODEC_PATH_SCALAR = 1,  // 8 bytes at a time for ASCII, then one character at a time
  CODEC_PATH_SSE2 = 2,    // x86-64: 64-byte blocks, characters found from byte-class masks
  CODEC_PATH_AVX2 = 3,    // x86-64 with AVX2: 64-byte blocks, up to 16 characters, 8 per vector
  CODEC_PATH_AVX512 = 4,  // x86-64 with AVX-512 VBMI2: 64-byte blocks, 16 characters per vector
  CODEC_PATH_NEON = 5,    // AArch64: 16 ASCII bytes at a time by vector, then one character at a time
  CODEC_PATH_COUNT = 6,
} codec_path_t;

typedef struct {
  uint8_t held[4];  // the start of a character cut by the end of the last chunk
  uint8_t held_length;
  uint8_t path;  // a codec_path_t; zero-initialized streams take the widest
} codec_stream_t;

// Writable bytes codec_push() needs in front of `buf` (for a character completed
// across chunks, put before the rest of the output).
#define CODEC_HEADROOM 16

// Scratch space for codec_push() of up to n bytes: the output when characters
// change length (with room for copies that overshoot), the output of the paths that
// do not work in place, and where the characters that change length are and their
// table entries.
#define CODEC_OUT_SIZE(n) ((size_t)(n) * CODEC_MAX_GROWTH + 256)
#define CODEC_MID_SIZE(n) ((size_t)(n) + CODEC_HEADROOM)
#define CODEC_SPECIALS_SIZE(n) ((size_t)(n) / 2 + 16)  // room for a vector store past the last
typedef struct {
  uint8_t *out;        // CODEC_OUT_SIZE(n) bytes
  uint8_t *mid;        // CODEC_MID_SIZE(n) bytes
  uint32_t *specials;  // CODEC_SPECIALS_SIZE(n) entries
  int32_t *kinds;      // CODEC_SPECIALS_SIZE(n) entries
} codec_scratch_t;

// Fills the codec's own constant tables, checks the CPU and reads UPCASE_CODEC_PATH
// (a path name, see codec_path_name(), that CODEC_PATH_AUTO then means: for tests and
// benchmarks). Call once per process before anything else here.
void codec_init(void);

// NULL, or why UPCASE_CODEC_PATH could not be followed (an unknown name, or a path this
// build and CPU lack), naming the paths there are; CODEC_PATH_AUTO then means the widest.
const char *codec_path_error(void);

// Whether this build and CPU have the path, and which one CODEC_PATH_AUTO means.
int codec_path_available(codec_path_t path);
codec_path_t codec_resolve_path(codec_path_t path);

// A path's name ("auto", "scalar", "sse2", "avx2", "avx512", "neon"), NULL past the last;
// and the path of a name, -1 for none.
const char *codec_path_name(codec_path_t path);
int codec_path_from_name(const char *name);

// Uppercases the next chunk of a stream. `buf` is owned by the caller, may be
// rewritten, and has CODEC_HEADROOM writable bytes before it. Returns where the
// output is (inside `buf` or `scratch->mid`, or their headroom, when no character
// changed length, else `scratch->out`) and sets *out_length.
uint8_t *codec_push(const codec_tables_t *t, codec_stream_t *s, uint8_t *buf, size_t n, const codec_scratch_t *scratch, size_t *out_length);

// Ends the stream: copies the held-back bytes (never completed, so unchanged) to
// `out` (4 bytes) and returns how many there were.
size_t codec_end(codec_stream_t *s, uint8_t *out);

#endif
