// The upcase codec in C: see codec.h. A counterpart of src/codec/utf8.ts
// (well-formedness, Unicode §3.9 Table 3-7) and src/codec/fast.ts (in place where
// lengths allow, spliced where they do not), with an SSE2 block path on x86-64.
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

// Uppercases in place the characters of buf[0, n) (complete input) that start in
// [i, stop), except those whose uppercase changes length: their positions are
// appended to `specials` (*count of them). Returns where it stopped (>= stop).
static size_t upcase_scalar(const codec_tables_t *t, uint8_t *buf, size_t i, size_t stop, size_t n, uint32_t *specials, size_t *count) {
  while (i < stop) {
    while (i + 8 <= stop) {
      uint64_t w;
      memcpy(&w, buf + i, 8);
      if (w & ASCII_HIGH) break;
      w = upper8(w);
      memcpy(buf + i, &w, 8);
      i += 8;
    }
    if (i >= stop) break;
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
    if (u < 0) specials[(*count)++] = (uint32_t)i;
    else if ((uint32_t)u != cp) encode(buf + i, len, (uint32_t)u);
    i += (size_t)len;
  }
  return i;
}


#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define BLOCK 64

// Bit j set where byte j of the block, masked with `mask`, equals `want`.
static inline uint64_t class_mask(const __m128i v[4], uint8_t mask, uint8_t want) {
  const __m128i m = _mm_set1_epi8((char)mask), w = _mm_set1_epi8((char)want);
  uint64_t bits = 0;
  for (int k = 0; k < 4; k++) bits |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v[k], m), w)) << (16 * k);
  return bits;
}

// The second byte's allowed range for each lead (Unicode Table 3-7); lo > hi for bytes
// that cannot lead a multi-byte sequence (C0, C1, F5–FF). Filled by codec_init().
static uint8_t SECOND_LO[256], SECOND_HI[256];

static void init_second(void) {
  for (int b = 0; b < 256; b++) {
    uint8_t lo = 0x80, hi = 0xbf;
    if (b < 0xc2 || b > 0xf4) lo = 0xff, hi = 0;
    else if (b == 0xe0) lo = 0xa0;
    else if (b == 0xed) hi = 0x9f;
    else if (b == 0xf0) lo = 0x90;
    else if (b == 0xf4) hi = 0x8f;
    SECOND_LO[b] = lo;
    SECOND_HI[b] = hi;
  }
}

static const uint32_t KEEP_MASK[5] = {0, 0xffffff00u, 0xffff0000u, 0xff000000u, 0};

