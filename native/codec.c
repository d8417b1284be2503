// The upcase codec in C: see codec.h. A counterpart of src/codec/utf8.ts
// (well-formedness, Unicode §3.9 Table 3-7) and src/codec/fast.ts (uppercased where
// lengths allow, the characters whose uppercase changes length spliced in after),
// with block paths for x86-64 (SSE2; AVX2 and AVX-512 VBMI2 where the CPU has them)
// and for AArch64 (NEON).
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
// [i, stop), except those whose uppercase changes length: their positions and table
// entries are appended to `specials` and `kinds` (*count of them). Returns where it
// stopped (>= stop).
static size_t upcase_scalar(const codec_tables_t *t, uint8_t *buf, size_t i, size_t stop, size_t n, uint32_t *specials, int32_t *kinds, size_t *count) {
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
    if (u < 0) {
      specials[*count] = (uint32_t)i;
      kinds[(*count)++] = u;
    }
    else if ((uint32_t)u != cp) encode(buf + i, len, (uint32_t)u);
    i += (size_t)len;
  }
  return i;
}


#if defined(__x86_64__)
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
static size_t upcase_in_place_sse2(const codec_tables_t *t, uint8_t *buf, size_t n, uint32_t *specials, int32_t *kinds) {
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
      i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, kinds, &count);
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
        kinds[count] = u;
        count += special;
        uint32_t uu = special ? cp : (uint32_t)u;
        out[k] = (0xc0 | (uu >> 6)) | ((0x80 | (uu & 0x3f)) << 8);
        at[k] = (uint32_t)p;
      }
      if (bad) {
        count = first_special;
        i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, kinds, &count);
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
      kinds[count] = u;
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
      i = upcase_scalar(t, buf, i, i + BLOCK, n, specials, kinds, &count);
      continue;
    }
    for (int j = 0; j < k; j++) memcpy(buf + at[j], &out[j], 4);
    i += end;
  }
  upcase_scalar(t, buf, i, n, n, specials, kinds, &count);
  return count;
}

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx512vbmi2,bmi,bmi2,popcnt")))

static const uint8_t IOTA[64] = {0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63};

#define B(x) _mm512_set1_epi8((char)(x))
#define D(x) _mm512_set1_epi32((int)(x))
#define AVX512_INLINE AVX512_TARGET static inline __attribute__((always_inline))

// A block between its table lookup (front) and its store (back). Each block's lookup
// is started before the last block is finished: the gather's latency overlaps work.
typedef struct {
  size_t i;
  uint64_t live, fill;  // the block's bytes, and its non-ASCII ones (where characters go)
  __m512i upper, w, cp, u, shift, at;
  __mmask16 lanes;
} avx512_block_t;

enum { BLOCK_ASCII, BLOCK_BAD, BLOCK_CHARS };

