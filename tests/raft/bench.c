/* raft-bench: how fast the core commits when the network is instant.
 * Three in-process replicas of one group (messages stepped straight from
 * one replica's ready batch into the next) and of 16 groups (three
 * mq_raft_host objects exchanging encoded per-node frames); 16-byte
 * entries; 1 and 64 proposals outstanding per group. Reports committed
 * entries per second and per-commit latency (propose -> applied on the
 * leader), all on one core.
 *   raft-bench [seconds per case, default 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/host.h"
#include "util/buf.h"

#define REPLICAS 3

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Per-group bookkeeping of proposals in flight at the leader. */
struct pending {
  uint64_t first, n; /* indices [first, first + n) outstanding */
  double t[1 << 12]; /* propose time by index modulo the ring */
};

struct result {
  uint64_t committed;
  double secs;
  double *lat;
  size_t n_lat, cap_lat;
};

static void add_lat(struct result *res, double v) {
  if (res->n_lat == res->cap_lat) {
    res->cap_lat = res->cap_lat ? res->cap_lat * 2 : 1 << 16;
    res->lat = realloc(res->lat, res->cap_lat * sizeof(double));
  }
  res->lat[res->n_lat++] = v;
}

static struct mq_raft_options bench_opts(uint64_t group, int i) {
  struct mq_raft_options o;
  mq_raft_options_default(&o);
  o.group = group;
  o.self.node = (uint64_t)i + 1;
  o.self.inc = 1;
  o.seed = group * 7 + (uint64_t)i;
  o.max_inflight = 128;
  o.snapshot_entries = 20000;
  return o;
}

static struct mq_raft_conf bench_conf(void) {
  struct mq_raft_conf c = {0};
  for (int i = 0; i < REPLICAS; i++) {
    c.m[i].id.node = (uint64_t)i + 1;
    c.m[i].id.inc = 1;
    c.m[i].role = MQ_RAFT_VOTER;
  }
  c.n = REPLICAS;
  return c;
}

/* Applies a ready batch: counts commits and latencies at the leader, takes
 * a snapshot when asked (the state is just the applied index). */
static void on_applied(struct mq_raft *r, const struct mq_raft_ready *rd, bool leader,
                       struct pending *p, struct result *res, double t) {
  for (size_t k = 0; k < rd->n_committed; k++) {
    const struct mq_raft_entry *e = &rd->committed[k];
    if (!leader || e->type != MQ_RAFT_ENTRY_NORMAL) continue;
    if (p->n && e->index == p->first) {
      add_lat(res, t - p->t[e->index % (1 << 12)]);
      p->first++;
      p->n--;
      res->committed++;
    }
  }
  (void)r;
}

static void maybe_compact(struct mq_raft *r, uint64_t at) {
  if (!at) return;
  uint8_t state[8];
  memcpy(state, &at, 8);
  mq_raft_compact(r, at, state, sizeof(state));
}

static void propose_up_to(struct mq_raft *r, struct pending *p, unsigned outstanding, double t) {
  static const char entry[16] = "0123456789abcde";
  while (p->n < outstanding) {
    uint64_t idx;
    if (mq_raft_propose(r, entry, 16, NULL, &idx)) return;
    if (!p->n) p->first = idx;
    p->t[idx % (1 << 12)] = t;
    p->n++;
  }
}

/* ---- one group, messages stepped directly -------------------------------- */

static void pump_direct(struct mq_raft **rs, int leader, struct pending *p, struct result *res) {
  bool busy = true;
  while (busy) {
    busy = false;
    for (int i = 0; i < REPLICAS; i++) {
      while (mq_raft_has_ready(rs[i])) {
        busy = true;
        struct mq_raft_ready rd;
        mq_raft_ready(rs[i], &rd);
        for (size_t k = 0; k < rd.n_msgs; k++)
          mq_raft_step(rs[rd.msgs[k].to.node - 1], &rd.msgs[k]);
        on_applied(rs[i], &rd, i == leader, p, res, res ? now_s() : 0);
        mq_raft_advance(rs[i], &rd);
        maybe_compact(rs[i], rd.snapshot_at);
      }
    }
  }
}

