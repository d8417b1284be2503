/*
 * For the C codec's stand-alone tools, not the addons (bench/codec/codec-bench.c
 * and test/native/codec-fuzz.c): reading the files scripts/case-tables.mjs
 * writes, and scratch space for codec_push(). Both exit with status 2 on I/O
 * or memory errors.
 */
#ifndef UPCASE_CODEC_TOOLS_H
#define UPCASE_CODEC_TOOLS_H

#include <stdio.h>
#include <stdlib.h>

#include "codec.h"

// DIR/NAME, whole, in a buffer with 64 readable bytes after it.
static void *slurp(const char *dir, const char *name, size_t *n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  void *b = calloc(1, *n + 64);
  if (b == NULL || fread(b, 1, *n, f) != *n) {
    perror(path);
    exit(2);
  }
  fclose(f);
  return b;
}

// The case tables from DIR (table.bin, offsets.bin, bytes.bin), checked and built by
// codec_build_tables(); calls codec_init() first. Returns 0 when they are refused.
static int load_case_tables(const char *dir, codec_tables_t *t) {
  size_t tn, on, bn;
  int32_t *table = slurp(dir, "table.bin", &tn), *offsets = slurp(dir, "offsets.bin", &on);
  uint8_t *bytes = slurp(dir, "bytes.bin", &bn);
  codec_init();
  int ok = tn == CODEC_TABLE_SIZE * 4 && on >= 4 && codec_build_tables(t, table, offsets, on / 4 - 1, bytes, bn);
  free(table);
  free(offsets);
  free(bytes);
  return ok;
}

// Scratch space for codec_push() of up to n bytes.
static codec_scratch_t scratch_for(size_t n) {
  codec_scratch_t sc = {malloc(CODEC_OUT_SIZE(n)), malloc(CODEC_MID_SIZE(n)), malloc(CODEC_SPECIALS_SIZE(n) * sizeof(uint32_t)),
                        malloc(CODEC_SPECIALS_SIZE(n) * sizeof(int32_t))};
  if (sc.out == NULL || sc.mid == NULL || sc.specials == NULL || sc.kinds == NULL) exit(2);
  return sc;
}

static void scratch_release(codec_scratch_t *sc) {
  free(sc->out);
  free(sc->mid);
  free(sc->specials);
  free(sc->kinds);
}

#endif
