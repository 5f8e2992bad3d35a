/* What the HTTP port reports: readiness, the Prometheus text exposition
 * (format 0.0.4: HELP and TYPE lines, then samples) and the Spring Boot
 * actuator documents (/actuator/health, /info, /metrics[/<name>]) the
 * product documented before.
 *
 * Every value is a snapshot of the node's relaxed atomics (mq_node_metrics)
 * plus a few process figures from /proc; nothing here waits on the core
 * loop. Metric definitions live in one table so /metrics and
 * /actuator/metrics cannot disagree about names. */
#include "feed/internal.h"

#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool mq_feed_is_ready(struct mq_feed *f, char *why, size_t cap) {
  if (atomic_load(&f->draining)) {
    snprintf(why, cap, "draining: the agent is shutting down");
    return false;
  }
  if (!mq_node_ready(f->node)) {
    char node_why[256];
    mq_node_not_ready_why(f->node, node_why, sizeof node_why);
    snprintf(why, cap, "not ready: %s", node_why[0] ? node_why : "starting");
    return false;
  }
  snprintf(why, cap, "ready");
  return true;
}

/* ------------------------------------------------------------------------ */
/* Process figures */

static uint64_t resident_bytes(void) {
  FILE *fp = fopen("/proc/self/statm", "r");
  if (!fp)
    return 0;
  unsigned long long size = 0, rss = 0;
  int n = fscanf(fp, "%llu %llu", &size, &rss);
  fclose(fp);
  long page = sysconf(_SC_PAGESIZE);
  return n == 2 && page > 0 ? (uint64_t)rss * (uint64_t)page : 0;
}