// Classifies and validates the block at buf + i and, when it has characters to
// uppercase (BLOCK_CHARS), decodes up to 16 of them and looks them up; b->live
// then says where the block ends.
AVX512_INLINE int avx512_front(const codec_tables_t *t, const uint8_t *buf, size_t i, avx512_block_t *b) {
  const __m512i iota = _mm512_loadu_si512(IOTA);
  __m512i v = _mm512_loadu_si512(buf + i);
  __mmask64 lower = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, B('a')), B(26));
  b->i = i;
  b->upper = _mm512_mask_sub_epi8(v, lower, v, B(0x20));
  uint64_t high = _mm512_movepi8_mask(v);
  if (high == 0) return BLOCK_ASCII;
  // By value: leads C0–FF, of which E0–FF expect 2 more bytes and F0–FF 3; the exact
  // ranges (no C0/C1/F5–FF, no overlongs, surrogates or code points past U+10FFFF) are
  // checked on the byte after each lead, from SECOND_LO/SECOND_HI (64 entries from C0).
  uint64_t leads_all = _mm512_cmpge_epu8_mask(v, B(0xc0));
  uint64_t long3 = _mm512_cmpge_epu8_mask(v, B(0xe0)), long4 = _mm512_cmpge_epu8_mask(v, B(0xf0));
  // The block ends before a character that crosses its end, and at its 17th character
  // (one vector of 16 code points per block, so no loop and no branch on the count).
  uint64_t crossing = (leads_all & (1ULL << 63)) | (long3 & (3ULL << 62)) | (long4 & (7ULL << 61));
  uint64_t before = (crossing & (0 - crossing)) - 1;  // all bits when nothing crosses
  uint64_t cut = crossing | _pdep_u64(1ULL << 16, leads_all & before);
  uint64_t live = cut ? (cut & (0 - cut)) - 1 : ~0ULL;
  uint64_t leads = leads_all & live;
  uint64_t expected = leads << 1 | (long3 & live) << 2 | (long4 & live) << 3;
  __m512i second = _mm512_permutexvar_epi8(_mm512_add_epi8(iota, B(1)), v);  // a live lead's is in the block
  // vpermb reads the low 6 bits of each lead: its offset from C0.
  uint64_t bad = _mm512_mask_cmplt_epu8_mask(leads, second, _mm512_permutexvar_epi8(v, _mm512_loadu_si512(SECOND_LO + 0xc0))) |
                 _mm512_mask_cmpgt_epu8_mask(leads, second, _mm512_permutexvar_epi8(v, _mm512_loadu_si512(SECOND_HI + 0xc0)));
  // Well-formed iff the continuation bytes before the end are exactly those the leads
  // expect, none is expected past it, and every second byte is in its lead's range.
  if (((expected & ~live) | ((high & ~leads_all & live) ^ expected) | bad) != 0) return BLOCK_BAD;
  b->live = live;
  b->fill = high & live;
  b->lanes = (__mmask16)_bzhi_u32(0xffffu, (unsigned)__builtin_popcountll(leads));
  // Each character's bytes (and what follows, unused) as one 32-bit lane, lead in byte 0:
  // lane k's window is bytes starts[k] + 0, 1, 2, 3. (A character before the end ends
  // before it too: the window's bytes past the block, taken modulo 64, are never used.)
  __m512i starts = _mm512_maskz_compress_epi8(leads, iota);
  const __m512i quad = _mm512_srli_epi16(_mm512_and_si512(iota, B(0x3c)), 2);  // 0,0,0,0,1,1,1,1, … 15
  __m512i w = _mm512_permutexvar_epi8(_mm512_add_epi8(_mm512_permutexvar_epi8(quad, starts), D(0x03020100)), v);
  b->w = w;
  b->at = _mm512_cvtepu8_epi32(_mm512_castsi512_si128(starts));
  __m512i lead = _mm512_and_si512(w, D(0xff));
  __mmask16 is3 = _mm512_cmpge_epu32_mask(lead, D(0xe0)), is4 = _mm512_cmpge_epu32_mask(lead, D(0xf0));
  // 8 × (4 − length): moves a character's bytes to the top of its lane, and back.
  b->shift = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(D(16), is3, D(8)), is4, _mm512_setzero_si512());
  __m512i payload = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(D(0x3f1f0000), is3, D(0x3f3f0f00)), is4, D(0x3f3f3f07));
  __m512i bits = _mm512_and_si512(_mm512_sllv_epi32(w, b->shift), payload);
  // Bytes 0–3 hold bits 18–20, 12–17, 6–11, 0–5 of the code point (0 where the character
  // is shorter): two multiply-adds put them together.
  __m512i cp = _mm512_madd_epi16(_mm512_maddubs_epi16(bits, D(0x01400140)), D(0x00011000));
  b->cp = cp;
  b->u = _mm512_mask_i32gather_epi32(cp, _mm512_cmplt_epu32_mask(cp, D(CODEC_TABLE_SIZE)) & b->lanes, cp, t->table, 4);
  return BLOCK_CHARS;
}

// Records the block's specials, re-encodes its other characters and stores it.
AVX512_INLINE void avx512_back(const avx512_block_t *b, uint8_t *dst, uint32_t *specials, int32_t *kinds, size_t *count) {
  __mmask16 special = _mm512_movepi32_mask(b->u) & b->lanes;
  // Recorded without a branch: about half the blocks of mixed text have a special.
  __mmask16 first = (__mmask16)_bzhi_u32(0xffffu, (unsigned)__builtin_popcount(special));
  _mm512_mask_storeu_epi32(specials + *count, first, _mm512_maskz_compress_epi32(special, _mm512_add_epi32(b->at, D(b->i))));
  _mm512_mask_storeu_epi32(kinds + *count, first, _mm512_maskz_compress_epi32(special, b->u));
  *count += (size_t)__builtin_popcount(special);
  // Same length, so only the payload bits change: flip those of cp ^ uppercase (none for
  // a special). For each 32-bit lane, multishift takes 8-bit fields from bits 18, 12, 6
  // and 0 (the 6-bit groups, high first) as bytes 0–3.
  __m512i flip = _mm512_maskz_xor_epi32((__mmask16)(b->lanes & ~special), b->cp, b->u);
  flip = _mm512_and_si512(_mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x20262c3200060c12LL), flip), D(0x3f3f3f3f));
  __m512i e = _mm512_xor_si512(b->w, _mm512_srlv_epi32(flip, b->shift));
  // Each character's bytes, packed, back over the block's non-ASCII bytes. All 64 are
  // stored: when the block ends early, the next one starts with a lead (not pure ASCII,
  // so not stored before this one) and rewrites the bytes past the end after this.
  __m512i char_bytes = _mm512_maskz_srlv_epi32(b->lanes, D(0xffffffff), b->shift);
  __m512i packed = _mm512_maskz_compress_epi8(_mm512_test_epi8_mask(char_bytes, char_bytes), e);
  _mm512_storeu_si512(dst + b->i, _mm512_mask_expand_epi8(b->upper, b->fill, packed));
}

