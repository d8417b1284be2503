/*
 * Fuzzer for the C codec (native/codec.c), meant to be built with AddressSanitizer and
 * UndefinedBehaviorSanitizer (scripts/fuzz-codec.mjs, scripts/test-arm64.mjs and
 * test/native/codec-fuzz.test.ts do).
 *
 *   codec-fuzz DIR ITERATIONS SEED DIGEST_STREAMS DIGEST_SEED SHA256
 *   codec-fuzz --emit STREAMS SEED
 *
 * DIR holds table.bin, offsets.bin and bytes.bin (src/codec/fast.ts caseTables()). A
 * stream is built from pieces chosen to hit the edges: ASCII, characters of 2–4 bytes,
 * characters whose uppercase changes length, and every kind of ill-formed sequence
 * (overlong, surrogate, past U+10FFFF, stray and truncated bytes), in several mixes.
 * Each path this CPU has (only the one UPCASE_CODEC_PATH names, if set) is checked
 * twice, each time with the stream cut into its own random chunks (1 byte to 70 KB,
 * every chunk in a buffer of exactly its size, so a sanitizer sees any read or write
 * past it):
 *  - against a reference from outside the C codec: the SHA-256 of its output for
 *    DIGEST_STREAMS streams drawn from DIGEST_SEED must be SHA256, which is the
 *    TypeScript codec's (recorded in test/fixtures/codec-digest.json; --emit writes
 *    those streams, each as a 4-byte little-endian length and its bytes, so that the
 *    TypeScript side can compute it). The digest is over each output's length (4 bytes,
 *    little-endian) and bytes, in turn. So even a CPU with one path compares it;
 *  - against the scalar path, on ITERATIONS more streams drawn from SEED.
 * A path with a setting chosen by CPU model (the AVX2 path's use of pdep) is run both
 * ways. The codec is included, not linked, for that.
 * Exits 0 when all agree, 1 at the first difference, 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The codec itself, included so that a setting chosen by CPU model can be tried both ways.
#include "../../native/codec.c"
#include "../../native/codec_tools.h"
#include "sha256.h"

// How many ways a path is run: the AVX2 path finds a block's 17th character with pdep, or,
// on AMD Zen 1 and 2 (which microcode pdep), with a loop; both are checked on any CPU.
static int variants(codec_path_t path) {
#if defined(__x86_64__)
  if (path == CODEC_PATH_AVX2) return 2;
#endif
  (void)path;
  return 1;
}

static void set_variant(codec_path_t path, int variant) {
#if defined(__x86_64__)
  if (path == CODEC_PATH_AVX2) fast_pdep = variant == 0;
#endif
  (void)path;
  (void)variant;
}

#define MAX_STREAM 20000

static uint64_t next(uint64_t *state) {  // xorshift64
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

// A random stream of up to MAX_STREAM bytes into `in`; returns its length.
static size_t make_stream(uint64_t *state, uint8_t *in) {
  static const char *const pieces[] = {
      "a", "z", "Z", "`", "{", "@", " ", "0",                                           // ASCII first (with the letters' neighbours)
      "ß", "ŉ", "ΐ", "ﬁ", "ﬃ", "ǆ", "ı", "ȿ", "ᾀ", "ж", "é", "ω", "中", "€", "😀", "𐐨",  // change length, or not
      "\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80",  // ill-formed
      "\xf5\x80\x80\x80", "\xf8", "\x80", "\xbf", "\xe2\x82", "\xf0\x9f", "\xf0\x9f\x98",                      // ill-formed, cut
  };
  const size_t count = sizeof pieces / sizeof pieces[0], ascii = 8;
  size_t n = next(state) % MAX_STREAM;
  // Mostly ASCII, mostly characters, or anything: 1 in (mix + 1) pieces is not ASCII.
  unsigned mix = (unsigned)(next(state) % 4);
  for (size_t o = 0; o < n;) {
    const char *piece = mix == 0 || next(state) % (mix + 1) == 0 ? pieces[next(state) % count] : pieces[next(state) % ascii];
    size_t l = strlen(piece);
    if (l > n - o) l = n - o;
    memcpy(in + o, piece, l);
    o += l;
  }
  return n;
}

// The stream through one path, in random chunks drawn from `seed`; returns the output length.
static size_t run(const codec_tables_t *t, codec_path_t path, const uint8_t *in, size_t n, uint8_t *out, uint64_t seed) {
  uint64_t state = seed | 1;
  codec_stream_t s = {.path = (uint8_t)path};
  size_t total = 0;
  for (size_t off = 0; off < n;) {
    size_t k = 1 + next(&state) % (next(&state) % 2 ? 300 : 70000);
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
  return total;
}

static void put_length(uint8_t bytes[4], size_t n) {
  for (int k = 0; k < 4; k++) bytes[k] = (uint8_t)(n >> (8 * k));
}

int main(int argc, char **argv) {
  static uint8_t in[MAX_STREAM], expected[MAX_STREAM * CODEC_MAX_GROWTH + 16], got[MAX_STREAM * CODEC_MAX_GROWTH + 16];
  if (argc == 4 && strcmp(argv[1], "--emit") == 0) {
    uint64_t state = strtoull(argv[3], NULL, 10) | 1;
    for (long k = atol(argv[2]); k > 0; k--) {
      size_t n = make_stream(&state, in);
      uint8_t length[4];
      put_length(length, n);
      if (fwrite(length, 1, 4, stdout) != 4 || fwrite(in, 1, n, stdout) != n) return 2;
    }
    return 0;
  }
  if (argc < 7) {
    fprintf(stderr, "usage: codec-fuzz DIR ITERATIONS SEED DIGEST_STREAMS DIGEST_SEED SHA256\n       codec-fuzz --emit STREAMS SEED\n");
    return 2;
  }
  long iterations = atol(argv[2]), digest_streams = atol(argv[4]);
  uint64_t state = strtoull(argv[3], NULL, 10) | 1;
  codec_tables_t t;
  if (!load_case_tables(argv[1], &t)) {
    fprintf(stderr, "codec-fuzz: the tables were refused\n");
    return 2;
  }
  if (codec_path_error() != NULL) {
    fprintf(stderr, "codec-fuzz: %s\n", codec_path_error());
    return 2;
  }
  // Every path, or the one UPCASE_CODEC_PATH forces (which CODEC_PATH_AUTO then means).
  codec_path_t paths[CODEC_PATH_COUNT];
  int path_count = 0;
  const char *forced = getenv("UPCASE_CODEC_PATH");
  for (int p = CODEC_PATH_SCALAR; p < CODEC_PATH_COUNT; p++)
    if (codec_path_available((codec_path_t)p) && (forced == NULL || forced[0] == 0 || codec_resolve_path(CODEC_PATH_AUTO) == (codec_path_t)p))
      paths[path_count++] = (codec_path_t)p;

  for (int p = 0; p < path_count; p++) {
    for (int v = 0; v < variants(paths[p]); v++) {
      set_variant(paths[p], v);
      uint64_t streams = strtoull(argv[5], NULL, 10) | 1;
      sha256_t digest;
      sha256_init(&digest);
      for (long k = 0; k < digest_streams; k++) {
        size_t n = make_stream(&streams, in);
        size_t have = run(&t, paths[p], in, n, got, next(&state));
        uint8_t length[4];
        put_length(length, have);
        sha256_update(&digest, length, 4);
        sha256_update(&digest, got, have);
      }
      char hex[65];
      sha256_hex(&digest, hex);
      if (strcmp(hex, argv[6]) != 0) {
        fprintf(stderr, "codec-fuzz: the %s path's output (variant %d) for %ld streams from seed %s has SHA-256 %s; the TypeScript codec's is %s\n",
                codec_path_name(paths[p]), v, digest_streams, argv[5], hex, argv[6]);
        return 1;
      }
    }
  }
  for (long iter = 0; iter < iterations; iter++) {
    size_t n = make_stream(&state, in);
    size_t want = run(&t, CODEC_PATH_SCALAR, in, n, expected, next(&state));
    for (int p = 0; p < path_count; p++) {
      if (paths[p] == CODEC_PATH_SCALAR) continue;
      int v = (int)(iter % variants(paths[p]));
      set_variant(paths[p], v);
      size_t have = run(&t, paths[p], in, n, got, next(&state));
      if (have != want || memcmp(got, expected, want) != 0) {
        fprintf(stderr, "codec-fuzz: the %s path (variant %d) differs from the scalar path at iteration %ld (%zu bytes in, seed %s)\n",
                codec_path_name(paths[p]), v, iter, n, argv[3]);
        return 1;
      }
    }
  }
  printf("{\"iterations\":%ld,\"digestStreams\":%ld,\"paths\":[", iterations, digest_streams);
  for (int p = 0; p < path_count; p++) printf("%s\"%s\"", p ? "," : "", codec_path_name(paths[p]));
  printf("]}\n");
  return 0;
}