double mq_feed_process_start_time(void) {
  /* /proc/self/stat field 22 is the start time in clock ticks after boot;
   * /proc/stat "btime" is the boot time in seconds since the epoch. The
   * command name (field 2) may hold spaces, so parse after its ')'. */
  char buf[1024];
  FILE *fp = fopen("/proc/self/stat", "r");
  size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
  if (fp)
    fclose(fp);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  unsigned long long ticks = 0;
  bool ok = false;
  if (p) {
    p++;
    for (int field = 3; field < 22 && p; field++)
      p = strchr(p + 1, ' ');
    ok = p && sscanf(p, " %llu", &ticks) == 1;
  }
  unsigned long long btime = 0;
  fp = fopen("/proc/stat", "r");
  if (fp) {
    char line[256];
    while (fgets(line, sizeof line, fp))
      if (sscanf(line, "btime %llu", &btime) == 1)
        break;
    fclose(fp);
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (ok && btime && hz > 0)
    return (double)btime + (double)ticks / (double)hz;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec;
}

/* ------------------------------------------------------------------------ */
/* The metric table */

enum kind {
  COUNTER,
  GAUGE
};
enum label {
  NONE,
  BY_TYPE,
  BY_SHARD,
  BY_VERSION,
  BY_SOURCE,         /* discovery source: static, dns, nacos */
  BY_SHARD_STRUCTURE /* i = shard * MQ_MEM_STRUCTURES + structure */
};

struct snap {
  struct mq_feed *f;
  struct mq_node_metrics m;
};

struct metric {
  const char *name;
  enum kind kind;
  enum label label;
  const char *help;
  /* value for label index i (request type or shard); i is ignored for NONE */
  double (*value)(const struct snap *s, int i);
};

static double v_requests(const struct snap *s, int i) { return (double)s->m.requests[i]; }
static double v_errors(const struct snap *s, int i) { return (double)s->m.errors[i]; }
static double v_keys(const struct snap *s, int i) { return (double)s->m.shards[i].keys; }
static double v_bytes(const struct snap *s, int i) { return (double)s->m.shards[i].bytes; }
static double v_mem(const struct snap *s, int i) {
  return (double)s->m.shards[i / MQ_MEM_STRUCTURES].mem[i % MQ_MEM_STRUCTURES];
}
static double v_rev(const struct snap *s, int i) { return (double)s->m.shards[i].revision; }
static double v_applied(const struct snap *s, int i) {
  return (double)s->m.shards[i].applied_index;
}
static double v_commit(const struct snap *s, int i) { return (double)s->m.shards[i].commit_index; }
static double v_term(const struct snap *s, int i) { return (double)s->m.shards[i].term; }
static double v_leader(const struct snap *s, int i) { return s->m.shards[i].is_leader ? 1 : 0; }
static double v_mem_used(const struct snap *s, int i) { return (double)s->m.memory_used_bytes; }
static double v_mem_budget(const struct snap *s, int i) { return (double)s->m.memory_budget_bytes; }
static double v_expired(const struct snap *s, int i) { return (double)s->m.expired_keys; }
static double v_watches(const struct snap *s, int i) { return (double)s->m.watches_open; }
static double v_watch_events(const struct snap *s, int i) { return (double)s->m.watch_events; }
static double v_slow(const struct snap *s, int i) { return (double)s->m.watches_dropped_slow; }
static double v_forwarded(const struct snap *s, int i) { return (double)s->m.forwarded; }
static double v_retries(const struct snap *s, int i) { return (double)s->m.retries; }
static double v_fwd_lost(const struct snap *s, int i) { return (double)s->m.forward_batches_lost; }
static double v_snaps(const struct snap *s, int i) { return (double)s->m.snapshots_installed; }
static double v_handoffs(const struct snap *s, int i) { return (double)s->m.handoffs; }
static double v_conns(const struct snap *s, int i) { return atomic_load(&s->f->n_ws); }
static double v_ready(const struct snap *s, int i) {
  char why[300];
  return mq_feed_is_ready(s->f, why, sizeof why) ? 1 : 0;
}
static double v_recoveries(const struct snap *s, int i) { return (double)s->m.recoveries; }
static double v_moves_started(const struct snap *s, int i) { return (double)s->m.moves_started; }
static double v_moves_finished(const struct snap *s, int i) { return (double)s->m.moves_finished; }
static double v_removed(const struct snap *s, int i) { return (double)s->m.replicas_removed; }
static double v_balance(const struct snap *s, int i) { return (double)s->m.balance_moves; }
static double v_moving(const struct snap *s, int i) { return (double)s->m.moves_in_progress; }
static double v_snap_bytes(const struct snap *s, int i) { return (double)s->m.snapshot_bytes; }
static double v_snap_child(const struct snap *s, int i) {
  return (double)s->m.snapshots_built_child;
}
static double v_snap_loop(const struct snap *s, int i) { return (double)s->m.snapshots_built_loop; }
static double v_disc_source(const struct snap *s, int i) {
  return s->m.discovery_source == i ? 1 : 0;
}
static double v_disc_ok(const struct snap *s, int i) {
  return (double)s->m.discovery_last_ok_ms[i] / 1000.0;
}
static double v_disc_errors(const struct snap *s, int i) {
  return (double)s->m.discovery_errors[i];
}
static double v_one(const struct snap *s, int i) { return 1; }
static double v_rss(const struct snap *s, int i) { return (double)resident_bytes(); }
static double v_start(const struct snap *s, int i) { return s->f->start_time_s; }

static const struct metric metrics[] = {
    {"memquorum_requests_total", COUNTER, BY_TYPE, "Requests completed, by type.", v_requests},
    {"memquorum_request_errors_total", COUNTER, BY_TYPE,
     "Requests completed with an error, by type.", v_errors},
    {"memquorum_shard_keys", GAUGE, BY_SHARD, "Keys held by the shard's replica here.", v_keys},
    {"memquorum_shard_bytes", GAUGE, BY_SHARD, "Bytes held by the shard's replica here.", v_bytes},
    {"memquorum_shard_memory_bytes", GAUGE, BY_SHARD_STRUCTURE,
     "Bytes of the shard's replica here, by structure (kv_records, kv_index, raft_log, "
     "watch_history, request_ids, topic_logs).",
     v_mem},
    {"memquorum_shard_revision", GAUGE, BY_SHARD, "Last revision applied to the shard.", v_rev},
    {"memquorum_shard_applied_index", GAUGE, BY_SHARD, "Raft log index applied.", v_applied},
    {"memquorum_shard_commit_index", GAUGE, BY_SHARD, "Raft log index committed.", v_commit},
    {"memquorum_shard_term", GAUGE, BY_SHARD, "Raft term of the shard's group here.", v_term},
    {"memquorum_shard_is_leader", GAUGE, BY_SHARD, "1 when this agent leads the shard.", v_leader},
    {"memquorum_memory_used_bytes", GAUGE, NONE, "Memory charged against the budget.", v_mem_used},
    {"memquorum_memory_budget_bytes", GAUGE, NONE, "Memory budget; writes past it are refused.",
     v_mem_budget},
    {"memquorum_expired_keys_total", COUNTER, NONE, "Keys removed by TTL expiry.", v_expired},
    {"memquorum_watches_open", GAUGE, NONE, "Open watches (gRPC and websocket).", v_watches},
    {"memquorum_watch_events_total", COUNTER, NONE, "Events queued to watchers.", v_watch_events},
    {"memquorum_watches_dropped_slow_total", COUNTER, NONE,
     "Watches ended because the subscriber fell behind.", v_slow},
    {"memquorum_requests_forwarded_total", COUNTER, NONE,
     "Requests sent to the shard's leader on another agent.", v_forwarded},
    {"memquorum_request_retries_total", COUNTER, NONE,
     "Request attempts tried again (leader changed, no leader yet, agent unreachable).", v_retries},
    {"memquorum_forward_batches_lost_total", COUNTER, NONE,
     "Batches of forwarded requests sent on a peer pipe that got no answer in time, or whose "
     "pipe broke; their requests were routed again.",
     v_fwd_lost},
    {"memquorum_snapshots_installed_total", COUNTER, NONE,
     "Shard snapshots installed from a leader (catching up after falling behind).", v_snaps},
    {"memquorum_leader_handoffs_total", COUNTER, NONE,
     "Shard leaderships handed to another replica: draining, placement, or following the "
     "requests.",
     v_handoffs},
    {"memquorum_shard_recoveries_total", COUNTER, NONE,
     "Shard groups rebuilt here from their survivors after their majority was provably gone "
     "(automatically when lossless, or by mqctl recover).",
     v_recoveries},
    {"memquorum_replica_moves_started_total", COUNTER, NONE,
     "Replicas added as learners by shards led here (joins, replacements, rebalancing).",
     v_moves_started},
    {"memquorum_replica_moves_finished_total", COUNTER, NONE,
     "Learners promoted to voters by shards led here.", v_moves_finished},
    {"memquorum_replicas_removed_total", COUNTER, NONE,
     "Replicas removed by shards led here (old incarnations, moved away, dead members).",
     v_removed},
    {"memquorum_replica_moves_in_progress", GAUGE, NONE,
     "Learners catching up in the shards led here.", v_moving},
    {"memquorum_leader_balance_moves_total", COUNTER, NONE,
     "Leaderships handed over to even out leadership across agents.", v_balance},
    {"memquorum_snapshot_received_bytes_total", COUNTER, NONE,
     "Snapshot bytes installed here (joining, replacing, catching up).", v_snap_bytes},
    {"memquorum_snapshots_built_in_child_total", COUNTER, NONE,
     "Snapshots for followers written by a forked child of this agent.", v_snap_child},
    {"memquorum_snapshots_built_in_loop_total", COUNTER, NONE,
     "Snapshots for followers written in this agent's loop (--snapshot-fork false, or the "
     "fork failed), which holds every shard meanwhile.",
     v_snap_loop},
    {"memquorum_discovery_source", GAUGE, BY_SOURCE,
     "1 for the discovery source in use (nacos, then dns, then static).", v_disc_source},
    {"memquorum_discovery_last_success_seconds", GAUGE, BY_SOURCE,
     "Wall time of the source's last answer, seconds since the epoch (0: never).", v_disc_ok},
    {"memquorum_discovery_errors_total", COUNTER, BY_SOURCE,
     "Discovery rounds of the source that failed.", v_disc_errors},
    {"memquorum_feed_connections", GAUGE, NONE, "Open websocket change feed connections.", v_conns},
    {"memquorum_ready", GAUGE, NONE, "1 when this agent is ready to serve (see /readyz).", v_ready},
    {"memquorum_build_info", GAUGE, BY_VERSION, "Build information; the value is always 1.", v_one},
    {"process_resident_memory_bytes", GAUGE, NONE, "Resident memory size in bytes.", v_rss},
    {"process_start_time_seconds", GAUGE, NONE, "Start time of the process since the epoch.",
     v_start},
};
#define N_METRICS (sizeof metrics / sizeof metrics[0])

static int snap_take(struct mq_feed *f, struct snap *s) {
  memset(s, 0, sizeof *s);
  s->f = f;
  int n = mq_node_shards(f->node);
  s->m.shards = calloc(n > 0 ? (size_t)n : 1, sizeof *s->m.shards);
  if (!s->m.shards)
    return MQ_ENOMEM;
  mq_node_metrics(f->node, &s->m);
  s->m.n_shards = n;
  return 0;
}

static void snap_free(struct snap *s) { free(s->m.shards); }

/* A sample value: integers print exactly, the rest with 17 digits. */
static void put_value(struct mq_buf *b, double v) {
  if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
    mq_feed_printf(b, "%" PRId64, (int64_t)v);
  else
    mq_feed_printf(b, "%.17g", v);
}

/* ------------------------------------------------------------------------ */
/* Prometheus */

void mq_feed_prometheus(struct mq_feed *f, struct mq_buf *b) {
  struct snap s;
  if (snap_take(f, &s)) {
    b->err = MQ_ENOMEM;
    return;
  }
  for (size_t k = 0; k < N_METRICS; k++) {
    const struct metric *m = &metrics[k];
    mq_feed_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                   m->kind == COUNTER ? "counter" : "gauge");
    switch (m->label) {
    case NONE:
      mq_feed_printf(b, "%s ", m->name);
      put_value(b, m->value(&s, 0));
      mq_feed_puts(b, "\n");
      break;
    case BY_TYPE:
      for (int i = 0; i < MQ_REQ_TYPES; i++) {
        mq_feed_printf(b, "%s{type=\"%s\"} ", m->name, mq_req_type_name((enum mq_req_type)i));
        put_value(b, m->value(&s, i));
        mq_feed_puts(b, "\n");
      }
      break;
    case BY_SHARD:
      for (int i = 0; i < s.m.n_shards; i++) {
        mq_feed_printf(b, "%s{shard=\"%d\"} ", m->name, i);
        put_value(b, m->value(&s, i));
        mq_feed_puts(b, "\n");
      }
      break;
    case BY_VERSION:
      mq_feed_printf(b, "%s{version=\"%s\"} 1\n", m->name, MQ_VERSION);
      break;
    case BY_SHARD_STRUCTURE:
      for (int i = 0; i < s.m.n_shards * MQ_MEM_STRUCTURES; i++) {
        mq_feed_printf(b, "%s{shard=\"%d\",structure=\"%s\"} ", m->name, i / MQ_MEM_STRUCTURES,
                       mq_mem_structure_name((enum mq_mem_structure)(i % MQ_MEM_STRUCTURES)));
        put_value(b, m->value(&s, i));
        mq_feed_puts(b, "\n");
      }
      break;
    case BY_SOURCE:
      for (int i = 0; i < MQ_DISCOVERY_SOURCES; i++) {
        mq_feed_printf(b, "%s{source=\"%s\"} ", m->name,
                       mq_discovery_source_name((enum mq_discovery_source)i));
        put_value(b, m->value(&s, i));
        mq_feed_puts(b, "\n");
      }
      break;
    }
  }
  snap_free(&s);
  pthread_mutex_lock(&f->lock);
  if (f->extra_metrics)
    f->extra_metrics(f->extra_arg, b);
  pthread_mutex_unlock(&f->lock);
}