// Uppercases buf[0, n) into dst (see upcase_scalar) 64 bytes at a time where it can:
// ASCII by vector; up to 16 multi-byte characters at once, found by compressing the
// lead positions, decoded, looked up with one gather, re-encoded and expanded back
// over the block's non-ASCII bytes. A block with an ill-formed byte goes through
// the scalar loop; so does the tail of the input.
AVX512_TARGET
static size_t upcase_to_avx512(const codec_tables_t *t, uint8_t *buf, uint8_t *dst, size_t n, uint32_t *specials, int32_t *kinds) {
  size_t i = 0, count = 0;
  avx512_block_t pending, next;
  int have_pending = 0;
  while (i + BLOCK <= n) {
    switch (avx512_front(t, buf, i, &next)) {
      case BLOCK_ASCII:
        _mm512_storeu_si512(dst + i, next.upper);
        i += BLOCK;
        break;
      case BLOCK_BAD: {
        if (have_pending) avx512_back(&pending, dst, specials, kinds, &count);
        have_pending = 0;
        size_t j = upcase_scalar(t, buf, i, i + BLOCK, n, specials, kinds, &count);
        memcpy(dst + i, buf + i, j - i);
        i = j;
        break;
      }
      default:
        if (have_pending) avx512_back(&pending, dst, specials, kinds, &count);
        pending = next;
        have_pending = 1;
        i += (size_t)__builtin_popcountll(next.live);
    }
  }
  if (have_pending) avx512_back(&pending, dst, specials, kinds, &count);
  upcase_scalar(t, buf, i, n, n, specials, kinds, &count);
  memcpy(dst + i, buf + i, n - i);
  return count;
}
#undef B
#undef D
#undef AVX512_INLINE

#define AVX2_TARGET __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define AVX2_INLINE AVX2_TARGET static inline __attribute__((always_inline))
#define B8(x) _mm256_set1_epi8((char)(x))
#define D8(x) _mm256_set1_epi32((int)(x))

// COMPRESS_LANES[m]: the lanes set in the 8-bit mask m, in order, 4 bits each (vpermd's
// indices packed): an AVX2 stand-in for AVX-512's compress. Filled by codec_init().
static uint32_t COMPRESS_LANES[256];
// Whether pdep takes a few cycles (it does, except on AMD Zen 1 and 2). Set by codec_init().
static int fast_pdep;

static void init_avx2_tables(void) {
  for (int m = 0; m < 256; m++) {
    uint32_t lanes = 0;
    int k = 0;
    for (int bit = 0; bit < 8; bit++)
      if (m & (1 << bit)) lanes |= (uint32_t)bit << (4 * k++);
    COMPRESS_LANES[m] = lanes;
  }
}

// The (k+1)th set bit of m alone, 0 when m has k or fewer. Where the next block starts is
// what the block loop waits on: pdep does this in 3 cycles where it is fast (not on AMD
// Zen 1 and 2, which microcode it).
AVX2_INLINE uint64_t nth_bit(uint64_t m, int k) {
  if (fast_pdep) return _pdep_u64(1ULL << k, m);
  if (__builtin_popcountll(m) <= k) return 0;
  while (k-- > 0) m &= m - 1;
  return m & (0 - m);
}

// ASCII lowercase → uppercase; every other byte unchanged. v - 'a' + 0x80 is at most
// -128 + 25 as a signed byte exactly when v is 'a'–'z'.
AVX2_INLINE __m256i avx2_upper(__m256i v) {
  __m256i lower = _mm256_cmpgt_epi8(B8(-128 + 26), _mm256_add_epi8(v, B8(0x80 - 'a')));
  return _mm256_sub_epi8(v, _mm256_and_si256(lower, B8(0x20)));
}

