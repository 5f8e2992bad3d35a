/* mqctl kafka: this agent's Kafka ingestion, read from its /metrics on the
 * HTTP port (the consumer is a front end of the agent, like the feed, and
 * publishes its figures there, not through Cluster.Status). */
#include "mqctl.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_HTTP "127.0.0.1:9090"
#define MAX_PARTS 1024

struct part {
  int32_t partition;
  int64_t committed, lag;
};

struct kafka_view {
  int enabled; /* any memquorum_kafka_ sample seen */
  int connected;
  uint64_t ingested, bad, in_flight;
  struct part parts[MAX_PARTS];
  int n;
};

/* GET /metrics over HTTP/1.0; returns a malloc'd body or NULL (err set). */
static char *http_metrics(const char *hostport, char *err, size_t errsz) {
  char host[256];
  const char *colon = strrchr(hostport, ':');
  if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host) {
    snprintf(err, errsz, "--http %s: expected HOST:PORT", hostport);
    return NULL;
  }
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  int rc = getaddrinfo(host, colon + 1, &hints, &res);
  if (rc) {
    snprintf(err, errsz, "%s: %s", hostport, gai_strerror(rc));
    return NULL;
  }
  int fd = -1;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    snprintf(err, errsz, "%s: cannot connect: %s", hostport, strerror(errno));
    return NULL;
  }
  char req[512];
  int len = snprintf(req, sizeof req, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", hostport);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf || write(fd, req, (size_t)len) != len) {
    snprintf(err, errsz, "%s: cannot send the request", hostport);
    free(buf);
    close(fd);
    return NULL;
  }
  for (ssize_t r; (r = read(fd, buf + n, cap - n)) > 0;) {
    n += (size_t)r;
    if (n == cap) {
      char *more = realloc(buf, 2 * cap + 1);
      if (!more) break;
      buf = more;
      cap *= 2;
    }
  }
  close(fd);
  buf[n] = '\0';
  char *body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.", 7) != 0 || !strstr(buf, " 200 ") || !body) {
    snprintf(err, errsz, "%s: /metrics did not answer 200", hostport);
    free(buf);
    return NULL;
  }
  memmove(buf, body + 4, strlen(body + 4) + 1);
  return buf;
}

static struct part *part_of(struct kafka_view *v, int32_t partition) {
  for (int i = 0; i < v->n; i++)
    if (v->parts[i].partition == partition) return &v->parts[i];
  if (v->n == MAX_PARTS) return NULL;
  v->parts[v->n] = (struct part){partition, -1, 0};
  return &v->parts[v->n++];
}

static void parse(char *text, struct kafka_view *v) {
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "memquorum_kafka_", 16) != 0) continue;
    v->enabled = 1;
    const char *name = line + 16;
    const char *sp = strrchr(line, ' ');
    if (!sp) continue;
    long long val = strtoll(sp + 1, NULL, 10);
    int32_t p;
    if (strncmp(name, "connected ", 10) == 0)
      v->connected = val != 0;
    else if (strncmp(name, "records_ingested_total ", 23) == 0)
      v->ingested = (uint64_t)val;
    else if (strncmp(name, "bad_records_total ", 18) == 0)
      v->bad = (uint64_t)val;
    else if (strncmp(name, "in_flight ", 10) == 0)
      v->in_flight = (uint64_t)val;
    else if (sscanf(name, "committed_offset{partition=\"%" SCNd32 "\"}", &p) == 1) {
      struct part *q = part_of(v, p);
      if (q) q->committed = val;
    } else if (sscanf(name, "lag{partition=\"%" SCNd32 "\"}", &p) == 1) {
      struct part *q = part_of(v, p);
      if (q) q->lag = val;
    }
  }
}

static int by_partition(const void *a, const void *b) {
  const struct part *x = a, *y = b;
  return (x->partition > y->partition) - (x->partition < y->partition);
}

struct kafka_opts {
  const char *http;
};

static int kafka_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  (void)cmd;
  if (c != 'H') return -1;
  ((struct kafka_opts *)ctx)->http = arg;
  return 0;
}

int mqctl_cmd_kafka(struct mqctl *m, int argc, char **argv) {
  static const struct option longopts[] = {
      MQCTL_GLOBAL_OPTIONS, {"http", required_argument, NULL, 'H'}, {NULL, 0, NULL, 0}};
  struct kafka_opts o = {DEFAULT_HTTP};
  int code = mqctl_parse_opts(m, mqctl_find_cmd("kafka"), argc, argv, longopts, kafka_opt, &o);
  if (code >= 0) return code;
  if ((code = mqctl_check_args(mqctl_find_cmd("kafka"), argc, argv, 0, "")) >= 0) return code;
  char err[512];
  char *text = http_metrics(o.http, err, sizeof err);
  if (!text) {
    fprintf(stderr, "mqctl: kafka: %s\n", err);
    return MQCTL_FAIL;
  }
  struct kafka_view *v = calloc(1, sizeof *v);
  if (!v) {
    free(text);
    return MQCTL_FAIL;
  }
  parse(text, v);
  free(text);
  int rc = MQCTL_OK;
  if (!v->enabled) {
    fprintf(stderr,
            "mqctl: kafka: Kafka ingestion is not enabled on the agent at %s "
            "(MEMQUORUM_KAFKA_ENABLED=true)\n",
            o.http);
    rc = MQCTL_FAIL;
    goto out;
  }
  qsort(v->parts, (size_t)v->n, sizeof v->parts[0], by_partition);
  if (m->json) {
    printf("{\"connected\":%s,\"ingested\":%" PRIu64 ",\"bad\":%" PRIu64 ",\"in_flight\":%" PRIu64
           ",\"partitions\":[",
           v->connected ? "true" : "false", v->ingested, v->bad, v->in_flight);
    for (int i = 0; i < v->n; i++)
      printf("%s{\"partition\":%" PRId32 ",\"committed\":%" PRId64 ",\"lag\":%" PRId64 "}",
             i ? "," : "", v->parts[i].partition, v->parts[i].committed, v->parts[i].lag);
    printf("]}\n");
    goto out;
  }
  printf("brokers %s; %" PRIu64 " records ingested, %" PRIu64 " bad, %" PRIu64 " in flight\n",
         v->connected ? "connected" : "not answering", v->ingested, v->bad, v->in_flight);
  if (v->n == 0) {
    printf("no partition assigned to this agent\n");
    goto out;
  }
  printf("%-10s %-12s %s\n", "PARTITION", "COMMITTED", "LAG");
  for (int i = 0; i < v->n; i++)
    printf("%-10" PRId32 " %-12" PRId64 " %" PRId64 "\n", v->parts[i].partition,
           v->parts[i].committed, v->parts[i].lag);
out:
  free(v);
  return rc;
}
