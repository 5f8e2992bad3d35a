/* The pure parts of DNS discovery (agent/discovery/dns.h): address
 * formatting, sorting with repeats dropped, and SRV records read from DNS
 * answers built here byte by byte (RFC 1035 section 4, RFC 2782). */
#include "check.h"
#include "discovery/dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static void test_format(void) {
  char out[64];
  struct sockaddr_in v4 = {.sin_family = AF_INET};
  inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
  CHECK_EQ(mq_dns_format_addr((struct sockaddr *)&v4, 7070, out, sizeof out), 0);
  CHECK_STREQ(out, "10.1.2.3:7070");

  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "fd00::1:2", &v6.sin6_addr);
  CHECK_EQ(mq_dns_format_addr((struct sockaddr *)&v6, 17070, out, sizeof out), 0);
  CHECK_STREQ(out, "[fd00::1:2]:17070");

  /* too small for "[fd00::1:2]:17070" and its NUL */
  CHECK_EQ(mq_dns_format_addr((struct sockaddr *)&v6, 17070, out, 17), MQ_EINVAL);
  struct sockaddr other = {.sa_family = AF_UNIX};
  CHECK_EQ(mq_dns_format_addr(&other, 1, out, sizeof out), MQ_EINVAL);
}

static void test_sort_unique(void) {
  const char *in[] = {"10.0.0.3:7070", "[fd00::1]:7070", "10.0.0.1:7070",
                      "10.0.0.3:7070", "10.0.0.1:7071",  "10.0.0.1:7070"};
  struct mq_discovered p[6];
  memset(p, 0, sizeof p);
  for (int i = 0; i < 6; i++)
    snprintf(p[i].addr, sizeof p[i].addr, "%s", in[i]);
  size_t n = mq_dns_sort_unique(p, 6);
  CHECK_EQ(n, 4);
  CHECK_STREQ(p[0].addr, "10.0.0.1:7070");
  CHECK_STREQ(p[1].addr, "10.0.0.1:7071");
  CHECK_STREQ(p[2].addr, "10.0.0.3:7070");
  CHECK_STREQ(p[3].addr, "[fd00::1]:7070");
  CHECK_EQ(mq_dns_sort_unique(p, 0), 0);
}

/* A DNS message under construction. */
struct msg {
  unsigned char b[1024];
  size_t len;
};

static void put16(struct msg *m, unsigned v) {
  m->b[m->len++] = (unsigned char)(v >> 8);
  m->b[m->len++] = (unsigned char)v;
}

static void put32(struct msg *m, unsigned long v) {
  put16(m, (unsigned)(v >> 16));
  put16(m, (unsigned)(v & 0xffff));
}

/* "a.b.c" as length-prefixed labels ending in the root. */
static void put_name(struct msg *m, const char *name) {
  while (*name) {
    const char *dot = strchr(name, '.');
    size_t l = dot ? (size_t)(dot - name) : strlen(name);
    m->b[m->len++] = (unsigned char)l;
    memcpy(m->b + m->len, name, l);
    m->len += l;
    name += l + (dot ? 1 : 0);
  }
  m->b[m->len++] = 0;
}

/* Header of a response with one question and an answers, then the
 * question _peer._tcp.mq.test SRV IN; returns the question name's offset. */
static size_t put_head(struct msg *m, unsigned an) {
  m->len = 0;
  put16(m, 0x1234); /* id */
  put16(m, 0x8580); /* QR, AA, RD, RA; NOERROR */
  put16(m, 1);
  put16(m, an);
  put16(m, 0);
  put16(m, 0);
  size_t qname = m->len;
  put_name(m, "_peer._tcp.mq.test");
  put16(m, 33); /* SRV */
  put16(m, 1);  /* IN */
  return qname;
}

/* One SRV answer whose owner is a pointer to the question's name and whose
 * target is written out (or, with target_ptr, a pointer to offset
 * target_ptr). Returns the offset of the target in the message. */