// Bit j set where byte j of the 64 bytes lo, hi is set in its top bit.
AVX2_INLINE uint64_t avx2_mask(__m256i lo, __m256i hi) {
  return (uint64_t)(uint32_t)_mm256_movemask_epi8(lo) | (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;
}

// Where the lead v is not followed by a second byte s in its range (Unicode Table 3-7):
// C0/C1 and F5–FF never lead, E0 takes A0–BF, ED 80–9F, F0 90–BF, F4 80–8F. Set for
// ASCII too (F5–FF are compared signed): the caller keeps the leads only.
AVX2_INLINE __m256i avx2_out_of_range(__m256i v, __m256i s) {
  __m256i le9f = _mm256_cmpeq_epi8(_mm256_min_epu8(s, B8(0x9f)), s);
  __m256i le8f = _mm256_cmpeq_epi8(_mm256_min_epu8(s, B8(0x8f)), s);
  __m256i bad = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, B8(0xfe)), B8(0xc0)), _mm256_cmpgt_epi8(v, B8(0xf4)));
  bad = _mm256_or_si256(bad, _mm256_and_si256(_mm256_cmpeq_epi8(v, B8(0xe0)), le9f));
  bad = _mm256_or_si256(bad, _mm256_andnot_si256(le9f, _mm256_cmpeq_epi8(v, B8(0xed))));
  bad = _mm256_or_si256(bad, _mm256_and_si256(_mm256_cmpeq_epi8(v, B8(0xf0)), le8f));
  return _mm256_or_si256(bad, _mm256_andnot_si256(le8f, _mm256_cmpeq_epi8(v, B8(0xf4))));
}

// Uppercases into dst the 1 to 8 characters of the well-formed block at buf + i that
// start where `leads` has a bit, and records the specials among them: each character's
// 4 bytes as one lane, decoded, looked up, re-encoded and written back in order.
AVX2_INLINE void avx2_chars(const codec_tables_t *t, const uint8_t *buf, uint8_t *dst, size_t i, uint64_t leads, uint32_t *specials, int32_t *kinds, size_t *count_io) {
  const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i nibble_shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  size_t count = *count_io;
  // Where each character starts, in order; the positions past the last repeat it (so
  // that writing all 8 back, in order, is right).
  uint64_t m = leads;
  unsigned pos[8];
  pos[0] = (unsigned)__builtin_ctzll(m);  // leads has at least one bit
  for (int k = 1; k < 8; k++) {
    m &= m - 1;
    pos[k] = m ? (unsigned)__builtin_ctzll(m) : pos[k - 1];
  }
  unsigned seen = (unsigned)__builtin_popcountll(leads);
  __m256i at = _mm256_setr_epi32((int)pos[0], (int)pos[1], (int)pos[2], (int)pos[3], (int)pos[4], (int)pos[5], (int)pos[6], (int)pos[7]);
  __m256i lanes = _mm256_cmpgt_epi32(D8(seen), lane_index);
  // Each character's 4 bytes (and what follows, unused) as one lane. Scalar loads: cheaper
  // than a gather of 8 lanes on the CPUs measured.
  const uint8_t *block = buf + i;
  uint32_t window[8];
  for (int k = 0; k < 8; k++) memcpy(&window[k], block + pos[k], 4);
  __m256i w = _mm256_setr_epi32((int)window[0], (int)window[1], (int)window[2], (int)window[3], (int)window[4], (int)window[5],
                                (int)window[6], (int)window[7]);
  __m256i lead = _mm256_and_si256(w, D8(0xff));
  __m256i is3 = _mm256_cmpgt_epi32(lead, D8(0xdf)), is4 = _mm256_cmpgt_epi32(lead, D8(0xef));
  // 8 × (4 − length): moves a character's bytes to the top of its lane, and back.
  __m256i shift = _mm256_add_epi32(D8(16), _mm256_add_epi32(_mm256_slli_epi32(is3, 3), _mm256_slli_epi32(is4, 3)));
  __m256i payload = _mm256_blendv_epi8(_mm256_blendv_epi8(D8(0x3f1f0000), D8(0x3f3f0f00), is3), D8(0x3f3f3f07), is4);
  __m256i bits = _mm256_and_si256(_mm256_sllv_epi32(w, shift), payload);
  // Bytes 0–3 hold bits 18–20, 12–17, 6–11, 0–5 of the code point (0 where the character
  // is shorter): two multiply-adds put them together.
  __m256i cp = _mm256_madd_epi16(_mm256_maddubs_epi16(bits, D8(0x01400140)), D8(0x00011000));
  // Code points past the table map to themselves: looked up at 0, then put back.
  __m256i past = _mm256_cmpgt_epi32(cp, D8(CODEC_TABLE_SIZE - 1));
  uint32_t c[8];
  _mm256_storeu_si256((__m256i *)c, _mm256_andnot_si256(past, cp));
  const int32_t *table = t->table;
  __m256i u = _mm256_setr_epi32(table[c[0]], table[c[1]], table[c[2]], table[c[3]], table[c[4]], table[c[5]], table[c[6]], table[c[7]]);
  u = _mm256_blendv_epi8(u, cp, past);
  // The characters whose uppercase changes length, recorded for the splice.
  unsigned special = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(u, lanes)));
  __m256i order = _mm256_srlv_epi32(D8(COMPRESS_LANES[special]), nibble_shift);
  _mm256_storeu_si256((__m256i *)(specials + count), _mm256_permutevar8x32_epi32(_mm256_add_epi32(at, D8(i)), order));
  _mm256_storeu_si256((__m256i *)(kinds + count), _mm256_permutevar8x32_epi32(u, order));
  count += (size_t)__builtin_popcount(special);
  // Same length, so only the payload bits change: flip those of cp ^ uppercase (none for
  // a special), each 6-bit group into its byte.
  __m256i flip = _mm256_andnot_si256(_mm256_srai_epi32(u, 31), _mm256_and_si256(lanes, _mm256_xor_si256(cp, u)));
  __m256i spread = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(flip, 24), D8(0x3f000000)),
                                   _mm256_and_si256(_mm256_slli_epi32(flip, 10), D8(0x003f0000)));
  spread = _mm256_or_si256(spread, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(flip, 4), D8(0x3f00)), _mm256_srli_epi32(flip, 18)));
  // The window's bytes after the character are uppercased too: they are ASCII, or
  // rewritten by the next character, or past the block's end (rewritten by the next
  // block, which is stored after this one).
  __m256i e = avx2_upper(_mm256_xor_si256(w, _mm256_srlv_epi32(spread, shift)));
  // Written back in order, always 8 (a loop of `seen` would be mispredicted about
  // every block): the lanes past the last character repeat it.
  uint32_t encoded[8];
  _mm256_storeu_si256((__m256i *)encoded, _mm256_permutevar8x32_epi32(e, _mm256_min_epu32(lane_index, D8(seen - 1))));
  for (int k = 0; k < 8; k++) memcpy(dst + i + pos[k], &encoded[k], 4);
  *count_io = count;
}

