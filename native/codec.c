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

// Uppercases buf[0, n) (complete input) in place, stopping at the first character
// whose uppercase changes length. Returns its index, or n.
static size_t upcase_in_place(const codec_tables_t *t, uint8_t *buf, size_t n) {
  size_t i = 0;
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
    if (u < 0) return i;
    if ((uint32_t)u != cp) encode(buf + i, len, (uint32_t)u);
    i += (size_t)len;
  }
  return n;
}

// Uppercases src[0, n) (complete input) into dst; returns the output length.
static size_t upcase_copy(const codec_tables_t *t, const uint8_t *src, size_t n, uint8_t *dst) {
  size_t i = 0, o = 0;
  while (i < n) {
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, src + i, 8);
      if (w & ASCII_HIGH) break;
      w = upper8(w);
      memcpy(dst + o, &w, 8);
      i += 8;
      o += 8;
    }
    if (i >= n) break;
    uint8_t b0 = src[i];
    if (b0 < 0x80) {
      dst[o++] = upper1(b0);
      i++;
      continue;
    }
    int len = complete_length(src + i, n - i);
    if (len == 0) {
      dst[o++] = b0;
      i++;
      continue;
    }
    uint32_t cp = decode(src + i, len);
    int32_t u = lookup(t, cp);
    if (u >= 0) {
      encode(dst + o, len, (uint32_t)u);
      o += (size_t)len;
    } else {
      int64_t k = -1 - (int64_t)u;
      if (k < t->special_count) {
        int32_t from = t->special_offsets[k], to = t->special_offsets[k + 1];
        memcpy(dst + o, t->special_bytes + from, (size_t)(to - from));
        o += (size_t)(to - from);
      } else {
        memcpy(dst + o, src + i, (size_t)len);  // unreachable (surrogates are never decoded)
        o += (size_t)len;
      }
    }
    i += (size_t)len;
  }
  return o;
}

uint8_t *codec_push(const codec_tables_t *t, codec_stream_t *s, uint8_t *buf, size_t n, uint8_t *out, size_t *out_length) {
  size_t start = 0, o = 0;
  int copying = 0;
  if (s->held_length > 0) {
    // Complete the held character with the first bytes of this chunk.
    size_t held = s->held_length;
    size_t take = 4 - held < n ? 4 - held : n;
    memcpy(s->held + held, buf, take);
    int len = sequence_length(s->held, held + take);
    if (len == INCOMPLETE) {
      s->held_length = (uint8_t)(held + take);  // take == n: everything is held
      *out_length = 0;
      return out;
    }
    s->held_length = 0;
    if (len > 0) {
      o = upcase_copy(t, s->held, (size_t)len, out);
      start = (size_t)len - held;
    } else {
      // Ill-formed: the held bytes pass through and the chunk is read from its start.
      memcpy(out, s->held, held);
      o = held;
    }
    copying = 1;
  }
  size_t tail = incomplete_tail_start(buf, start, n);
  if (tail < n) {
    memcpy(s->held, buf + tail, n - tail);
    s->held_length = (uint8_t)(n - tail);
  }
  if (!copying) {
    size_t k = upcase_in_place(t, buf, tail);
    if (k == tail) {
      *out_length = tail;
      return buf;
    }
    memcpy(out, buf, k);
    o = k;
    start = k;
  }
  *out_length = o + upcase_copy(t, buf + start, tail - start, out + o);
  return out;
}

size_t codec_end(codec_stream_t *s, uint8_t *out) {
  size_t n = s->held_length;
  memcpy(out, s->held, n);
  s->held_length = 0;
  return n;
}