void mq_feed_set_extra_metrics(struct mq_feed *f, mq_feed_metrics_fn fn, void *arg) {
  if (!f)
    return;
  pthread_mutex_lock(&f->lock);
  f->extra_metrics = fn;
  f->extra_arg = arg;
  pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------------ */
/* Actuator */

void mq_feed_actuator_health(struct mq_feed *f, struct mq_buf *b, bool *up) {
  char why[300];
  bool draining = atomic_load(&f->draining);
  bool node_ready = mq_node_ready(f->node);
  *up = mq_feed_is_ready(f, why, sizeof why);
  mq_feed_printf(b,
                 "{\"status\":\"%s\",\"components\":{"
                 "\"node\":{\"status\":\"%s\",\"details\":{\"ready\":%s,\"shards\":%d}},"
                 "\"feed\":{\"status\":\"%s\",\"details\":{\"draining\":%s,\"connections\":%d}}"
                 "},\"reason\":",
                 *up ? "UP" : "DOWN", node_ready ? "UP" : "DOWN", node_ready ? "true" : "false",
                 mq_node_shards(f->node), draining ? "DOWN" : "UP", draining ? "true" : "false",
                 atomic_load(&f->n_ws));
  mq_feed_json_str(b, why, strlen(why));
  mq_feed_puts(b, "}");
}

void mq_feed_actuator_info(struct mq_feed *f, struct mq_buf *b) {
  const struct mq_config *cfg = f->cfg;
  mq_feed_printf(
      b, "{\"app\":{\"name\":\"memquorum\",\"version\":\"%s\"},\"node\":{\"id\":", MQ_VERSION);
  mq_feed_json_str(b, cfg->node_id, strlen(cfg->node_id));
  mq_feed_printf(b,
                 "},\"cluster\":{\"shards_total\":%d,\"replication_factor\":%d,"
                 "\"replication_factor_configured\":%d}}",
                 cfg->shards_total, cfg->replication_factor, cfg->replication_factor_configured);
}

void mq_feed_actuator_names(struct mq_feed *f, struct mq_buf *b) {
  mq_feed_puts(b, "{\"names\":[");
  for (size_t k = 0; k < N_METRICS; k++)
    mq_feed_printf(b, "%s\"%s\"", k ? "," : "", metrics[k].name);
  mq_feed_puts(b, "]}");
}

/* Spring Boot's /actuator/metrics/<name>: one VALUE measurement (the sum
 * over the metric's label values) and the labels as availableTags. */
bool mq_feed_actuator_metric(struct mq_feed *f, const char *name, struct mq_buf *b) {
  const struct metric *m = NULL;
  for (size_t k = 0; k < N_METRICS && !m; k++)
    if (strcmp(metrics[k].name, name) == 0)
      m = &metrics[k];
  if (!m)
    return false;
  struct snap s;
  if (snap_take(f, &s)) {
    b->err = MQ_ENOMEM;
    return true;
  }
  double total = 0;
  const char *tag = NULL;
  int n = 1;
  if (m->label == BY_TYPE) {
    tag = "type";
    n = MQ_REQ_TYPES;
  } else if (m->label == BY_SHARD) {
    tag = "shard";
    n = s.m.n_shards;
  } else if (m->label == BY_VERSION) {
    tag = "version";
  } else if (m->label == BY_SOURCE) {
    tag = "source";
    n = MQ_DISCOVERY_SOURCES;
  } else if (m->label == BY_SHARD_STRUCTURE) {
    tag = "structure";
    n = MQ_MEM_STRUCTURES;
  }
  int values = m->label == BY_SHARD_STRUCTURE ? s.m.n_shards * MQ_MEM_STRUCTURES : n;
  for (int i = 0; i < values; i++)
    total += m->value(&s, i);
  mq_feed_printf(b, "{\"name\":\"%s\",\"description\":", m->name);
  mq_feed_json_str(b, m->help, strlen(m->help));
  mq_feed_puts(b, ",\"measurements\":[{\"statistic\":\"VALUE\",\"value\":");
  put_value(b, total);
  mq_feed_puts(b, "}],\"availableTags\":[");
  if (tag) {
    mq_feed_printf(b, "{\"tag\":\"%s\",\"values\":[", tag);
    for (int i = 0; i < (m->label == BY_VERSION ? 1 : n); i++) {
      if (m->label == BY_TYPE)
        mq_feed_printf(b, "%s\"%s\"", i ? "," : "", mq_req_type_name((enum mq_req_type)i));
      else if (m->label == BY_SHARD)
        mq_feed_printf(b, "%s\"%d\"", i ? "," : "", i);
      else if (m->label == BY_SOURCE)
        mq_feed_printf(b, "%s\"%s\"", i ? "," : "",
                       mq_discovery_source_name((enum mq_discovery_source)i));
      else if (m->label == BY_SHARD_STRUCTURE)
        mq_feed_printf(b, "%s\"%s\"", i ? "," : "",
                       mq_mem_structure_name((enum mq_mem_structure)i));
      else
        mq_feed_printf(b, "\"%s\"", MQ_VERSION);
    }
    mq_feed_puts(b, "]}");
  }
  mq_feed_puts(b, "]}");
  snap_free(&s);
  return true;
}