// Uppercases buf[0, n) into dst (see upcase_scalar) 64 bytes at a time where it can:
// ASCII by vector; up to 16 multi-byte characters per block (the block ends at the 17th),
// 8 per vector: their positions from the lead mask by tzcnt, read as one 32-bit lane
// each, decoded, looked up in the case table, re-encoded and written back over the
// block. A block with an ill-formed byte goes through the scalar loop; so does the tail
// of the input.
AVX2_TARGET
static size_t upcase_to_avx2(const codec_tables_t *t, uint8_t *buf, uint8_t *dst, size_t n, uint32_t *specials, int32_t *kinds) {
  size_t i = 0, count = 0;
  while (i + BLOCK + 3 <= n) {
    __m256i v0 = _mm256_loadu_si256((const __m256i *)(buf + i)), v1 = _mm256_loadu_si256((const __m256i *)(buf + i + 32));
    __m256i upper0 = avx2_upper(v0), upper1 = avx2_upper(v1);
    uint64_t high = avx2_mask(v0, v1);
    _mm256_storeu_si256((__m256i *)(dst + i), upper0);
    _mm256_storeu_si256((__m256i *)(dst + i + 32), upper1);
    if (high == 0) {
      i += BLOCK;
      continue;
    }
    // By value: leads C0–FF, of which E0–FF expect 2 more bytes and F0–FF 3 (signed
    // compares: C0–FF are -64 to -1, so ASCII is masked out with `high`).
    uint64_t leads_all = high & avx2_mask(_mm256_cmpgt_epi8(v0, B8(0xbf)), _mm256_cmpgt_epi8(v1, B8(0xbf)));
    uint64_t long3 = high & avx2_mask(_mm256_cmpgt_epi8(v0, B8(0xdf)), _mm256_cmpgt_epi8(v1, B8(0xdf)));
    uint64_t long4 = high & avx2_mask(_mm256_cmpgt_epi8(v0, B8(0xef)), _mm256_cmpgt_epi8(v1, B8(0xef)));
    uint64_t out_of_range = avx2_mask(avx2_out_of_range(v0, _mm256_loadu_si256((const __m256i *)(buf + i + 1))),
                                      avx2_out_of_range(v1, _mm256_loadu_si256((const __m256i *)(buf + i + 33))));
    // The block ends before a character that crosses its end, and at its 17th character
    // (two vectors of 8 code points per block).
    uint64_t cut = (leads_all & (1ULL << 63)) | (long3 & (3ULL << 62)) | (long4 & (7ULL << 61)) | nth_bit(leads_all, 16);
    uint64_t live = cut ? (cut & (0 - cut)) - 1 : ~0ULL;
    uint64_t leads = leads_all & live;
    uint64_t expected = leads << 1 | (long3 & live) << 2 | (long4 & live) << 3;
    // Well-formed iff the continuation bytes before the end are exactly those the leads
    // expect, none is expected past it, and every second byte is in its lead's range.
    if (((expected & ~live) | ((high & ~leads_all & live) ^ expected) | (out_of_range & leads)) != 0) {
      size_t j = upcase_scalar(t, buf, i, i + BLOCK, n, specials, kinds, &count);
      memcpy(dst + i, buf + i, j - i);
      i = j;
      continue;
    }
    // At most 8 characters per vector: the first 8, then the rest.
    uint64_t first8 = leads & (nth_bit(leads, 8) - 1);
    // (None when the block's only lead crosses its end: the block is ASCII up to it.)
    if (first8 != 0) avx2_chars(t, buf, dst, i, first8, specials, kinds, &count);
    if (leads != first8) avx2_chars(t, buf, dst, i, leads & ~first8, specials, kinds, &count);
    i += (size_t)__builtin_popcountll(live);
  }
  upcase_scalar(t, buf, i, n, n, specials, kinds, &count);
  memcpy(dst + i, buf + i, n - i);
  return count;
}
#undef B8
#undef D8

