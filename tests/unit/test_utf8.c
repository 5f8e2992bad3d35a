/* util/utf8: well-formed UTF-8 by RFC 3629 section 4 (no overlongs, no
 * surrogates, nothing past U+10FFFF, no truncated sequences, NUL allowed),
 * encoding, hex digits and \uXXXX escapes with surrogate pairs. The edge
 * cases are spelled out; then every 1-, 2- and 3-byte input, and every
 * 4-byte input with interesting tails, is compared with a reference that
 * decodes first and judges the code point, a different formulation of the
 * same rule. */
#include "check.h"
#include "util/err.h"
#include "util/utf8.h"

#include <stdbool.h>

/* Reference: decode by the bit patterns alone, then reject by value. */
static size_t ref_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static bool valid(const char *s, size_t n) { return mq_utf8_valid((const uint8_t *)s, n); }

/* One sequence, its length n, and what mq_utf8_seq must say of it. */
struct edge {
  const char *s;
  size_t n, want;
  const char *what;
};

static const struct edge edges[] = {
    /* boundaries of each length, all well-formed */
    {"\x00", 1, 1, "NUL is UTF-8; keys refuse it elsewhere"},
    {"\x7f", 1, 1, "U+007F"},
    {"\xc2\x80", 2, 2, "U+0080"},
    {"\xdf\xbf", 2, 2, "U+07FF"},
    {"\xe0\xa0\x80", 3, 3, "U+0800"},
    {"\xed\x9f\xbf", 3, 3, "U+D7FF, last before the surrogates"},
    {"\xee\x80\x80", 3, 3, "U+E000, first after them"},
    {"\xef\xbf\xbf", 3, 3, "U+FFFF"},
    {"\xf0\x90\x80\x80", 4, 4, "U+10000"},
    {"\xf4\x8f\xbf\xbf", 4, 4, "U+10FFFF"},
    /* overlong forms */
    {"\xc0\xaf", 2, 0, "overlong '/'"},
    {"\xc1\xbf", 2, 0, "overlong U+007F"},
    {"\xc0\x80", 2, 0, "overlong NUL (modified UTF-8)"},
    {"\xe0\x80\xaf", 3, 0, "overlong '/' in 3 bytes"},
    {"\xe0\x9f\xbf", 3, 0, "overlong U+07FF"},
    {"\xf0\x80\x80\xaf", 4, 0, "overlong '/' in 4 bytes"},
    {"\xf0\x8f\xbf\xbf", 4, 0, "overlong U+FFFF"},
    /* surrogates U+D800..U+DFFF */
    {"\xed\xa0\x80", 3, 0, "U+D800"},
    {"\xed\xaf\xbf", 3, 0, "U+DBFF"},
    {"\xed\xb0\x80", 3, 0, "U+DC00"},
    {"\xed\xbf\xbf", 3, 0, "U+DFFF"},
    /* past U+10FFFF */
    {"\xf4\x90\x80\x80", 4, 0, "U+110000"},
    {"\xf5\x80\x80\x80", 4, 0, "lead F5"},
    {"\xf7\xbf\xbf\xbf", 4, 0, "U+1FFFFF"},
    {"\xf8\x88\x80\x80\x80", 5, 0, "old 5-byte form"},
    {"\xfc\x84\x80\x80\x80\x80", 6, 0, "old 6-byte form"},
    {"\xfe", 1, 0, "FE"},
    {"\xff", 1, 0, "FF"},
    /* truncated: by n, and by a byte that is not a continuation */
    {"\xc3", 1, 0, "2-byte lead alone"},
    {"\xe2\x82", 2, 0, "3 bytes cut at 2"},
    {"\xf0\x9f\x98", 3, 0, "4 bytes cut at 3"},
    {"\xe2\x82\xac", 2, 0, "n cuts it even if memory goes on"},
    {"\xc3x", 2, 0, "ASCII after a lead"},
    {"\xe2\x82x", 3, 0, "ASCII as the third byte"},
    {"\xf0\x9f\x98\x00", 4, 0, "NUL as the last byte"},
    {"\x80", 1, 0, "lone continuation byte"},
    {"\xbf", 1, 0, "lone continuation byte BF"},
};

