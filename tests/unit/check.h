/* Minimal test asserts: each failure prints both operands with file:line
 * and exits non-zero, so a test fails for one reason and says which. */
#ifndef MQ_TESTS_CHECK_H
#define MQ_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_FAIL(...)                                                                            \
  do {                                                                                             \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    exit(1);                                                                                       \
  } while (0)

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      CHECK_FAIL("check failed: %s", #cond);                                                       \
  } while (0)

#define CHECK_INT_OP(a, op, b)                                                                     \
  do {                                                                                             \
    int64_t check_a_ = (int64_t)(a), check_b_ = (int64_t)(b);                                      \
    if (!(check_a_ op check_b_))                                                                   \
      CHECK_FAIL("check failed: %s %s %s (%" PRId64 " vs %" PRId64 ")", #a, #op, #b, check_a_,     \
                 check_b_);                                                                        \
  } while (0)

#define CHECK_EQ(a, b) CHECK_INT_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_INT_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_INT_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_INT_OP(a, <=, b)
#define CHECK_GT(a, b) CHECK_INT_OP(a, >, b)
#define CHECK_GE(a, b) CHECK_INT_OP(a, >=, b)

#define CHECK_UEQ(a, b)                                                                            \
  do {                                                                                             \
    uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);                                   \
    if (check_a_ != check_b_)                                                                      \
      CHECK_FAIL("check failed: %s == %s (%" PRIu64 " vs %" PRIu64 ")", #a, #b, check_a_,          \
                 check_b_);                                                                        \
  } while (0)

#define CHECK_STREQ(a, b)                                                                          \
  do {                                                                                             \
    const char *check_a_ = (a), *check_b_ = (b);                                                   \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)                                 \
      CHECK_FAIL("check failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,                              \
                 check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                  \
  } while (0)

/* a[0..al) and b[0..bl) hold the same bytes (NULL is fine with length 0). */
#define CHECK_BYTES_EQ(a, al, b, bl)                                                               \
  do {                                                                                             \
    const void *check_a_ = (a), *check_b_ = (b);                                                   \
    size_t check_al_ = (al), check_bl_ = (bl);                                                     \
    if (check_al_ != check_bl_ || (check_al_ && memcmp(check_a_, check_b_, check_al_) != 0))       \
      CHECK_FAIL("check failed: %s[0..%s) == %s[0..%s) (%zu vs %zu bytes%s)", #a, #al, #b, #bl,    \
                 check_al_, check_bl_, check_al_ == check_bl_ ? ", contents differ" : "");         \
  } while (0)

/* a contains the substring b. */
#define CHECK_CONTAINS(a, b)                                                                       \
  do {                                                                                             \
    const char *check_a_ = (a), *check_b_ = (b);                                                   \
    if (!check_a_ || !check_b_ || !strstr(check_a_, check_b_))                                     \
      CHECK_FAIL("check failed: %s contains %s (\"%s\" vs \"%s\")", #a, #b,                        \
                 check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                  \
  } while (0)

#endif