#endif  // x86-64

#if defined(__aarch64__)
#include <arm_neon.h>

// Uppercases buf[0, n) in place (see upcase_scalar) 16 bytes at a time: ASCII by vector;
// a block with a byte >= 0x80 goes through the scalar loop, which stops at the end of
// a character, and the vector loop goes on from there.
static size_t upcase_in_place_neon(const codec_tables_t *t, uint8_t *buf, size_t n, uint32_t *specials, int32_t *kinds) {
  size_t i = 0, count = 0;
  const uint8x16_t a = vdupq_n_u8('a'), letters = vdupq_n_u8(26), bit = vdupq_n_u8(0x20);
  while (i + 16 <= n) {
    uint8x16_t v = vld1q_u8(buf + i);
    if (vmaxvq_u8(v) < 0x80) {
      // v - 'a' < 26 (unsigned) exactly for 'a'–'z'.
      uint8x16_t lower = vcltq_u8(vsubq_u8(v, a), letters);
      vst1q_u8(buf + i, vsubq_u8(v, vandq_u8(lower, bit)));
      i += 16;
      continue;
    }
    // 2-byte characters are the common case of non-ASCII text, and scalar handles them
    // one at a time; it returns at the first character boundary at or past i + 16.
    i = upcase_scalar(t, buf, i, i + 16, n, specials, kinds, &count);
  }
  upcase_scalar(t, buf, i, n, n, specials, kinds, &count);
  return count;
}
#endif

static const char *const PATH_NAMES[CODEC_PATH_COUNT] = {"auto", "scalar", "sse2", "avx2", "avx512", "neon"};
static int have_path[CODEC_PATH_COUNT];
static codec_path_t auto_path = CODEC_PATH_SCALAR;
static char path_error[160];

const char *codec_path_name(codec_path_t path) { return (unsigned)path < CODEC_PATH_COUNT ? PATH_NAMES[path] : NULL; }

int codec_path_from_name(const char *name) {
  for (int p = 0; p < CODEC_PATH_COUNT; p++)
    if (strcmp(name, PATH_NAMES[p]) == 0) return p;
  return -1;
}