static void test_edges(void) {
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    const struct edge *e = &edges[i];
    size_t got = mq_utf8_seq((const uint8_t *)e->s, e->n);
    if (got != e->want)
      CHECK_FAIL("%s: mq_utf8_seq says %zu, want %zu", e->what, got, e->want);
  }
  CHECK(valid("", 0));
  CHECK(valid(NULL, 0));
  CHECK(valid("a\0b", 3));
  CHECK(valid("user:1:\xc3\xa9t\xc3\xa9", 12));
  CHECK(valid("\xf0\x9f\x98\x80", 4));
  CHECK(!valid("\xed\xa0\xbd\xed\xb8\x80", 6)); /* a CESU-8 surrogate pair */
  CHECK(!valid("\xf0\x9f\x98\x80\x80", 5));
  CHECK(!valid("abc\xe2\x82", 5));
  CHECK(!valid("\xff"
               "abc",
               4));
}

static void test_exhaustive(void) {
  uint8_t b[4];
  for (uint32_t v = 0; v < 0x100; v++) {
    b[0] = (uint8_t)v;
    CHECK_UEQ(mq_utf8_seq(b, 1), ref_seq(b, 1));
  }
  for (uint32_t v = 0; v < 0x10000; v++) {
    b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v;
    if (mq_utf8_seq(b, 2) != ref_seq(b, 2))
      CHECK_FAIL("2 bytes %02x %02x: %zu vs reference %zu", b[0], b[1], mq_utf8_seq(b, 2),
                 ref_seq(b, 2));
  }
  for (uint32_t v = 0; v < 0x1000000; v++) {
    b[0] = (uint8_t)(v >> 16), b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)v;
    if (mq_utf8_seq(b, 3) != ref_seq(b, 3))
      CHECK_FAIL("3 bytes %02x %02x %02x: %zu vs reference %zu", b[0], b[1], b[2],
                 mq_utf8_seq(b, 3), ref_seq(b, 3));
  }
  /* 4 bytes: every lead and second byte; tails at and around the
   * continuation range */
  static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x81, 0xbe, 0xbf, 0xc0, 0xf4, 0xff};
  const size_t nt = sizeof tails;
  for (uint32_t v = 0; v < 0x10000; v++)
    for (size_t i = 0; i < nt * nt; i++) {
      b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v, b[2] = tails[i / nt], b[3] = tails[i % nt];
      if (mq_utf8_seq(b, 4) != ref_seq(b, 4))
        CHECK_FAIL("4 bytes %02x %02x %02x %02x: %zu vs reference %zu", b[0], b[1], b[2], b[3],
                   mq_utf8_seq(b, 4), ref_seq(b, 4));
    }
}

/* Every scalar value encodes to a sequence that is well-formed, of the
 * shortest length, and decodes back to the value. */
static void test_encode(void) {
  for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
    if (cp == 0xd800)
      cp = 0xe000;
    char out[MQ_UTF8_MAX];
    size_t n = mq_utf8_encode(cp, out);
    size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n != want || mq_utf8_seq((const uint8_t *)out, n) != n)
      CHECK_FAIL("U+%04X encodes to %zu bytes (want %zu), seq %zu", (unsigned)cp, n, want,
                 mq_utf8_seq((const uint8_t *)out, n));
    const uint8_t *u = (const uint8_t *)out;
    uint32_t back = n == 1 ? u[0] : (uint32_t)u[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++)
      back = back << 6 | (u[i] & 0x3f);
    if (back != cp)
      CHECK_FAIL("U+%04X decodes back to U+%04X", (unsigned)cp, (unsigned)back);
  }
  char out[MQ_UTF8_MAX];
  CHECK_EQ(mq_utf8_encode(0x20ac, out), 3);
  CHECK(memcmp(out, "\xe2\x82\xac", 3) == 0);
  CHECK_EQ(mq_utf8_encode(0x1f600, out), 4);
  CHECK(memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
}

static void test_hex(void) {
  for (int c = -128; c < 128; c++) {
    int want = c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
    if (mq_hex_digit((char)c) != want)
      CHECK_FAIL("hex digit %d: %d, want %d", c, mq_hex_digit((char)c), want);
  }
}

