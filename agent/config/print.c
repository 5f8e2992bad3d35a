/* --help text and the startup log of effective settings, both generated
 * from the settings table. */
#include "config/config.h"

#include "config/values.h"
#include "util/log.h"

#include <inttypes.h>
#include <string.h>

static const char *const groups[] = {"Node", "Cluster", "Discovery", "Security", "Kafka",
                                     "Raft", "Limits",  "Logging",   "Feed"};

static const char *metavar(enum mq_config_type t) {
  switch (t) {
  case MQ_CONFIG_STRING:
    return "TEXT";
  case MQ_CONFIG_NODE_ID:
    return "ID";
  case MQ_CONFIG_PATH:
    return "FILE";
  case MQ_CONFIG_INT:
    return "N";
  case MQ_CONFIG_BOOL:
    return "[BOOL]";
  case MQ_CONFIG_COUNT:
    return "N";
  case MQ_CONFIG_SIZE:
    return "SIZE";
  case MQ_CONFIG_DURATION:
    return "DURATION";
  case MQ_CONFIG_PEERS:
    return "ID=HOST:PORT,...";
  case MQ_CONFIG_LOG_LEVEL:
    return "LEVEL";
  case MQ_CONFIG_LOG_FORMAT:
    return "text|json";
  }
  return "VALUE";
}

void mq_config_usage(FILE *out) {
  size_t n;
  const struct mq_config_setting *t = mq_config_settings(&n);
  fprintf(out, "Usage: memquorum [--flag value | --flag=value]...\n"
               "\n"
               "MemQuorum sidecar agent. Every setting can also come from an environment\n"
               "variable or a properties file (--config); precedence is\n"
               "flag > environment > properties file > default. Settings marked (live)\n"
               "change while the agent runs when the Nacos config changes; the others need\n"
               "a restart.\n"
               "Sizes take binary units (512MiB, 1g); durations take ms, s, m, h, d (7d, 1h30m;\n"
               "a plain number is milliseconds); booleans are true/false, yes/no, on/off, 1/0.\n"
               "\n"
               "  -h, --help     print this help and exit\n"
               "  --version      print the version and exit\n");
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
    fprintf(out, "\n%s:\n", groups[g]);
    for (size_t i = 0; i < n; i++) {
      const struct mq_config_setting *r = &t[i];
      if (strcmp(r->group, groups[g]) != 0)
        continue;
      const char *def = r->def_help ? r->def_help : r->def;
      fprintf(out, "  --%s %s%s\n      %s (default: %s)\n      ", r->flag, metavar(r->type),
              (r->flags & MQ_CONFIG_LIVE) ? " (live)" : "", r->help, def && *def ? def : "none");
      if (r->env)
        fprintf(out, "env %s", r->env);
      if (r->prop)
        fprintf(out, "%sproperty %s", r->env ? ", " : "", r->prop);
      fputc('\n', out);
    }
  }
}

/* Formats the value of setting r in cfg for people. */
static void format_value(const struct mq_config *cfg, const struct mq_config_setting *r, char *out,
                         size_t cap) {
  const char *field = (const char *)cfg + r->offset;
  int64_t v = 0;
  if (r->size == sizeof(int32_t)) {
    int32_t x;
    memcpy(&x, field, sizeof x);
    v = x;
  } else if (r->size == sizeof(int64_t)) {
    memcpy(&v, field, sizeof v);
  }
  switch (r->type) {
  case MQ_CONFIG_STRING:
  case MQ_CONFIG_NODE_ID:
  case MQ_CONFIG_PATH:
    if ((r->flags & MQ_CONFIG_SECRET) && field[0])
      snprintf(out, cap, "****");
    else
      snprintf(out, cap, "%s", field[0] ? field : "(none)");
    break;
  case MQ_CONFIG_BOOL:
    snprintf(out, cap, "%s", *(const bool *)field ? "true" : "false");
    break;
  case MQ_CONFIG_INT:
  case MQ_CONFIG_COUNT:
    snprintf(out, cap, "%" PRId64, v);
    break;
  case MQ_CONFIG_SIZE:
    mq_config_format_size((uint64_t)v, out, cap);
    break;
  case MQ_CONFIG_DURATION:
    mq_config_format_duration_ms(v, out, cap);
    break;
  case MQ_CONFIG_PEERS: {
    size_t len = 0;
    out[0] = '\0';
    if (cfg->n_peers == 0)
      snprintf(out, cap, "(none)");
    for (int i = 0; i < cfg->n_peers && len < cap; i++) {
      const struct mq_peer_addr *p = &cfg->peers[i];
      bool v6 = strchr(p->host, ':') != NULL;
      len += (size_t)snprintf(out + len, cap - len, "%s%s=%s%s%s:%d", i ? "," : "", p->node_id,
                              v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
    }
    break;
  }
  case MQ_CONFIG_LOG_LEVEL: {
    static const char *names[] = {"debug", "info", "warn", "error"};
    snprintf(out, cap, "%s", v >= 0 && v < 4 ? names[v] : "?");
    break;
  }
  case MQ_CONFIG_LOG_FORMAT:
    snprintf(out, cap, "%s", v == MQ_LOG_JSON ? "json" : "text");
    break;
  }
}

void mq_config_log(const struct mq_config *cfg) {
  /* Indexed by enum mq_config_origin. */
  static const char *origins[] = {"default", "derived", "file", "Nacos config", "env", "flag"};
  size_t n;
  const struct mq_config_setting *t = mq_config_settings(&n);
  for (size_t i = 0; i < n; i++) {
    char val[1024];
    format_value(cfg, &t[i], val, sizeof val);
    unsigned o = cfg->origin[i] < sizeof origins / sizeof origins[0] ? cfg->origin[i] : 0;
    mq_info("config", "%s%s = %s (%s)", t[i].prop ? "" : "--", t[i].prop ? t[i].prop : t[i].flag,
            val, origins[o]);
  }
  if (cfg->rf_clamped)
    mq_info("config", "effective replication factor 1 (configured %d): single agent",
            cfg->replication_factor_configured);
}