void codec_init(void) {
  have_path[CODEC_PATH_AUTO] = have_path[CODEC_PATH_SCALAR] = 1;
#if defined(__x86_64__)
  init_second();
  init_avx2_tables();
  __builtin_cpu_init();
  have_path[CODEC_PATH_SSE2] = 1;
  have_path[CODEC_PATH_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                               __builtin_cpu_supports("popcnt");
  fast_pdep = !__builtin_cpu_is("znver1") && !__builtin_cpu_is("znver2");
  have_path[CODEC_PATH_AVX512] = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                                 __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
                                 __builtin_cpu_supports("bmi2");
#elif defined(__aarch64__)
  have_path[CODEC_PATH_NEON] = 1;  // Advanced SIMD is part of every AArch64 CPU
#endif
  auto_path = CODEC_PATH_SCALAR;
  for (int p = CODEC_PATH_SCALAR; p < CODEC_PATH_COUNT; p++)
    if (have_path[p]) auto_path = (codec_path_t)p;  // the enum lists the paths narrowest first
  path_error[0] = 0;
  const char *forced = getenv("UPCASE_CODEC_PATH");
  if (forced == NULL || forced[0] == 0) return;
  int p = codec_path_from_name(forced);
  if (p >= 0 && have_path[p]) {
    if (p != CODEC_PATH_AUTO) auto_path = (codec_path_t)p;
    return;
  }
  int at = snprintf(path_error, sizeof path_error, "UPCASE_CODEC_PATH=%.24s: %s (this CPU has", forced,
                    p < 0 ? "not a C codec path" : "not available on this CPU");
  for (int q = CODEC_PATH_SCALAR; q < CODEC_PATH_COUNT; q++)
    if (have_path[q] && at > 0 && (size_t)at < sizeof path_error)
      at += snprintf(path_error + at, sizeof path_error - (size_t)at, "%s%s", q == CODEC_PATH_SCALAR ? " " : ", ", PATH_NAMES[q]);
  if (at > 0 && (size_t)at < sizeof path_error) snprintf(path_error + at, sizeof path_error - (size_t)at, ")");
}

const char *codec_path_error(void) { return path_error[0] ? path_error : NULL; }

int codec_path_available(codec_path_t path) { return (unsigned)path < CODEC_PATH_COUNT && have_path[path]; }

codec_path_t codec_resolve_path(codec_path_t path) { return path == CODEC_PATH_AUTO ? auto_path : path; }

// Uppercases buf[0, n) (see upcase_scalar) on the given path. The AVX2 and AVX-512 ones
// write to scratch->mid: their next block's loads then never wait on the last block's
// store. Sets *result to where the output is.
static size_t upcase_chunk(const codec_tables_t *t, codec_path_t path, uint8_t *buf, size_t n, const codec_scratch_t *sc, uint8_t **result) {
  *result = buf;
  switch (path) {
#if defined(__x86_64__)
    case CODEC_PATH_AVX512:
      *result = sc->mid + CODEC_HEADROOM;
      return upcase_to_avx512(t, buf, *result, n, sc->specials, sc->kinds);
    case CODEC_PATH_AVX2:
      *result = sc->mid + CODEC_HEADROOM;
      return upcase_to_avx2(t, buf, *result, n, sc->specials, sc->kinds);
    case CODEC_PATH_SSE2:
      return upcase_in_place_sse2(t, buf, n, sc->specials, sc->kinds);
#elif defined(__aarch64__)
    case CODEC_PATH_NEON:
      return upcase_in_place_neon(t, buf, n, sc->specials, sc->kinds);
#endif
    default: {
      size_t count = 0;
      upcase_scalar(t, buf, 0, n, n, sc->specials, sc->kinds, &count);
      return count;
    }
  }
}

// The record (codec.h) of a special character, from its table entry u (< 0).
static inline const uint8_t *special_record(const codec_tables_t *t, int32_t u) {
  return t->specials + (size_t)(-1 - (int64_t)u) * CODEC_RECORD_SIZE;
}

// Copies len bytes from src to dst, 64 at a time while src_end allows reading that
// far (no call, and a loop that mostly runs once: the gaps between specials are short).
// dst may be written up to 63 bytes past len (CODEC_OUT_SIZE has room).
static inline __attribute__((always_inline)) void copy_gap(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *src_end) {
  if (src + len + 64 <= src_end) {
    size_t c = 0;
    do {
      memcpy(dst + c, src + c, 64);
      c += 64;
    } while (c < len);
  } else {
    memcpy(dst, src, len);
  }
}

// After upcase_chunk() found `count` specials in buf[0, n) (where, and their table
// entries): the whole output, assembled in `out` after `prefix` bytes already there.
// Returns its length.
static inline __attribute__((always_inline)) size_t splice_inline(const codec_tables_t *t, const uint8_t *buf, size_t n, const uint32_t *specials, const int32_t *kinds, size_t count, uint8_t *out, size_t prefix) {
  size_t o = prefix, from = 0;
  for (size_t k = 0; k < count; k++) {
    size_t p = specials[k];
    copy_gap(out + o, buf + from, p - from, buf + n);
    o += p - from;
    const uint8_t *record = special_record(t, kinds[k]);
    memcpy(out + o, record, CODEC_RECORD_SIZE);  // the uppercase, then bytes rewritten next
    o += record[15];
    from = p + record[14];
  }
  memcpy(out + o, buf + from, n - from);
  return o + (n - from);
}

#define SPLICE_ARGS const codec_tables_t *t, const uint8_t *buf, size_t n, const uint32_t *specials, const int32_t *kinds, size_t count, uint8_t *out, size_t prefix
static size_t splice(SPLICE_ARGS) { return splice_inline(t, buf, n, specials, kinds, count, out, prefix); }
#if defined(__x86_64__)
// The same, for the AVX-512 and AVX2 paths: their 64-byte copies are one or two instructions.
AVX512_TARGET static size_t splice_avx512(SPLICE_ARGS) { return splice_inline(t, buf, n, specials, kinds, count, out, prefix); }
AVX2_TARGET static size_t splice_avx2(SPLICE_ARGS) { return splice_inline(t, buf, n, specials, kinds, count, out, prefix); }
#endif
typedef size_t splice_fn(SPLICE_ARGS);
#undef SPLICE_ARGS

// The splice for a path (compiled for its instruction set).
static splice_fn *splice_for(codec_path_t path) {
#if defined(__x86_64__)
  if (path == CODEC_PATH_AVX512) return splice_avx512;
  if (path == CODEC_PATH_AVX2) return splice_avx2;
#endif
  (void)path;
  return splice;
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
      uint32_t at;
      int32_t kind;
      size_t count = 0;
      upcase_scalar(t, s->held, 0, (size_t)len, (size_t)len, &at, &kind, &count);
      if (count == 0) {
        memcpy(prefix, s->held, (size_t)len);
        prefix_length = (size_t)len;
      } else {
        const uint8_t *record = special_record(t, kind);
        prefix_length = record[15];
        memcpy(prefix, record, prefix_length);
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
  uint8_t *same;
  codec_path_t path = codec_resolve_path((codec_path_t)s->path);
  size_t count = upcase_chunk(t, path, buf + start, tail - start, scratch, &same);
  if (count == 0) {
    // Same lengths: the output is the uppercased chunk, the prefix put just before it.
    uint8_t *begin = same - prefix_length;
    memcpy(begin, prefix, prefix_length);
    *out_length = prefix_length + (tail - start);
    return begin;
  }
  memcpy(scratch->out, prefix, prefix_length);
  *out_length = splice_for(path)(t, same, tail - start, scratch->specials, scratch->kinds, count, scratch->out, prefix_length);
  return scratch->out;
}

static inline int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

int codec_build_tables(codec_tables_t *t, const int32_t *table, const int32_t *offsets, size_t special_count, const uint8_t *bytes, size_t bytes_length) {
  if (special_count > (size_t)INT32_MAX / 2 || offsets[0] != 0) return 0;
  for (size_t k = 0; k < special_count; k++) {
    if (offsets[k + 1] < offsets[k] || (size_t)offsets[k + 1] > bytes_length || offsets[k + 1] - offsets[k] > 4 * CODEC_MAX_GROWTH) return 0;
  }
  int32_t *copy = malloc(CODEC_TABLE_SIZE * sizeof(int32_t));
  uint8_t *records = calloc(special_count > 0 ? special_count : 1, CODEC_RECORD_SIZE);
  int ok = copy != NULL && records != NULL;
  for (uint32_t cp = 0; ok && cp < CODEC_TABLE_SIZE; cp++) {
    int32_t u = copy[cp] = table[cp];
    if (cp >= 0xd800 && cp <= 0xdfff) continue;  // never decoded from well-formed UTF-8
    if (u >= 0) {
      // The block paths write an uppercase over its character: same length, or else special.
      ok = u <= 0x10ffff && (u < 0xd800 || u > 0xdfff) && utf8_length((uint32_t)u) == utf8_length(cp);
      continue;
    }
    size_t k = (size_t)(-1 - (int64_t)u);
    if (k >= special_count) {
      ok = 0;
      break;
    }
    uint8_t *record = records + k * CODEC_RECORD_SIZE;
    int n = utf8_length(cp);
    ok = (record[14] == 0 || record[14] == n) && (size_t)(offsets[k + 1] - offsets[k]) <= (size_t)n * CODEC_MAX_GROWTH;
    if (!ok) break;
    record[14] = (uint8_t)n;
    record[15] = (uint8_t)(offsets[k + 1] - offsets[k]);
    memcpy(record, bytes + offsets[k], record[15]);
  }
  if (!ok) {
    free(copy);
    free(records);
    return 0;
  }
  t->table = copy;
  t->specials = records;
  t->special_count = (int32_t)special_count;
  return 1;
}

size_t codec_end(codec_stream_t *s, uint8_t *out) {
  size_t n = s->held_length;
  memcpy(out, s->held, n);
  s->held_length = 0;
  return n;
}