static void bench_one_group(unsigned outstanding, double secs, struct result *res) {
  struct mq_raft *rs[REPLICAS];
  struct mq_raft_conf c = bench_conf();
  for (int i = 0; i < REPLICAS; i++) {
    struct mq_raft_options o = bench_opts(1, i);
    mq_raft_create(&o, &c, &rs[i]);
  }
  static struct pending p;
  memset(&p, 0, sizeof(p));
  mq_raft_campaign(rs[0]);
  pump_direct(rs, 0, &p, NULL);
  struct mq_raft_status st;
  mq_raft_status(rs[0], &st);
  if (st.role != MQ_RAFT_LEADER) {
    fprintf(stderr, "no leader\n");
    exit(1);
  }
  double t0 = now_s(), t = t0;
  uint64_t loops = 0;
  while (t - t0 < secs) {
    propose_up_to(rs[0], &p, outstanding, t);
    pump_direct(rs, 0, &p, res);
    if (++loops % 64 == 0)
      for (int i = 0; i < REPLICAS; i++) mq_raft_tick(rs[i]);
    t = now_s();
  }
  res->secs = t - t0;
  for (int i = 0; i < REPLICAS; i++) mq_raft_destroy(rs[i]);
}

/* ---- 16 groups on three hosts, encoded frames ----------------------------- */

#define GROUPS 16

static void bench_hosts(unsigned outstanding, double secs, struct result *res) {
  struct mq_raft_host h[REPLICAS];
  struct mq_raft_conf c = bench_conf();
  for (int i = 0; i < REPLICAS; i++) {
    mq_raft_host_init(&h[i], (uint64_t)i + 1);
    for (int g = 0; g < GROUPS; g++) {
      struct mq_raft_options o = bench_opts((uint64_t)g + 1, i);
      mq_raft_host_add(&h[i], &o, &c, NULL);
    }
  }
  static struct pending p[GROUPS];
  memset(p, 0, sizeof(p));
  /* spread leadership: group g is led by replica g % 3 */
  for (int g = 0; g < GROUPS; g++) mq_raft_campaign(mq_raft_host_at(&h[g % REPLICAS], (size_t)g));
  bool measuring = false;
  double t0 = now_s(), t = t0, start = 0;
  uint64_t loops = 0;
  for (;;) {
    t = now_s();
    if (!measuring && t - t0 > 0.05) {
      measuring = true;
      start = t;
    }
    if (measuring && t - start >= secs) break;
    if (++loops % 64 == 0)
      for (int i = 0; i < REPLICAS; i++) mq_raft_host_tick(&h[i]);
    for (int i = 0; i < REPLICAS; i++) {
      for (size_t g = 0; g < GROUPS; g++) {
        struct mq_raft *r = mq_raft_host_at(&h[i], g);
        struct mq_raft_status st;
        mq_raft_status(r, &st);
        bool leader = st.role == MQ_RAFT_LEADER;
        if (leader && measuring) propose_up_to(r, &p[g], outstanding, t);
        while (mq_raft_has_ready(r)) {
          struct mq_raft_ready rd;
          mq_raft_ready(r, &rd);
          mq_raft_host_send(&h[i], &rd);
          on_applied(r, &rd, leader && measuring, &p[g], res, now_s());
          mq_raft_advance(r, &rd);
          maybe_compact(r, rd.snapshot_at);
        }
      }
      for (size_t k = 0; k < mq_raft_host_batches(&h[i]); k++) {
        uint64_t node;
        const uint8_t *data;
        size_t len;
        mq_raft_host_batch(&h[i], k, &node, &data, &len);
        mq_raft_host_receive(&h[node - 1], data, len);
      }
      mq_raft_host_batches_clear(&h[i]);
    }
  }
  res->secs = t - start;
  for (int i = 0; i < REPLICAS; i++) mq_raft_host_close(&h[i]);
}

static void report(const char *name, unsigned outstanding, struct result *res) {
  qsort(res->lat, res->n_lat, sizeof(double), cmp_double);
  double p50 = res->n_lat ? res->lat[res->n_lat / 2] : 0;
  double p99 = res->n_lat ? res->lat[res->n_lat * 99 / 100] : 0;
  printf("%-22s outstanding %-4u %12.0f entries/s   latency p50 %8.2f us  p99 %8.2f us\n", name,
         outstanding, (double)res->committed / res->secs, p50 * 1e6, p99 * 1e6);
  free(res->lat);
  memset(res, 0, sizeof(*res));
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 1.0;
  if (secs <= 0) secs = 1.0;
  unsigned outs[] = {1, 64};
  struct result res = {0};
  for (int k = 0; k < 2; k++) {
    bench_one_group(outs[k], secs, &res);
    report("1 group, 3 replicas", outs[k], &res);
  }
  for (int k = 0; k < 2; k++) {
    bench_hosts(outs[k], secs, &res);
    report("16 groups, 3 hosts", outs[k], &res);
  }
  printf("(16-byte entries, one core, instant network; 16-group outstanding is per group)\n");
  return 0;
}
