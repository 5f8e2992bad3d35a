/* Headless-Service DNS discovery: the resolver thread and its pure helpers
 * (see dns.h for what a round asks and reports). */
#include "discovery/dns.h"

#include "util/clock.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Addresses kept per round: the node keeps at most this many contacts. */
#define MAX_PEERS 256
/* SRV records read per round. */
#define MAX_SRV 64
/* Some servers never answer an SRV query (Docker's embedded DNS on an
 * internal network drops it): ask with one 1 s try, and after a query
 * nobody answered, use the A and AAAA records alone for this long. */
#define SRV_TIMEOUT_S 1
#define SRV_QUIET_MS 30000

struct mq_dns_discovery {
  struct mq_node *node;
  const struct mq_config *cfg;
  char srv_name[300]; /* _peer._tcp.<name> */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t wake; /* signalled by stop; waits use CLOCK_MONOTONIC */
  bool stopping;       /* under mu */
  /* Owned by the thread: what the last round reported. */
  struct mq_discovered last[MAX_PEERS];
  size_t n_last;
  char why[256];           /* the last failure's reason, "" after a success */
  bool srv_malformed;      /* the last SRV answer was malformed (warned once) */
  int64_t srv_quiet_until; /* mono ms: no SRV query before (0: ask) */
  bool srv_quiet_logged;
};

/* ------------------------------------------------------------------------ */
/* Pure helpers                                                             */

int mq_dns_format_addr(const struct sockaddr *sa, int port, char *out, size_t size) {
  char ip[INET6_ADDRSTRLEN];
  int w;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
    if (!inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip))
      return MQ_EINVAL;
    w = snprintf(out, size, "%s:%d", ip, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    if (!inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip))
      return MQ_EINVAL;
    w = snprintf(out, size, "[%s]:%d", ip, port);
  } else {
    return MQ_EINVAL;
  }
  return w < 0 || (size_t)w >= size ? MQ_EINVAL : 0;
}

static int cmp_addr(const void *a, const void *b) {
  return strcmp(((const struct mq_discovered *)a)->addr, ((const struct mq_discovered *)b)->addr);
}

size_t mq_dns_sort_unique(struct mq_discovered *peers, size_t n) {
  if (n == 0)
    return 0;
  qsort(peers, n, sizeof *peers, cmp_addr);
  size_t w = 1;
  for (size_t i = 1; i < n; i++)
    if (strcmp(peers[i].addr, peers[w - 1].addr) != 0)
      peers[w++] = peers[i];
  return w;
}

/* RFC 2782: priority, weight, port (16 bits each), then the target name. */
int mq_dns_parse_srv(const unsigned char *msg, size_t len, struct mq_dns_srv *out, size_t max,
                     size_t *n) {
  *n = 0;
  if (len > 65535)
    return MQ_ECORRUPT;
  ns_msg h;
  if (ns_initparse(msg, (int)len, &h) < 0)
    return MQ_ECORRUPT;
  int count = ns_msg_count(h, ns_s_an);
  for (int i = 0; i < count; i++) {
    ns_rr rr;
    if (ns_parserr(&h, ns_s_an, i, &rr) < 0)
      return MQ_ECORRUPT;
    if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in)
      continue;
    const unsigned char *rd = ns_rr_rdata(rr);
    if (ns_rr_rdlen(rr) < 7)
      return MQ_ECORRUPT;
    char target[NS_MAXDNAME];
    int used = dn_expand(msg, msg + len, rd + 6, target, sizeof target);
    if (used < 0 || used > ns_rr_rdlen(rr) - 6)
      return MQ_ECORRUPT;
    size_t tlen = strlen(target);
    if (!tlen || strcmp(target, ".") == 0)
      continue; /* "no such service here" */
    if (tlen >= sizeof out->target)
      return MQ_ECORRUPT; /* longer than a name can be (RFC 1035 2.3.4) */
    if (*n == max)
      continue;
    struct mq_dns_srv *s = &out[(*n)++];
    s->priority = ns_get16(rd);
    s->weight = ns_get16(rd + 2);
    s->port = ns_get16(rd + 4);
    memcpy(s->target, target, tlen + 1);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* One round                                                                */

/* Appends name's addresses on port to peers. Returns 0, or an EAI_* code. */
static int add_host(const char *name, int port, struct mq_discovered *peers, size_t *n) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(name, NULL, &hints, &res);
  if (rc)
    return rc;
  for (struct addrinfo *ai = res; ai && *n < MAX_PEERS; ai = ai->ai_next) {
    struct mq_discovered *p = &peers[*n];
    memset(p, 0, sizeof *p);
    if (mq_dns_format_addr(ai->ai_addr, port, p->addr, sizeof p->addr) == 0)
      (*n)++;
  }
  freeaddrinfo(res);
  return 0;
}