// Uppercases buf[0, n) in place (see upcase_scalar), 64 bytes at a time where it can:
// ASCII by vector, then each multi-byte character, found from the block's class
// masks (so no character's position waits on the one before), decoded and
// re-encoded without branches into `out`, and stored in order once the block
// is known to be well-formed. A block with an ill-formed byte goes through the
// scalar loop; so does the tail of the input.
static size_t upcase_in_place(const codec_tables_t *t, uint8_t *buf, size_t n, uint32_t *specials) {
  size_t i = 0, count = 0;
  uint32_t at[BLOCK], out[BLOCK];
  while (i + BLOCK + 3 <= n) {
    __m128i v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm_loadu_si128((const __m128i *)(buf + i + 16 * k));
    uint64_t high = 0;
    for (int k = 0; k < 4; k++) high |= (uint64_t)(uint16_t)_mm_movemask_epi8(v[k]) << (16 * k);
    // ASCII lowercase → uppercase; bytes >= 0x80 are negative as signed and never match.
    for (int k = 0; k < 4; k++) {
      __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(v[k], _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(v[k], _mm_set1_epi8('z' + 1)));
      _mm_storeu_si128((__m128i *)(buf + i + 16 * k), _mm_sub_epi8(v[k], _mm_and_si128(lower, _mm_set1_epi8(0x20))));
    }
    if (high == 0) {
      i += BLOCK;
      continue;
    }
    // By the lead's top bits; the exact ranges (no C0/C1/F5–F7 leads, no overlongs,
    // surrogates or code points past U+10FFFF) are checked per character below.
    uint64_t cont = class_mask(v, 0xc0, 0x80);
    uint64_t lead2 = class_mask(v, 0xe0, 0xc0);
    uint64_t lead3 = class_mask(v, 0xf0, 0xe0);
    uint64_t lead4 = class_mask(v, 0xf8, 0xf0);
    uint64_t leads = lead2 | lead3 | lead4;
    // A character crossing the block's end starts the next block.
    uint64_t crossing = (lead2 & (1ULL << 63)) | (lead3 & (3ULL << 62)) | (lead4 & (7ULL << 61));
    size_t end = crossing ? (size_t)__builtin_ctzll(crossing) : BLOCK;
    uint64_t live = end == BLOCK ? ~0ULL : (1ULL << end) - 1;
    leads &= live;
    uint64_t expected = ((lead2 | lead3 | lead4) & live) << 1 | ((lead3 | lead4) & live) << 2 | (lead4 & live) << 3;
    // Well-formed iff every non-ASCII byte before `end` is a lead or a continuation byte
    // its lead expects, and no lead before `end` expects one at or past it.
    if ((expected & ~live) != 0 || ((high & live) & ~leads) != expected || (cont & live) != expected) {
      i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, &count);
      continue;
    }
    int k = 0;
    uint32_t bad = 0;
    size_t first_special = count;
    if (((lead3 | lead4) & live) == 0) {
      // Only 2-byte characters (Latin, Greek, Cyrillic, … text): the short form.
      for (uint64_t m = leads; m; m &= m - 1, k++) {
        size_t p = i + (size_t)__builtin_ctzll(m);
        uint32_t b0 = buf[p], b1 = buf[p + 1];
        bad |= b0 < 0xc2;
        uint32_t cp = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
        int32_t u = t->table[cp];
        uint32_t special = u < 0;
        specials[count] = (uint32_t)p;
        count += special;
        uint32_t uu = special ? cp : (uint32_t)u;
        out[k] = (0xc0 | (uu >> 6)) | ((0x80 | (uu & 0x3f)) << 8);
        at[k] = (uint32_t)p;
      }
      if (bad) {
        count = first_special;
        i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, &count);
        continue;
      }
      for (int j = 0; j < k; j++) memcpy(buf + at[j], &out[j], 2);
      i += end;
      continue;
    }
    for (uint64_t m = leads; m; m &= m - 1, k++) {
      size_t p = i + (size_t)__builtin_ctzll(m);
      uint32_t w;
      memcpy(&w, buf + p, 4);
      uint32_t b0 = w & 0xff, b1 = (w >> 8) & 0xff, b2 = (w >> 16) & 0xff, b3 = w >> 24;
      uint32_t len = 2 + (b0 >= 0xe0) + (b0 >= 0xf0);
      bad |= (b1 < SECOND_LO[b0]) | (b1 > SECOND_HI[b0]);
      uint32_t cp2 = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
      uint32_t cp3 = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
      uint32_t cp4 = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
      uint32_t cp = len == 2 ? cp2 : len == 3 ? cp3 : cp4;
      int32_t u = t->table[cp < CODEC_TABLE_SIZE ? cp : 0];
      u = cp < CODEC_TABLE_SIZE ? u : (int32_t)cp;
      uint32_t special = u < 0;
      specials[count] = (uint32_t)p;
      count += special;
      uint32_t uu = special ? cp : (uint32_t)u;
      uint32_t e2 = (0xc0 | (uu >> 6)) | ((0x80 | (uu & 0x3f)) << 8);
      uint32_t e3 = (0xe0 | (uu >> 12)) | ((0x80 | ((uu >> 6) & 0x3f)) << 8) | ((0x80 | (uu & 0x3f)) << 16);
      uint32_t e4 = (0xf0 | (uu >> 18)) | ((0x80 | ((uu >> 12) & 0x3f)) << 8) | ((0x80 | ((uu >> 6) & 0x3f)) << 16) | ((0x80u | (uu & 0x3f)) << 24);
      uint32_t e = len == 2 ? e2 : len == 3 ? e3 : e4;
      out[k] = (e & ~KEEP_MASK[len]) | (w & KEEP_MASK[len]);
      at[k] = (uint32_t)p;
    }
    if (bad) {
      // An ill-formed sequence after all: nothing was written yet but the (idempotent) ASCII.
      count = first_special;
      i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, &count);
      continue;
    }
    for (int j = 0; j < k; j++) memcpy(buf + at[j], &out[j], 4);
    i += end;
  }
  upcase_scalar(t, buf, i, n, n, specials, &count);
  return count;
}
void codec_init(void) { init_second(); }
#else
static size_t upcase_in_place(const codec_tables_t *t, uint8_t *buf, size_t n, uint32_t *specials) {
  size_t count = 0;
  upcase_scalar(t, buf, 0, n, n, specials, &count);
  return count;
}

void codec_init(void) {}
#endif

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
