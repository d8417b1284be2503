/*
 * Differential fuzzer for the C codec (native/codec.c), meant to be built with
 * AddressSanitizer and UndefinedBehaviorSanitizer (scripts/fuzz-codec.mjs and
 * test/native/codec-fuzz.test.ts do).
 *
 *   codec-fuzz DIR ITERATIONS SEED
 *
 * DIR holds table.bin, offsets.bin and bytes.bin (src/codec/fast.ts caseTables()).
 * Each iteration builds a random stream from pieces chosen to hit the edges: ASCII,
 * characters of 2–4 bytes, characters whose uppercase changes length, and every
 * kind of ill-formed sequence (overlong, surrogate, past U+10FFFF, stray and
 * truncated bytes), in several mixes. It then pushes the stream through every path
 * this CPU has, each cut into its own random chunks (1 byte to 70 KB, every chunk
 * in a buffer of exactly its size, so a sanitizer sees any read or write past it),
 * and requires every path's output to equal the scalar path's. The scalar path is
 * held to the TypeScript codec by the test suite (test/tcp/native.test.ts).
 * Exits 0 when all agree, 1 at the first difference, 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/codec/tables.h"

static uint64_t state;
static uint64_t next(void) {  // xorshift64
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

// The stream through one path, in random chunks drawn from `seed`; returns the output length.
static size_t run(const codec_tables_t *t, codec_path_t path, const uint8_t *in, size_t n, uint8_t *out, uint64_t seed) {
  uint64_t saved = state;
  state = seed;
  codec_stream_t s = {.path = (uint8_t)path};
  size_t total = 0;
  for (size_t off = 0; off < n;) {
    size_t k = 1 + next() % (next() % 2 ? 300 : 70000);
    if (k > n - off) k = n - off;
    uint8_t *space = malloc(CODEC_HEADROOM + k);
    codec_scratch_t sc = scratch_for(k);
    if (space == NULL) exit(2);
    memcpy(space + CODEC_HEADROOM, in + off, k);
    size_t length;
    uint8_t *result = codec_push(t, &s, space + CODEC_HEADROOM, k, &sc, &length);
    memcpy(out + total, result, length);
    total += length;
    free(space);
    scratch_release(&sc);
    off += k;
  }
  total += codec_end(&s, out + total);
  state = saved;
  return total;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: codec-fuzz DIR ITERATIONS SEED\n");
    return 2;
  }
  long iterations = atol(argv[2]);
  state = strtoull(argv[3], NULL, 10) | 1;
  codec_tables_t t;
  if (!load_case_tables(argv[1], &t)) {
    fprintf(stderr, "codec-fuzz: the tables were refused\n");
    return 2;
  }
  static const char *const pieces[] = {
      "a", "Z", " ", "0",                                                               // ASCII first: mixes draw from these
      "ß", "ŉ", "ΐ", "ﬁ", "ﬃ", "ǆ", "ı", "ȿ", "ᾀ", "ж", "é", "ω", "中", "€", "😀", "𐐨",  // change length, or not
      "\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80",  // ill-formed
      "\xf5\x80\x80\x80", "\xf8", "\x80", "\xbf", "\xe2\x82", "\xf0\x9f", "\xf0\x9f\x98",                      // ill-formed, cut
  };
  const size_t count = sizeof pieces / sizeof pieces[0], ascii = 4;
  codec_path_t paths[CODEC_PATH_COUNT];
  int path_count = 0;
  for (int p = CODEC_PATH_SCALAR + 1; p < CODEC_PATH_COUNT; p++)
    if (codec_path_available((codec_path_t)p)) paths[path_count++] = (codec_path_t)p;
  for (long iter = 0; iter < iterations; iter++) {
    size_t n = next() % 20000;
    // Mostly ASCII, mostly characters, or anything: 1 in (mix + 1) pieces is not ASCII.
    unsigned mix = (unsigned)(next() % 4);
    uint8_t *in = malloc(n + 1), *expected = malloc(n * 3 + 16), *got = malloc(n * 3 + 16);
    if (in == NULL || expected == NULL || got == NULL) return 2;
    for (size_t o = 0; o < n;) {
      const char *piece = mix == 0 || next() % (mix + 1) == 0 ? pieces[next() % count] : pieces[next() % ascii];
      size_t l = strlen(piece);
      if (l > n - o) l = n - o;
      memcpy(in + o, piece, l);
      o += l;
    }
    size_t want = run(&t, CODEC_PATH_SCALAR, in, n, expected, next());
    for (int p = 0; p < path_count; p++) {
      size_t have = run(&t, paths[p], in, n, got, next());
      if (have != want || memcmp(got, expected, want) != 0) {
        fprintf(stderr, "codec-fuzz: path %d differs from scalar at iteration %ld (%zu bytes in, seed %s)\n", (int)paths[p], iter, n, argv[3]);
        return 1;
      }
    }
    free(in);
    free(expected);
    free(got);
  }
  printf("{\"iterations\":%ld,\"paths\":%d}\n", iterations, path_count + 1);
  return 0;
}