static const char *gai_reason(int rc) {
  switch (rc) {
  case EAI_NONAME:
    return "no such name (NXDOMAIN)";
  case EAI_NODATA:
    return "no A or AAAA records";
  case EAI_AGAIN:
    return "no answer from the DNS server (timeout or SERVFAIL)";
  default:
    return gai_strerror(rc);
  }
}

/* SRV _peer._tcp.<name>: fills srv, *n records (0 when the server has none
 * or does not answer: the caller falls back to A and AAAA). */
static void query_srv(struct mq_dns_discovery *d, struct mq_dns_srv *srv, size_t *n) {
  *n = 0;
  int64_t now = mq_clock_mono_ms();
  if (now < d->srv_quiet_until)
    return;
  struct __res_state rs;
  memset(&rs, 0, sizeof rs);
  if (res_ninit(&rs) != 0) {
    res_nclose(&rs);
    return;
  }
  rs.retrans = SRV_TIMEOUT_S;
  rs.retry = 1;
  unsigned char answer[NS_MAXMSG];
  int len = res_nquery(&rs, d->srv_name, ns_c_in, ns_t_srv, answer, sizeof answer);
  bool unanswered = len < 0 && rs.res_h_errno == TRY_AGAIN;
  res_nclose(&rs);
  if (unanswered) {
    d->srv_quiet_until = now + SRV_QUIET_MS;
    if (!d->srv_quiet_logged)
      mq_info("dns",
              "%s: the DNS server does not answer SRV queries; using the A and AAAA records, "
              "asking again every %d s",
              d->srv_name, SRV_QUIET_MS / 1000);
    d->srv_quiet_logged = true;
  }
  if (len <= 0)
    return;
  bool bad = mq_dns_parse_srv(answer, (size_t)len, srv, MAX_SRV, n) != 0;
  if (bad && !d->srv_malformed)
    mq_warn("dns", "%s: malformed SRV answer, using the A and AAAA records", d->srv_name);
  d->srv_malformed = bad;
  if (bad)
    *n = 0;
}

/* Resolves the name once. Returns the number of addresses in peers, or -1
 * with why->msg saying what was missing. */
static int resolve(struct mq_dns_discovery *d, struct mq_discovered *peers, struct mq_status *why) {
  const char *name = d->cfg->dns_name;
  size_t n = 0;
  struct mq_dns_srv srv[MAX_SRV];
  size_t n_srv;
  query_srv(d, srv, &n_srv);
  if (n_srv) {
    int last_rc = 0;
    for (size_t i = 0; i < n_srv; i++) {
      int rc = add_host(srv[i].target, srv[i].port, peers, &n);
      if (rc)
        last_rc = rc;
    }
    if (n == 0) {
      mq_status_set(why, MQ_EUNAVAIL, "%s: none of the %zu SRV targets resolves (%s: %s)",
                    d->srv_name, n_srv, srv[n_srv - 1].target, gai_reason(last_rc));
      return -1;
    }
  } else {
    if (d->cfg->peer_port == 0) {
      mq_status_set(why, MQ_EUNAVAIL,
                    "%s: no SRV records, and --peer-port is 0, so the peers' port is unknown",
                    d->srv_name);
      return -1;
    }
    int rc = add_host(name, d->cfg->peer_port, peers, &n);
    if (rc) {
      mq_status_set(why, MQ_EUNAVAIL, "%s: %s", name, gai_reason(rc));
      return -1;
    }
  }
  n = mq_dns_sort_unique(peers, n);
  if (n == 0) {
    mq_status_set(why, MQ_EUNAVAIL, "%s: no usable addresses", name);
    return -1;
  }
  return (int)n;
}

/* Appends to out the addresses of a[0,na) missing from b[0,nb) (both
 * sorted), comma-separated; returns how many. */
static int list_missing(const struct mq_discovered *a, size_t na, const struct mq_discovered *b,
                        size_t nb, char *out, size_t size) {
  int count = 0;
  size_t j = 0, used = strlen(out);
  for (size_t i = 0; i < na; i++) {
    while (j < nb && strcmp(b[j].addr, a[i].addr) < 0)
      j++;
    if (j < nb && strcmp(b[j].addr, a[i].addr) == 0)
      continue;
    int w = snprintf(out + used, size - used, "%s%s", count ? ", " : "", a[i].addr);
    if (w > 0)
      used = (size_t)w >= size - used ? size - 1 : used + (size_t)w;
    count++;
  }
  return count;
}