static size_t put_srv(struct msg *m, size_t qname, unsigned prio, unsigned weight, unsigned port,
                      const char *target, size_t target_ptr) {
  put16(m, 0xc000 | (unsigned)qname);
  put16(m, 33);
  put16(m, 1);
  put32(m, 0); /* TTL */
  size_t rdlen_at = m->len;
  put16(m, 0);
  put16(m, prio);
  put16(m, weight);
  put16(m, port);
  size_t at = m->len;
  if (target)
    put_name(m, target);
  else
    put16(m, 0xc000 | (unsigned)target_ptr);
  size_t rdlen = m->len - rdlen_at - 2;
  m->b[rdlen_at] = (unsigned char)(rdlen >> 8);
  m->b[rdlen_at + 1] = (unsigned char)rdlen;
  return at;
}

static void test_srv(void) {
  struct msg m;
  size_t qname = put_head(&m, 4);
  size_t t1 = put_srv(&m, qname, 0, 10, 17001, "mq-0.mq.test", 0);
  put_srv(&m, qname, 1, 20, 17002, "mq-1.mq.test", 0);
  put_srv(&m, qname, 0, 10, 17003, NULL, t1); /* compressed: mq-0.mq.test again */
  put_srv(&m, qname, 0, 0, 0, ".", 0);        /* root target: skipped */

  struct mq_dns_srv srv[8];
  size_t n = 99;
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 8, &n), 0);
  CHECK_EQ(n, 3);
  CHECK_STREQ(srv[0].target, "mq-0.mq.test");
  CHECK_EQ(srv[0].port, 17001);
  CHECK_EQ(srv[0].priority, 0);
  CHECK_EQ(srv[0].weight, 10);
  CHECK_STREQ(srv[1].target, "mq-1.mq.test");
  CHECK_EQ(srv[1].port, 17002);
  CHECK_EQ(srv[1].priority, 1);
  CHECK_EQ(srv[1].weight, 20);
  CHECK_STREQ(srv[2].target, "mq-0.mq.test");
  CHECK_EQ(srv[2].port, 17003);

  /* more records than room: the first max are kept */
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 1, &n), 0);
  CHECK_EQ(n, 1);
  CHECK_EQ(srv[0].port, 17001);

  /* no answers (what NODATA looks like) */
  put_head(&m, 0);
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 8, &n), 0);
  CHECK_EQ(n, 0);
}

static void test_srv_malformed(void) {
  struct mq_dns_srv srv[8];
  size_t n;
  struct msg m;
  size_t qname = put_head(&m, 1);
  put_srv(&m, qname, 0, 10, 17001, "mq-0.mq.test", 0);
  size_t whole = m.len;

  /* cut anywhere inside the answer */
  for (size_t cut = 12; cut < whole; cut++)
    if (mq_dns_parse_srv(m.b, cut, srv, 8, &n) != MQ_ECORRUPT)
      CHECK_FAIL("a message cut at %zu of %zu bytes was accepted", cut, whole);

  /* rdata too short for priority, weight, port and a name */
  qname = put_head(&m, 1);
  put16(&m, 0xc000 | (unsigned)qname);
  put16(&m, 33);
  put16(&m, 1);
  put32(&m, 0);
  put16(&m, 4);
  put32(&m, 0);
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 8, &n), MQ_ECORRUPT);

  /* a target that points at itself */
  qname = put_head(&m, 1);
  size_t at = m.len + 2 + 2 + 2 + 4 + 2 + 6;
  put_srv(&m, qname, 0, 10, 17001, NULL, at);
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 8, &n), MQ_ECORRUPT);

  /* the header announces more answers than there are */
  qname = put_head(&m, 2);
  put_srv(&m, qname, 0, 10, 17001, "mq-0.mq.test", 0);
  CHECK_EQ(mq_dns_parse_srv(m.b, m.len, srv, 8, &n), MQ_ECORRUPT);
}

int main(void) {
  test_format();
  test_sort_unique();
  test_srv();
  test_srv_malformed();
  printf("test_dns: ok\n");
  return 0;
}
