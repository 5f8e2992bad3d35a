/* Value parsers and printers for configuration settings (see values.h). */
#include "config/values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...) {
  if (!why || !cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, cap, fmt, ap);
  va_end(ap);
}

int mq_config_parse_int(const char *s, int64_t *out) {
  const char *p = s;
  if (*p == '+' || *p == '-')
    p++;
  if (!isdigit((unsigned char)*p))
    return MQ_EINVAL;
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q))
      return MQ_EINVAL;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno == ERANGE)
    return MQ_ERANGE;
  *out = v;
  return 0;
}

int mq_config_parse_bool(const char *s, bool *out) {
  static const char *yes[] = {"true", "1", "yes", "on"};
  static const char *no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return MQ_EINVAL;
}

/* Reads the unsigned decimal number at *p, advancing it. */
static int read_u64(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (!isdigit((unsigned char)*s))
    return MQ_EINVAL;
  for (; isdigit((unsigned char)*s); s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return MQ_ERANGE;
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

int mq_config_parse_size(const char *s, uint64_t *out) {
  static const struct {
    const char *name;
    int shift;
  } units[] = {
      {"", 0},    {"b", 0},    {"k", 10},  {"kb", 10},  {"ki", 10}, {"kib", 10},
      {"m", 20},  {"mb", 20},  {"mi", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
      {"gi", 30}, {"gib", 30}, {"t", 40},  {"tb", 40},  {"ti", 40}, {"tib", 40},
  };
  const char *p = s;
  uint64_t v;
  int rc = read_u64(&p, &v);
  if (rc)
    return rc;
  if (*p == ' ')
    p++;
  if (p[0] == '\0' && p > s && p[-1] == ' ')
    return MQ_EINVAL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(p, units[i].name) == 0) {
      if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
        return MQ_ERANGE;
      *out = v << units[i].shift;
      return 0;
    }
  }
  return MQ_EINVAL;
}

int mq_config_parse_duration_ms(const char *s, int64_t *out) {
  static const struct {
    const char *name;
    int64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  const char *p = s;
  uint64_t v;
  int rc = read_u64(&p, &v);
  if (rc)
    return rc;
  if (*p == '\0') {
    if (v > INT64_MAX)
      return MQ_ERANGE;
    *out = (int64_t)v;
    return 0;
  }
  int64_t total = 0;
  for (;;) {
    size_t ulen = 0;
    while (isalpha((unsigned char)p[ulen]))
      ulen++;
    int64_t mul = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (strlen(units[i].name) == ulen && strncasecmp(p, units[i].name, ulen) == 0)
        mul = units[i].ms;
    if (!mul)
      return MQ_EINVAL;
    if (v > (uint64_t)(INT64_MAX / mul) || total > INT64_MAX - (int64_t)v * mul)
      return MQ_ERANGE;
    total += (int64_t)v * mul;
    p += ulen;
    if (*p == '\0')
      break;
    if ((rc = read_u64(&p, &v)))
      return rc;
  }
  *out = total;
  return 0;
}

bool mq_config_valid_node_id(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof(((struct mq_peer_addr *)0)->node_id))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

static bool valid_hostname(const char *h) {
  if (!*h)
    return false;
  for (; *h; h++) {
    unsigned char c = (unsigned char)*h;
    if (!isalnum(c) && c != '.' && c != '-' && c != '_')
      return false;
  }
  return true;
}

/* Parses one trimmed element "id=host:port" into *pa. */
static int parse_peer(const char *el, struct mq_peer_addr *pa, char *why, size_t cap) {
  const char *eq = strchr(el, '=');
  if (!eq) {
    say(why, cap, "expected id=host:port");
    return MQ_EINVAL;
  }
  size_t idlen = (size_t)(eq - el);
  if (idlen == 0 || idlen >= sizeof pa->node_id) {
    say(why, cap, "node id must be 1-%zu characters", sizeof pa->node_id - 1);
    return MQ_EINVAL;
  }
  memcpy(pa->node_id, el, idlen);
  pa->node_id[idlen] = '\0';
  if (!mq_config_valid_node_id(pa->node_id)) {
    say(why, cap, "node id \"%s\" may only contain letters, digits, '.', '_' and '-'", pa->node_id);
    return MQ_EINVAL;
  }

  const char *hp = eq + 1, *host, *colon;
  size_t hlen;
  if (*hp == '[') {
    const char *close = strchr(hp, ']');
    if (!close) {
      say(why, cap, "missing ']' after IPv6 address");
      return MQ_EINVAL;
    }
    host = hp + 1;
    hlen = (size_t)(close - host);
    if (close[1] != ':') {
      say(why, cap, "expected :port after ']'");
      return MQ_EINVAL;
    }
    colon = close + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon) {
      say(why, cap, "missing :port");
      return MQ_EINVAL;
    }
    host = hp;
    hlen = (size_t)(colon - hp);
    if (memchr(host, ':', hlen)) {
      say(why, cap, "IPv6 addresses need brackets, e.g. [::1]:7070");
      return MQ_EINVAL;
    }
  }
  if (hlen == 0 || hlen >= sizeof pa->host) {
    say(why, cap, "host must be 1-%zu characters", sizeof pa->host - 1);
    return MQ_EINVAL;
  }
  memcpy(pa->host, host, hlen);
  pa->host[hlen] = '\0';
  if (*hp == '[') {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, pa->host, &a6) != 1) {
      say(why, cap, "\"%s\" is not an IPv6 address", pa->host);
      return MQ_EINVAL;
    }
  } else if (!valid_hostname(pa->host)) {
    say(why, cap, "\"%s\" is not a host name or IPv4 address", pa->host);
    return MQ_EINVAL;
  }
  int64_t port;
  if (mq_config_parse_int(colon + 1, &port) || port < 1 || port > 65535) {
    say(why, cap, "port \"%s\" is not a port number (1-65535)", colon + 1);
    return MQ_EINVAL;
  }
  pa->port = (int)port;
  return 0;
}