static void log_change(struct mq_dns_discovery *d, const struct mq_discovered *now, size_t n) {
  char added[1024] = "", removed[1024] = "";
  int n_added = list_missing(now, n, d->last, d->n_last, added, sizeof added);
  int n_removed = list_missing(d->last, d->n_last, now, n, removed, sizeof removed);
  if (!n_added && !n_removed)
    return;
  mq_info("dns", "%s lists %zu agent(s); added %d [%s], removed %d [%s]", d->cfg->dns_name, n,
          n_added, added, n_removed, removed);
}

static void run_round(struct mq_dns_discovery *d) {
  struct mq_status why;
  mq_status_clear(&why);
  struct mq_discovered *peers = calloc(MAX_PEERS, sizeof *peers);
  int n = peers ? resolve(d, peers, &why) : -1;
  if (!peers)
    mq_status_set(&why, MQ_ENOMEM, "out of memory for a DNS round");
  if (n < 0) {
    /* The node warns when the source stops answering; a different
     * reason while it keeps failing is worth one more line. */
    if (d->why[0] && strcmp(d->why, why.msg) != 0)
      mq_warn("dns", "%s", why.msg);
    snprintf(d->why, sizeof d->why, "%s", why.msg);
    mq_node_discovery_failed(d->node, MQ_DISCOVERY_DNS, why.msg);
  } else {
    log_change(d, peers, (size_t)n);
    memcpy(d->last, peers, (size_t)n * sizeof *peers);
    d->n_last = (size_t)n;
    d->why[0] = '\0';
    mq_node_discovered(d->node, MQ_DISCOVERY_DNS, peers, (size_t)n);
  }
  free(peers);
}

/* ------------------------------------------------------------------------ */
/* The thread                                                               */

static void *thread_main(void *arg) {
  struct mq_dns_discovery *d = arg;
  pthread_setname_np(pthread_self(), "mq-dns");
  int64_t every_ms = d->cfg->dns_refresh_ms;
  pthread_mutex_lock(&d->mu);
  while (!d->stopping) {
    pthread_mutex_unlock(&d->mu);
    run_round(d);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += every_ms / 1000;
    until.tv_nsec += (every_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->stopping && pthread_cond_timedwait(&d->wake, &d->mu, &until) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

int mq_dns_discovery_start(struct mq_dns_discovery **out, struct mq_node *node,
                           const struct mq_config *cfg, struct mq_status *st) {
  *out = NULL;
  if (!cfg->dns_name[0])
    return mq_status_set(st, MQ_EINVAL, "DNS discovery needs --dns-name");
  struct mq_dns_discovery *d = calloc(1, sizeof *d);
  if (!d)
    return mq_status_set(st, MQ_ENOMEM, "out of memory for DNS discovery");
  d->node = node;
  d->cfg = cfg;
  snprintf(d->srv_name, sizeof d->srv_name, "_peer._tcp.%s", cfg->dns_name);

  pthread_condattr_t ca;
  int rc = pthread_condattr_init(&ca);
  if (rc)
    goto out_free;
  rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (!rc)
    rc = pthread_cond_init(&d->wake, &ca);
  pthread_condattr_destroy(&ca);
  if (rc)
    goto out_free;
  rc = pthread_mutex_init(&d->mu, NULL);
  if (rc)
    goto out_cond;
  rc = pthread_create(&d->thread, NULL, thread_main, d);
  if (rc)
    goto out_mutex;
  mq_info("dns", "resolving %s (and SRV %s) every %d ms", cfg->dns_name, d->srv_name,
          cfg->dns_refresh_ms);
  *out = d;
  return 0;

out_mutex:
  pthread_mutex_destroy(&d->mu);
out_cond:
  pthread_cond_destroy(&d->wake);
out_free:
  free(d);
  return mq_status_set(st, mq_err_from_errno(rc), "cannot start the DNS discovery thread: %s",
                       strerror(rc));
}

void mq_dns_discovery_stop(struct mq_dns_discovery *d) {
  if (!d)
    return;
  pthread_mutex_lock(&d->mu);
  d->stopping = true;
  pthread_cond_signal(&d->wake);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->thread, NULL);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->wake);
  free(d);
}
