/*
 * The C codec (native/codec.c) alone, without sockets: MB/s of input on one path.
 * Driven by bench/codec.mjs, which writes the case tables and the payloads and
 * compiles this file with the codec.
 *
 *   codec-bench DIR PATH PAYLOAD [CHUNK]
 *
 * DIR holds table.bin, offsets.bin, bytes.bin (caseTables()), PAYLOAD.in and
 * PAYLOAD.out (its uppercase by the TypeScript codec). PATH is scalar, sse2, avx2,
 * avx512 or neon. The payload is pushed in CHUNK-byte pieces (64 KiB, the native TCP
 * transport's read size), as one stream; the whole output is checked against
 * PAYLOAD.out first, in pieces of CHUNK - 7 bytes so characters are cut. Prints
 * one JSON line: {"path":…, "payload":…, "mbps":…} with the best of 15 timed
 * passes, timed in the thread's CPU time (the machine is shared: the best is the
 * least disturbed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../native/codec_tools.h"

// This thread's CPU time: on a shared machine, time spent waiting for a CPU does not count.
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: codec-bench DIR scalar|sse2|avx2|avx512|neon PAYLOAD [CHUNK]\n");
    return 2;
  }
  const char *dir = argv[1], *path_name = argv[2], *payload = argv[3];
  size_t chunk = argc > 4 ? (size_t)atol(argv[4]) : 65536;
  int path = codec_path_from_name(path_name);
  codec_tables_t t;
  if (!load_case_tables(dir, &t)) {
    fprintf(stderr, "codec-bench: the tables were refused\n");
    return 2;
  }
  if (path <= 0 || !codec_path_available((codec_path_t)path) || chunk < 16) {
    fprintf(stderr, "codec-bench: no path %s on this CPU (or a chunk under 16 bytes)\n", path_name);
    return 3;
  }
  size_t n, en;
  char in_name[256], out_name[256];
  snprintf(in_name, sizeof in_name, "%s.in", payload);
  snprintf(out_name, sizeof out_name, "%s.out", payload);
  uint8_t *src = slurp(dir, in_name, &n), *expected = slurp(dir, out_name, &en);
  uint8_t *space = malloc(CODEC_HEADROOM + chunk), *buf = space + CODEC_HEADROOM;
  codec_scratch_t sc = scratch_for(chunk);
  uint8_t *all = malloc(en + 16);
  if (space == NULL || all == NULL) return 2;
  codec_stream_t s = {.path = (uint8_t)path};

  size_t total = 0, piece = chunk - 7;
  for (size_t off = 0; off < n; off += piece) {
    size_t k = n - off < piece ? n - off : piece, ol;
    memcpy(buf, src + off, k);
    uint8_t *r = codec_push(&t, &s, buf, k, &sc, &ol);
    if (total + ol > en) break;
    memcpy(all + total, r, ol);
    total += ol;
  }
  if (total + s.held_length <= en) total += codec_end(&s, all + total);
  if (total != en || memcmp(all, expected, en) != 0) {
    fprintf(stderr, "codec-bench: %s path, %s: wrong output\n", path_name, payload);
    return 1;
  }

  int passes = (int)(64e6 / (double)n) + 1;  // about 64 MB per timed pass
  double best = 0;
  for (int r = 0; r < 15; r++) {
    double start = now();
    for (int p = 0; p < passes; p++) {
      for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk, ol;
        memcpy(buf, src + off, k);
        codec_push(&t, &s, buf, k, &sc, &ol);
      }
    }
    double mbps = (double)n * passes / (now() - start) / 1e6;
    if (mbps > best) best = mbps;
  }
  printf("{\"path\":\"%s\",\"payload\":\"%s\",\"bytes\":%zu,\"mbps\":%.0f}\n", path_name, payload, n, best);
  return 0;
}