int mq_config_parse_peers(const char *s, struct mq_peer_addr *peers, int max, int *n, char *why,
                          size_t why_len) {
  char el[512];
  int count = 0, index = 0;
  const char *p = s;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '\0') {
    *n = 0;
    return 0;
  }
  for (;;) {
    const char *end = strchr(p, ',');
    if (!end)
      end = p + strlen(p);
    const char *b = p, *e = end;
    while (b < e && isspace((unsigned char)*b))
      b++;
    while (e > b && isspace((unsigned char)e[-1]))
      e--;
    index++;
    if (b == e) {
      say(why, why_len, "element %d is empty", index);
      return MQ_EINVAL;
    }
    if ((size_t)(e - b) >= sizeof el) {
      say(why, why_len, "element %d is too long", index);
      return MQ_EINVAL;
    }
    memcpy(el, b, (size_t)(e - b));
    el[e - b] = '\0';
    if (count == max) {
      say(why, why_len, "more than %d peers", max);
      return MQ_ERANGE;
    }
    struct mq_peer_addr pa;
    char sub[200];
    if (parse_peer(el, &pa, sub, sizeof sub)) {
      say(why, why_len, "element %d \"%s\": %s", index, el, sub);
      return MQ_EINVAL;
    }
    for (int i = 0; i < count; i++) {
      if (strcmp(peers[i].node_id, pa.node_id) == 0) {
        say(why, why_len, "element %d: node id \"%s\" is listed twice", index, pa.node_id);
        return MQ_EINVAL;
      }
      if (strcmp(peers[i].host, pa.host) == 0 && peers[i].port == pa.port) {
        say(why, why_len, "element %d: address of \"%s\" is already used by \"%s\"", index,
            pa.node_id, peers[i].node_id);
        return MQ_EINVAL;
      }
    }
    /* Parsed into a local so that peers is untouched on error except for
     * entries that are overwritten anyway; *n is set only on success. */
    peers[count++] = pa;
    if (*end == '\0')
      break;
    p = end + 1;
  }
  *n = count;
  return 0;
}

void mq_config_format_size(uint64_t v, char *out, size_t cap) {
  static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && v != 0 && v % 1024 == 0) {
    v /= 1024;
    u++;
  }
  snprintf(out, cap, "%" PRIu64 "%s", v, names[u]);
}

void mq_config_format_duration_ms(int64_t ms, char *out, size_t cap) {
  static const struct {
    const char *name;
    int64_t ms;
  } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (ms != 0 && ms % units[i].ms == 0) {
      snprintf(out, cap, "%" PRId64 "%s", ms / units[i].ms, units[i].name);
      return;
    }
  }
  snprintf(out, cap, "%" PRId64 "ms", ms);
}
