// The upcase codec in C: see codec.h. A line-by-line counterpart of
// src/codec/utf8.ts (well-formedness, Unicode §3.9 Table 3-7) and
// src/codec/fast.ts (in place where lengths allow, spliced where they do not).
#include "codec.h"

#include <string.h>

#define ASCII_HIGH 0x8080808080808080ULL

// Uppercases 8 ASCII bytes at once. Per byte h (< 0x80), h + 0x1f sets bit 7 iff
// h >= 'a', and h + 0x05 iff h > 'z'; no carry crosses a lane.
static inline uint64_t upper8(uint64_t w) {
  uint64_t mask = (w + 0x1f1f1f1f1f1f1f1fULL) & ~(w + 0x0505050505050505ULL) & ASCII_HIGH;
  return w ^ (mask >> 2);
}

static inline uint8_t upper1(uint8_t c) { return (uint8_t)(c - 0x61u) < 26u ? c ^ 0x20 : c; }

// Incomplete: the bytes up to `end` are a proper prefix of a well-formed sequence.
#define INCOMPLETE (-1)

// The length (1–4) of the well-formed sequence at p[0], 0 when none starts there,
// or INCOMPLETE when the n bytes available are a proper prefix of one.
static inline int sequence_length(const uint8_t *p, size_t n) {
  uint8_t b0 = p[0];
  if (b0 < 0x80) return 1;
  int len;
  uint8_t lo = 0x80, hi = 0xbf;
  if (b0 < 0xc2) {
    return 0;  // continuation byte, or the overlong leads C0/C1
  } else if (b0 < 0xe0) {
    len = 2;
  } else if (b0 < 0xf0) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;       // no overlongs
    else if (b0 == 0xed) hi = 0x9f;  // no UTF-16 surrogates
  } else if (b0 < 0xf5) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;       // no overlongs
    else if (b0 == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (n < 2) return INCOMPLETE;
  if (p[1] < lo || p[1] > hi) return 0;
  for (int k = 2; k < len; k++) {
    if ((size_t)k >= n) return INCOMPLETE;
    if ((p[k] & 0xc0) != 0x80) return 0;
  }
  return len;
}

// Where a trailing, still-completable sequence starts in buf[start, end), or end.
static size_t incomplete_tail_start(const uint8_t *buf, size_t start, size_t end) {
  size_t stop = end - start > 3 ? end - 3 : start;
  for (size_t p = end; p-- > stop;) {
    uint8_t b = buf[p];
    if ((b & 0xc0) == 0x80) continue;  // continuation: the lead is further back
    return b >= 0xc2 && sequence_length(buf + p, end - p) == INCOMPLETE ? p : end;
  }
  return end;
}

static inline uint32_t decode(const uint8_t *p, int len) {
  if (len == 2) return ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
  if (len == 3) return ((uint32_t)(p[0] & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
  return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) | ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
}

// Writes code point u in `len` bytes (its UTF-8 length, which the table guarantees).
static inline void encode(uint8_t *p, int len, uint32_t u) {
  if (len == 2) {
    p[0] = (uint8_t)(0xc0 | (u >> 6));
    p[1] = (uint8_t)(0x80 | (u & 0x3f));
  } else if (len == 3) {
    p[0] = (uint8_t)(0xe0 | (u >> 12));
    p[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
    p[2] = (uint8_t)(0x80 | (u & 0x3f));
  } else {
    p[0] = (uint8_t)(0xf0 | (u >> 18));
    p[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3f));
    p[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
    p[3] = (uint8_t)(0x80 | (u & 0x3f));
  }
}

// A complete sequence is ill-formed when cut by the end of the input.
static inline int complete_length(const uint8_t *p, size_t n) {
  int len = sequence_length(p, n);
  return len == INCOMPLETE ? 0 : len;
}

// The table entry for a well-formed sequence's code point: >= 0 is its same-length
// uppercase, < 0 a special. Planes 2 and up have no case mappings (the exhaustive
// test in test/codec checks this against toUpperCase() for every code point).
static inline int32_t lookup(const codec_tables_t *t, uint32_t cp) {
  return cp < CODEC_TABLE_SIZE ? t->table[cp] : (int32_t)cp;
}

// Uppercases buf[0, n) (complete input) in place, except characters whose
// uppercase changes length: their positions go to `specials`. Returns how many.
static size_t upcase_in_place(const codec_tables_t *t, uint8_t *buf, size_t n, uint32_t *specials) {
  size_t i = 0, count = 0;
  while (i < n) {
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, buf + i, 8);
      if (w & ASCII_HIGH) break;
      w = upper8(w);
      memcpy(buf + i, &w, 8);
      i += 8;
    }
    if (i >= n) break;
    uint8_t b0 = buf[i];
    if (b0 < 0x80) {
      buf[i++] = upper1(b0);
      continue;
    }
    int len = complete_length(buf + i, n - i);
    if (len == 0) {
      i++;  // not part of a well-formed sequence: passes through
      continue;
    }
    uint32_t cp = decode(buf + i, len);
    int32_t u = lookup(t, cp);
    if (u < 0) specials[count++] = (uint32_t)i;
    else if ((uint32_t)u != cp) encode(buf + i, len, (uint32_t)u);
    i += (size_t)len;
  }
  return count;
}

