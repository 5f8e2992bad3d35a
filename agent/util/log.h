/* Logging: one line per event, in the format of DESIGN.md section 4:
 *
 *   2026-01-15 10:30:45.123 [raft] INFO [node-1] shard 7: became leader for term 5
 *
 * or one JSON object per line with mq_log_set_format(MQ_LOG_JSON). The
 * bracketed first word is the component ("raft", "grpc", "store", ...). Lines
 * go to stderr with a single write(2) each, so lines from several threads
 * never interleave. Safe to call from any thread. */
#ifndef MQ_UTIL_LOG_H
#define MQ_UTIL_LOG_H

enum mq_log_level {
  MQ_LOG_DEBUG,
  MQ_LOG_INFO,
  MQ_LOG_WARN,
  MQ_LOG_ERROR
};
enum mq_log_format {
  MQ_LOG_TEXT,
  MQ_LOG_JSON
};

/* Configuration; call before threads start. node_id is copied. */
void mq_log_set_node(const char *node_id);
void mq_log_set_level(enum mq_log_level level);
void mq_log_set_format(enum mq_log_format format);
/* Parses "debug|info|warn|error"; returns 0 or MQ_EINVAL. */
int mq_log_parse_level(const char *s, enum mq_log_level *out);

void mq_log(enum mq_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mq_debug(comp, ...) mq_log(MQ_LOG_DEBUG, comp, __VA_ARGS__)
#define mq_info(comp, ...) mq_log(MQ_LOG_INFO, comp, __VA_ARGS__)
#define mq_warn(comp, ...) mq_log(MQ_LOG_WARN, comp, __VA_ARGS__)
#define mq_error(comp, ...) mq_log(MQ_LOG_ERROR, comp, __VA_ARGS__)

#endif