/* mq_utf16_escape on s (the text after "\u"); returns the code. */
static int esc(const char *s, uint32_t *cp, size_t *used) {
  *cp = 0xffffffff;
  *used = 99;
  return mq_utf16_escape(s, strlen(s), cp, used);
}

static void test_escape(void) {
  uint32_t cp;
  size_t used;
  CHECK_EQ(esc("0041", &cp, &used), 0);
  CHECK_UEQ(cp, 0x41);
  CHECK_EQ(used, 4);
  CHECK_EQ(esc("20aCrest", &cp, &used), 0); /* mixed case; text may follow */
  CHECK_UEQ(cp, 0x20ac);
  CHECK_EQ(used, 4);
  CHECK_EQ(esc("0000", &cp, &used), 0); /* NUL decodes; callers decide */
  CHECK_UEQ(cp, 0);
  CHECK_EQ(esc("FFFF", &cp, &used), 0);
  CHECK_UEQ(cp, 0xffff);
  CHECK_EQ(esc("D83D\\uDE00", &cp, &used), 0); /* a pair: U+1F600 */
  CHECK_UEQ(cp, 0x1f600);
  CHECK_EQ(used, 10);
  CHECK_EQ(esc("dbff\\udfffz", &cp, &used), 0); /* the last pair: U+10FFFF */
  CHECK_UEQ(cp, 0x10ffff);
  CHECK_EQ(used, 10);
  CHECK_EQ(esc("D800\\uDC00", &cp, &used), 0);
  CHECK_UEQ(cp, 0x10000);

  /* not four hex digits */
  CHECK_EQ(esc("", &cp, &used), MQ_EINVAL);
  CHECK_EQ(esc("12", &cp, &used), MQ_EINVAL);
  CHECK_EQ(esc("12G4", &cp, &used), MQ_EINVAL);
  CHECK_EQ(esc("+123", &cp, &used), MQ_EINVAL);
  CHECK_EQ(esc(" 123", &cp, &used), MQ_EINVAL);
  CHECK_EQ(mq_utf16_escape("0041", 3, &cp, &used), MQ_EINVAL); /* n cuts it */

  /* surrogates without a partner; *cp names the lone one */
  const char *unpaired[] = {
      "DC00",          /* a low one first */
      "DFFF\\uD800",   /* low then high */
      "D800",          /* high at the end */
      "D800x",         /* high, then text */
      "D800\\u0041",   /* high, then not a low */
      "D800\\uD800",   /* high, high */
      "D800\\uDC0",    /* the low escape cut short */
      "D800\\uDCZZ",   /* the low escape malformed */
      "D800\\\\uDC00", /* an escaped backslash is no escape */
      "D800/uDC00",
  };
  for (size_t i = 0; i < sizeof unpaired / sizeof unpaired[0]; i++) {
    if (esc(unpaired[i], &cp, &used) != MQ_ERANGE)
      CHECK_FAIL("\\u%s: %d, want MQ_ERANGE", unpaired[i], esc(unpaired[i], &cp, &used));
    char want[5] = {0};
    memcpy(want, unpaired[i], 4);
    CHECK_UEQ(cp, strtoul(want, NULL, 16));
  }
  CHECK_EQ(mq_utf16_escape("D800\\uDC00", 9, &cp, &used), MQ_ERANGE); /* n cuts the pair */

  /* every pair decodes to a scalar value that encodes well-formed */
  for (uint32_t hi = 0xd800; hi <= 0xdbff; hi += 0x3f)
    for (uint32_t lo = 0xdc00; lo <= 0xdfff; lo += 0x3f) {
      char s[16];
      snprintf(s, sizeof s, "%04X\\u%04x", (unsigned)hi, (unsigned)lo);
      CHECK_EQ(esc(s, &cp, &used), 0);
      CHECK_UEQ(cp, 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
      CHECK_GE(cp, 0x10000);
      CHECK_LE(cp, 0x10ffff);
    }
}

int main(void) {
  test_edges();
  test_exhaustive();
  test_encode();
  test_hex();
  test_escape();
  printf("test_utf8: ok\n");
  return 0;
}