// The uppercase bytes of the special character (well-formed, `len` bytes) at p.
static const uint8_t *special_bytes(const codec_tables_t *t, const uint8_t *p, int len, size_t *n) {
  int64_t k = -1 - (int64_t)lookup(t, decode(p, len));
  if (k < 0 || k >= t->special_count) {  // unreachable: only specials are recorded
    *n = (size_t)len;
    return p;
  }
  *n = (size_t)(t->special_offsets[k + 1] - t->special_offsets[k]);
  return t->special_bytes + t->special_offsets[k];
}

static inline size_t lead_length(uint8_t b0) { return b0 < 0xe0 ? 2 : b0 < 0xf0 ? 3 : 4; }

// After upcase_in_place() found `count` specials in buf[0, n): the whole output,
// assembled in `out` after `prefix` bytes already there. Returns its length.
static size_t splice(const codec_tables_t *t, const uint8_t *buf, size_t n, const uint32_t *specials, size_t count, uint8_t *out, size_t prefix) {
  size_t o = prefix, from = 0;
  for (size_t k = 0; k < count; k++) {
    size_t p = specials[k], len = lead_length(buf[p]), sn;
    memcpy(out + o, buf + from, p - from);
    o += p - from;
    const uint8_t *bytes = special_bytes(t, buf + p, (int)len, &sn);
    memcpy(out + o, bytes, sn);
    o += sn;
    from = p + len;
  }
  memcpy(out + o, buf + from, n - from);
  return o + (n - from);
}

uint8_t *codec_push(const codec_tables_t *t, codec_stream_t *s, uint8_t *buf, size_t n, const codec_scratch_t *scratch, size_t *out_length) {
  size_t start = 0;
  // The character held from the last chunk, completed (or given up) with this one's first bytes.
  uint8_t prefix[16];
  size_t prefix_length = 0;
  if (s->held_length > 0) {
    size_t held = s->held_length;
    size_t take = 4 - held < n ? 4 - held : n;
    memcpy(s->held + held, buf, take);
    int len = sequence_length(s->held, held + take);
    if (len == INCOMPLETE) {
      s->held_length = (uint8_t)(held + take);  // take == n: everything is held
      *out_length = 0;
      return buf;
    }
    s->held_length = 0;
    if (len > 0) {
      uint32_t one;
      if (upcase_in_place(t, s->held, (size_t)len, &one) == 0) {
        memcpy(prefix, s->held, (size_t)len);
        prefix_length = (size_t)len;
      } else {
        const uint8_t *bytes = special_bytes(t, s->held, len, &prefix_length);
        memcpy(prefix, bytes, prefix_length);
      }
      start = (size_t)len - held;
    } else {
      // Ill-formed: the held bytes pass through and the chunk is read from its start.
      memcpy(prefix, s->held, held);
      prefix_length = held;
    }
  }
  size_t tail = incomplete_tail_start(buf, start, n);
  if (tail < n) {
    memcpy(s->held, buf + tail, n - tail);
    s->held_length = (uint8_t)(n - tail);
  }
  size_t count = upcase_in_place(t, buf + start, tail - start, scratch->specials);
  if (count == 0) {
    // Same lengths: the output is the chunk itself, the prefix put just before it.
    uint8_t *begin = buf + start - prefix_length;
    memcpy(begin, prefix, prefix_length);
    *out_length = prefix_length + (tail - start);
    return begin;
  }
  memcpy(scratch->out, prefix, prefix_length);
  *out_length = splice(t, buf + start, tail - start, scratch->specials, count, scratch->out, prefix_length);
  return scratch->out;
}

size_t codec_end(codec_stream_t *s, uint8_t *out) {
  size_t n = s->held_length;
  memcpy(out, s->held, n);
  s->held_length = 0;
  return n;
}
