/* Log line formatting and output. */
#include "util/log.h"

#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char node[128] = "-";
static enum mq_log_level min_level = MQ_LOG_INFO;
static enum mq_log_format format = MQ_LOG_TEXT;

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void mq_log_set_node(const char *node_id) { snprintf(node, sizeof node, "%s", node_id); }

void mq_log_set_level(enum mq_log_level level) { min_level = level; }

void mq_log_set_format(enum mq_log_format f) { format = f; }

int mq_log_parse_level(const char *s, enum mq_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (enum mq_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = MQ_LOG_WARN;
    return 0;
  }
  return MQ_EINVAL;
}

/* Appends s to out as the body of a JSON string; returns the new length. */
static size_t json_escape(char *out, size_t len, size_t cap, const char *s) {
  for (; *s && len + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[len++] = '\\';
      out[len++] = (char)c;
    } else if (c < 0x20) {
      len += (size_t)snprintf(out + len, cap - len, "\\u%04x", c);
    } else {
      out[len++] = (char)c;
    }
  }
  return len;
}

void mq_log(enum mq_log_level level, const char *component, const char *fmt, ...) {
  if (level < min_level)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char ts[40];
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03d", (int)(tv.tv_usec / 1000));

  char line[4096];
  size_t len;
  if (format == MQ_LOG_JSON) {
    len = (size_t)snprintf(line, sizeof line,
                           "{\"ts\":\"%s\",\"component\":\"%s\",\"level\":\"%s\",\"node\":\"", ts,
                           component, level_names[level]);
    len = json_escape(line, len, sizeof line - 4, node);
    len += (size_t)snprintf(line + len, sizeof line - len, "\",\"msg\":\"");
    len = json_escape(line, len, sizeof line - 4, msg);
    len += (size_t)snprintf(line + len, sizeof line - len, "\"}\n");
  } else {
    len = (size_t)snprintf(line, sizeof line, "%s [%s] %s [%s] %s\n", ts, component,
                           level_names[level], node, msg);
  }
  if (len >= sizeof line) {
    len = sizeof line - 1;
    line[len - 1] = '\n';
  }
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
