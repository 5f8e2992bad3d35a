/* The Nacos client (nacos.h): four request slots on one curl multi handle,
 * driven by one thread.
 *
 *   login  POST /nacos/v1/auth/login, again at 80% of tokenTtl and on a 403
 *   inst   register, beat, register again, deregister: one at a time, so a
 *          late beat can never reach the server after the DELETE (r-nacos
 *          recreates an unknown instance from a beat, NACOS-NOTES.md)
 *   list   GET the healthy instances every 2 s -> mq_node_discovered
 *   conf   GET memquorum.properties, then hold a listener until it changes
 *
 * A failure is logged once per change of what went wrong and the slot
 * tries again later; nothing a server answers can block the loop or end
 * it. Paths and parameters: the Nacos v1 open API (nacos.io/docs/v1/open-api),
 * and for naming the v3 client API (nacos.io/docs/latest/manual/user/open-api). */
#include "discovery/nacos.h"

#include "discovery/nacos_json.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef MQ_VERSION
#define MQ_VERSION "0.1.0"
#endif

#define LIST_EVERY_MS 2000
#define REREGISTER_EVERY_MS 30000
#define RETRY_MS 2000
#define CALL_TIMEOUT_MS 5000
#define LISTEN_HOLD_MS 30000
#define START_BUDGET_MS 3000
#define DEREGISTER_BUDGET_MS 2000
#define DEFAULT_BEAT_MS 5000
#define MAX_SERVERS 8
#define MAX_LISTED 256

enum op {
  OP_LOGIN,
  OP_REGISTER,
  OP_BEAT,
  OP_DEREGISTER,
  OP_LIST,
  OP_READ,
  OP_LISTEN,
};

static const char *op_name[] = {"login",   "registration", "beat",           "deregistration",
                                "listing", "config read",  "config listener"};

/* One request slot: at most one call in flight. */
struct call {
  CURL *easy;
  enum op op;
  bool busy;
  int64_t next_at; /* monotonic ms; when the slot may start its next call */
  int64_t began_at;
  struct mq_buf url, form, body;
  struct curl_slist *headers;
  bool too_big;
  char md5[40]; /* content-md5 answered to a config read */
  char errbuf[CURL_ERROR_SIZE];
  char state[256]; /* what went wrong last, "" when the last call worked */
};

struct mq_nacos {
  const struct mq_config *cfg; /* flags, env, file, defaults: the base */
  struct mq_config applied;    /* cfg with the Nacos config on top */
  char servers[MAX_SERVERS][300];
  int n_servers, server;
  CURLM *multi;
  pthread_t thread;
  bool have_thread;

  pthread_mutex_t mu; /* guards the fields down to dereg_done */
  pthread_cond_t cv;
  bool started, stopping, dereg_asked, dereg_done;
  struct mq_node *node;
  int api_port, http_port;

  /* Owned by the client's thread (the caller's during mq_nacos_new). */
  bool booting;
  bool v3;
  bool api_logged;
  char token[1024];
  int64_t token_refresh_at, token_at;
  bool registered, deregistering;
  int64_t reregister_at, beat_at, beat_ms;
  char ip[256];
  int peer_port;
  char meta[1024];
  char conf_md5[40];
  bool conf_read_needed, conf_done;
  struct mq_nacos_instance *listed;
  struct mq_discovered *peers;
  struct call login, inst, list, conf;
};

/* ------------------------------------------------------------------------ */
/* Small text helpers                                                       */

static void text_end(struct mq_buf *b) {
  mq_buf_put_u8(b, '\0');
  b->len--;
}

static void puts_buf(struct mq_buf *b, const char *s) { mq_buf_put(b, s, strlen(s)); }

/* Appends &key=value, URL-encoded (RFC 3986 section 2.1). */
static void param(struct mq_buf *b, CURL *e, const char *key, const char *value) {
  char *v = curl_easy_escape(e, value, 0);
  if (b->len)
    puts_buf(b, "&");
  puts_buf(b, key);
  puts_buf(b, "=");
  if (v)
    puts_buf(b, v);
  else
    b->err = MQ_ENOMEM;
  curl_free(v);
  text_end(b);
}

/* A JSON string (RFC 8259 section 7) into out; our values are node ids,
 * addresses and numbers, escaped anyway. */
static void json_str(char *out, size_t cap, const char *s) {
  size_t k = 0;
  if (cap < 3)
    return;
  out[k++] = '"';
  for (; *s && k + 8 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      k += (size_t)snprintf(out + k, cap - k, "\\%c", ch);
    else if (ch < 0x20)
      k += (size_t)snprintf(out + k, cap - k, "\\u%04x", ch);
    else
      out[k++] = (char)ch;
  }
  out[k++] = '"';
  out[k] = '\0';
}

/* The first 120 printable bytes of an answer, for a message. */
static void snippet(const struct mq_buf *b, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < b->len && k + 1 < cap && i < 120; i++) {
    char ch = (char)b->data[i];
    out[k++] = (ch >= 0x20 && ch < 0x7f) ? ch : ' ';
  }
  while (k > 0 && out[k - 1] == ' ')
    k--;
  out[k] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct call *k = arg;
  size_t len = size * n;
  if (k->body.len + len > MQ_NACOS_MAX_BODY) {
    k->too_big = true;
    return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
  }
  mq_buf_put(&k->body, p, len);
  return k->body.err ? 0 : len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  struct call *k = arg;
  size_t len = size * n;
  static const char name[] = "content-md5:";
  if (len > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
    size_t i = sizeof name - 1, w = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
      i++;
    while (i < len && w + 1 < sizeof k->md5 &&
           ((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
            (p[i] >= 'A' && p[i] <= 'F')))
      k->md5[w++] = p[i++];
    k->md5[w] = '\0';
  }
  return len;
}

static int call_init(struct call *k) {
  memset(k, 0, sizeof *k);
  mq_buf_init(&k->url);
  mq_buf_init(&k->form);
  mq_buf_init(&k->body);
  k->easy = curl_easy_init();
  return k->easy ? 0 : MQ_ENOMEM;
}

static void call_close(struct mq_nacos *c, struct call *k) {
  if (k->busy)
    curl_multi_remove_handle(c->multi, k->easy);
  k->busy = false;
  if (k->easy)
    curl_easy_cleanup(k->easy);
  curl_slist_free_all(k->headers);
  mq_buf_close(&k->url);
  mq_buf_close(&k->form);
  mq_buf_close(&k->body);
}

/* Starts the call k->url (GET, or method with k->form as its body). */
static void call_start(struct mq_nacos *c, struct call *k, enum op op, const char *method,
                       const char *path, int64_t timeout_ms) {
  struct mq_buf query;
  mq_buf_init(&query);
  /* The query was put in k->url by the caller; prefix the server and path. */
  mq_buf_put(&query, k->url.data, k->url.len);
  mq_buf_reset(&k->url);
  puts_buf(&k->url, c->servers[c->server]);
  puts_buf(&k->url, path);
  if (c->token[0] && op != OP_LOGIN)
    param(&query, k->easy, "accessToken", c->token);
  if (query.len) {
    puts_buf(&k->url, "?");
    mq_buf_put(&k->url, query.data, query.len);
  }
  text_end(&k->url);
  text_end(&k->form);
  mq_buf_close(&query);

  CURL *e = k->easy;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, (const char *)k->url.data);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, ""); /* Nacos is reached directly */
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, k);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "memquorum/" MQ_VERSION);
  if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)k->form.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)k->form.len);
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (k->headers)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->headers);
  k->errbuf[0] = '\0';
  k->md5[0] = '\0';
  k->too_big = false;
  mq_buf_reset(&k->body);
  k->op = op;
  k->began_at = mq_clock_mono_ms();
  if (k->url.err || k->form.err || curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    snprintf(k->state, sizeof k->state, "cannot start a request: out of memory");
    k->next_at = mq_clock_mono_ms() + RETRY_MS;
    return;
  }
  k->busy = true;
}

/* Empties the query and body a slot builds its next call in. */
static void call_prepare(struct call *k) {
  mq_buf_reset(&k->url);
  mq_buf_reset(&k->form);
  curl_slist_free_all(k->headers);
  k->headers = NULL;
}

/* Logs a change of what a slot's calls run into: lvl for a new problem,
 * INFO when it works again. */
static void slot_state(struct call *k, int lvl, const char *problem) {
  if (strcmp(problem, k->state) == 0)
    return;
  if (problem[0])
    mq_log(lvl, "nacos", "%s: %s", op_name[k->op], problem);
  else
    mq_info("nacos", "%s works again", op_name[k->op]);
  snprintf(k->state, sizeof k->state, "%s", problem);
}

/* ------------------------------------------------------------------------ */
/* The calls of each slot                                                   */

static bool auth_on(const struct mq_nacos *c) { return c->cfg->nacos_username[0] != '\0'; }

static void naming_params(struct mq_nacos *c, struct mq_buf *b, CURL *e) {
  char port[16];
  snprintf(port, sizeof port, "%d", c->peer_port);
  param(b, e, "serviceName", MQ_NACOS_SERVICE);
  param(b, e, "groupName", c->cfg->nacos_group);
  if (c->cfg->nacos_namespace[0])
    param(b, e, "namespaceId", c->cfg->nacos_namespace);
  param(b, e, "ip", c->ip);
  param(b, e, "port", port);
  param(b, e, "ephemeral", "true");
}

static void start_login(struct mq_nacos *c) {
  struct call *k = &c->login;
  call_prepare(k);
  param(&k->form, k->easy, "username", c->cfg->nacos_username);
  param(&k->form, k->easy, "password", c->cfg->nacos_password);
  call_start(c, k, OP_LOGIN, "POST", c->v3 ? "/nacos/v3/auth/user/login" : "/nacos/v1/auth/login",
             CALL_TIMEOUT_MS);
}

static void start_register(struct mq_nacos *c) {
  struct call *k = &c->inst;
  call_prepare(k);
  naming_params(c, &k->form, k->easy);
  param(&k->form, k->easy, "weight", "1");
  param(&k->form, k->easy, "enabled", "true");
  param(&k->form, k->easy, "healthy", "true");
  param(&k->form, k->easy, "metadata", c->meta);
  call_start(c, k, OP_REGISTER, "POST",
             c->v3 ? "/nacos/v3/client/ns/instance" : "/nacos/v1/ns/instance", CALL_TIMEOUT_MS);
}

/* The full beat, with the metadata: a server that lost the instance
 * recreates it from this (r-nacos) instead of answering 20404. */
static void start_beat(struct mq_nacos *c) {
  struct call *k = &c->inst;
  char beat[2048], svc[300], ip[300];
  char name[300];
  snprintf(name, sizeof name, "%s@@%s", c->cfg->nacos_group, MQ_NACOS_SERVICE);
  json_str(svc, sizeof svc, name);
  json_str(ip, sizeof ip, c->ip);
  snprintf(beat, sizeof beat,
           "{\"serviceName\":%s,\"ip\":%s,\"port\":%d,\"cluster\":\"DEFAULT\",\"weight\":1.0,"
           "\"metadata\":%s,\"scheduled\":false,\"period\":%lld,\"stopped\":false}",
           svc, ip, c->peer_port, c->meta, (long long)c->beat_ms);
  call_prepare(k);
  naming_params(c, &k->form, k->easy);
  param(&k->form, k->easy, "beat", beat);
  call_start(c, k, OP_BEAT, "PUT", "/nacos/v1/ns/instance/beat", CALL_TIMEOUT_MS);
}

static void start_deregister(struct mq_nacos *c) {
  struct call *k = &c->inst;
  call_prepare(k);
  naming_params(c, &k->url, k->easy);
  call_start(c, k, OP_DEREGISTER, "DELETE",
             c->v3 ? "/nacos/v3/client/ns/instance" : "/nacos/v1/ns/instance",
             DEREGISTER_BUDGET_MS * 3 / 4);
}

static void start_list(struct mq_nacos *c) {
  struct call *k = &c->list;
  call_prepare(k);
  param(&k->url, k->easy, "serviceName", MQ_NACOS_SERVICE);
  param(&k->url, k->easy, "groupName", c->cfg->nacos_group);
  if (c->cfg->nacos_namespace[0])
    param(&k->url, k->easy, "namespaceId", c->cfg->nacos_namespace);
  param(&k->url, k->easy, "healthyOnly", "true");
  call_start(c, k, OP_LIST, "GET",
             c->v3 ? "/nacos/v3/client/ns/instance/list" : "/nacos/v1/ns/instance/list",
             CALL_TIMEOUT_MS);
}

static void start_read(struct mq_nacos *c) {
  struct call *k = &c->conf;
  call_prepare(k);
  param(&k->url, k->easy, "dataId", MQ_NACOS_DATA_ID);
  param(&k->url, k->easy, "group", c->cfg->nacos_group);
  if (c->cfg->nacos_namespace[0])
    param(&k->url, k->easy, "tenant", c->cfg->nacos_namespace);
  call_start(c, k, OP_READ, "GET", "/nacos/v1/cs/configs", CALL_TIMEOUT_MS);
}

/* Listening-Configs=dataId^2group^2md5[^2tenant]^1 (the v1 listener). */
static void start_listen(struct mq_nacos *c) {
  struct call *k = &c->conf;
  char what[600];
  if (c->cfg->nacos_namespace[0])
    snprintf(what, sizeof what, "%s\x02%s\x02%s\x02%s\x01", MQ_NACOS_DATA_ID, c->cfg->nacos_group,
             c->conf_md5, c->cfg->nacos_namespace);
  else
    snprintf(what, sizeof what, "%s\x02%s\x02%s\x01", MQ_NACOS_DATA_ID, c->cfg->nacos_group,
             c->conf_md5);
  call_prepare(k);
  param(&k->form, k->easy, "Listening-Configs", what);
  k->headers = curl_slist_append(NULL, "Long-Pulling-Timeout: 30000");
  call_start(c, k, OP_LISTEN, "POST", "/nacos/v1/cs/configs/listener",
             LISTEN_HOLD_MS + CALL_TIMEOUT_MS);
}

/* ------------------------------------------------------------------------ */
/* The config                                                               */

static void apply_config(struct mq_nacos *c, const char *text, size_t len) {
  struct mq_status st;
  struct mq_config *next = malloc(sizeof *next);
  char name[200];
  if (!next) {
    mq_warn("nacos", "config %s: out of memory; not applied", MQ_NACOS_DATA_ID);
    return;
  }
  snprintf(name, sizeof name, "Nacos %s", MQ_NACOS_DATA_ID);
  mq_status_clear(&st);
  *next = *c->cfg;
  if (mq_config_apply_props_text(next, text, len, name, &st)) {
    mq_warn("nacos", "config %s (group %s) is not applied: %s", MQ_NACOS_DATA_ID,
            c->cfg->nacos_group, st.msg);
    free(next);
    return;
  }
  size_t n_rows;
  const struct mq_config_setting *rows = mq_config_settings(&n_rows);
  int changed[MQ_CONFIG_MAX_SETTINGS];
  size_t n = mq_config_diff(&c->applied, next, changed, MQ_CONFIG_MAX_SETTINGS);
  if (c->booting) {
    mq_info("nacos", "config %s (group %s) read: %zu settings differ from the local ones",
            MQ_NACOS_DATA_ID, c->cfg->nacos_group, n);
  } else {
    int live = 0;
    mq_log(n ? MQ_LOG_INFO : MQ_LOG_DEBUG, "nacos",
           "config %s (group %s) changed: %zu settings differ", MQ_NACOS_DATA_ID,
           c->cfg->nacos_group, n);
    for (size_t i = 0; i < n; i++) {
      if (rows[changed[i]].flags & MQ_CONFIG_LIVE)
        live++;
      else
        mq_warn("nacos", "%s changed in the Nacos config: needs a restart to take effect",
                rows[changed[i]].prop ? rows[changed[i]].prop : rows[changed[i]].flag);
    }
    if (live && mq_node_reconfigure(c->node, next))
      mq_warn("nacos", "the agent is stopping: live settings not applied");
  }
  c->applied = *next;
  free(next);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */

static void report_list_failure(struct mq_nacos *c, const char *why) {
  if (!c->booting && c->node)
    mq_node_discovery_failed(c->node, MQ_DISCOVERY_NACOS, why);
}

static void got_list(struct mq_nacos *c, struct call *k) {
  struct mq_status st;
  size_t n = 0, skipped = 0, found = 0;
  mq_status_clear(&st);
  text_end(&k->body);
  if (mq_nacos_parse_list((const char *)k->body.data, k->body.len, c->listed, MAX_LISTED, &n,
                          &skipped, &st)) {
    char why[300];
    snprintf(why, sizeof why, "instance list: %s", st.msg);
    report_list_failure(c, why);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const struct mq_nacos_instance *in = &c->listed[i];
    if (!in->healthy || !in->enabled)
      continue;
    struct mq_discovered *p = &c->peers[found++];
    memset(p, 0, sizeof *p);
    snprintf(p->addr, sizeof p->addr, strchr(in->ip, ':') ? "[%s]:%d" : "%s:%d", in->ip, in->port);
    snprintf(p->node_id, sizeof p->node_id, "%s", in->node_id);
    p->incarnation = in->incarnation;
  }
  mq_debug("nacos", "listing: %zu healthy instances of %s (%zu without a usable address)", found,
           MQ_NACOS_SERVICE, skipped);
  if (!c->api_logged) {
    mq_info("nacos", "using the Nacos %s API at %s", c->v3 ? "v3 client" : "v1 open",
            c->servers[c->server]);
    c->api_logged = true;
  }
  mq_node_discovered(c->node, MQ_DISCOVERY_NACOS, c->peers, found);
}

/* What went wrong with a finished call, or "" when it got a 2xx. */
static void problem_of(struct mq_nacos *c, struct call *k, CURLcode cc, long status, char *out,
                       size_t cap) {
  char body[128];
  out[0] = '\0';
  if (k->too_big) {
    snprintf(out, cap, "answer larger than %u bytes", MQ_NACOS_MAX_BODY);
  } else if (cc != CURLE_OK) {
    /* curl's own words are stable ("Couldn't connect to server"), its
     * error buffer is not (it counts milliseconds): logs compare these. */
    snprintf(out, cap, "cannot reach %s: %s", c->servers[c->server], curl_easy_strerror(cc));
    if (k->errbuf[0])
      mq_debug("nacos", "%s: %s", op_name[k->op], k->errbuf);
  } else if (status < 200 || status > 299) {
    snippet(&k->body, body, sizeof body);
    snprintf(out, cap, "%s answered %ld%s%s", c->servers[c->server], status, body[0] ? ": " : "",
             body);
  }
}

static bool json_answer(struct call *k, char *out, size_t cap) {
  char *ct = NULL;
  curl_easy_getinfo(k->easy, CURLINFO_CONTENT_TYPE, &ct);
  if (ct && strstr(ct, "json"))
    return true;
  snprintf(out, cap, "answer is %s, not JSON", ct ? ct : "without a content type");
  return false;
}

static void finished(struct mq_nacos *c, struct call *k, CURLcode cc) {
  long status = 0;
  char why[400];
  int64_t now = mq_clock_mono_ms();
  struct mq_status st;
  mq_status_clear(&st);
  curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(c->multi, k->easy);
  k->busy = false;
  problem_of(c, k, cc, status, why, sizeof why);
  if (cc != CURLE_OK && !k->too_big && c->n_servers > 1)
    c->server = (c->server + 1) % c->n_servers; /* try the next server next time */

  /* A refused token: log in again, then retry; unless it is fresh, then
   * the user lacks the right and logging in again would only hammer. */
  if (status == 403 && k->op != OP_LOGIN && k->op != OP_DEREGISTER && auth_on(c) &&
      now - c->token_at > 5000) {
    c->token[0] = '\0';
    c->login.next_at = now;
    k->next_at = now;
    slot_state(k, MQ_LOG_WARN, "Nacos refused the access token: logging in again");
    if (k->op == OP_REGISTER || k->op == OP_BEAT)
      c->registered = false;
    return;
  }
  if (status == 403 && k->op != OP_LOGIN)
    snprintf(why + strlen(why), sizeof why - strlen(why), "%s",
             auth_on(c) ? " (a fresh token: does the user have the right to this namespace?)"
                        : " (is auth on? set --nacos-username and --nacos-password)");

  switch (k->op) {
  case OP_LOGIN: {
    if (!why[0] && json_answer(k, why, sizeof why)) {
      int64_t ttl = 0;
      text_end(&k->body);
      if (mq_nacos_parse_login((const char *)k->body.data, k->body.len, c->token, sizeof c->token,
                               &ttl, &st) == 0) {
        c->token_refresh_at = now + ttl * 800; /* 80% of the TTL, in ms */
        c->token_at = now;
        slot_state(k, MQ_LOG_ERROR, "");
        mq_debug("nacos", "logged in as %s; token valid for %lld s", c->cfg->nacos_username,
                 (long long)ttl);
        return;
      }
      snprintf(why, sizeof why, "login answer: %s", st.msg);
    }
    char msg[600];
    snprintf(msg, sizeof msg, "as %s failed: %s (check --nacos-username and --nacos-password)",
             c->cfg->nacos_username, why);
    slot_state(k, MQ_LOG_ERROR, msg);
    report_list_failure(c, msg);
    k->next_at = now + 5000;
    return;
  }
  case OP_REGISTER:
    if (why[0]) {
      slot_state(k, MQ_LOG_WARN, why);
      c->registered = false;
      k->next_at = now + RETRY_MS;
      return;
    }
    if (!c->registered)
      mq_info("nacos", "registered %s:%d in service %s (group %s, namespace %s): %s", c->ip,
              c->peer_port, MQ_NACOS_SERVICE, c->cfg->nacos_group,
              c->cfg->nacos_namespace[0] ? c->cfg->nacos_namespace : "public", c->meta);
    slot_state(k, MQ_LOG_WARN, "");
    c->registered = true;
    c->reregister_at = now + REREGISTER_EVERY_MS;
    /* v3 has no beat: registering again keeps the instance. */
    c->beat_at = now + c->beat_ms;
    return;
  case OP_BEAT: {
    int code = 0;
    if (!why[0] && json_answer(k, why, sizeof why)) {
      text_end(&k->body);
      if (mq_nacos_parse_beat((const char *)k->body.data, k->body.len, &code, &c->beat_ms, &st))
        snprintf(why, sizeof why, "beat answer: %s", st.msg);
    }
    if (why[0]) {
      slot_state(k, MQ_LOG_WARN, why);
      c->registered = false; /* register in full once it answers again */
      k->next_at = now + RETRY_MS;
      return;
    }
    slot_state(k, MQ_LOG_WARN, "");
    if (code == 20404) { /* RESOURCE_NOT_FOUND: the server lost the instance */
      mq_info("nacos", "Nacos does not know this instance any more: registering again");
      c->registered = false;
      return;
    }
    c->beat_at = now + c->beat_ms;
    return;
  }
  case OP_DEREGISTER:
    if (why[0])
      mq_warn("nacos", "deregistration failed: %s; Nacos drops the instance once its beats stop",
              why);
    else
      mq_info("nacos", "deregistered %s:%d from service %s", c->ip, c->peer_port, MQ_NACOS_SERVICE);
    pthread_mutex_lock(&c->mu);
    c->dereg_done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return;
  case OP_LIST:
    k->next_at = now + LIST_EVERY_MS;
    if (status == 404 && !k->too_big) {
      /* Nacos 3.2+ without the legacy adapter has no v1 API. */
      c->v3 = !c->v3;
      c->api_logged = false;
      c->registered = false;
      k->next_at = now;
      mq_warn("nacos", "%s; trying the %s API%s", why, c->v3 ? "v3 client" : "v1 open",
              c->v3 ? " (the config is not followed with it)" : "");
      return;
    }
    if (!why[0] && json_answer(k, why, sizeof why)) {
      got_list(c, k);
      return;
    }
    report_list_failure(c, why);
    return;
  case OP_READ:
    if (status == 404 && !k->too_big) { /* no such config: nothing to apply */
      if (c->conf_md5[0] || c->booting)
        mq_info("nacos", "no config %s in group %s", MQ_NACOS_DATA_ID, c->cfg->nacos_group);
      c->conf_md5[0] = '\0';
      if (!c->booting)
        apply_config(c, "", 0);
      c->conf_read_needed = false;
      c->conf_done = true;
      slot_state(k, MQ_LOG_WARN, "");
      return;
    }
    if (why[0]) {
      slot_state(k, MQ_LOG_WARN, why);
      k->next_at = now + RETRY_MS;
      return;
    }
    slot_state(k, MQ_LOG_WARN, "");
    text_end(&k->body);
    apply_config(c, (const char *)k->body.data, k->body.len);
    snprintf(c->conf_md5, sizeof c->conf_md5, "%s", k->md5);
    c->conf_read_needed = false;
    c->conf_done = true;
    if (!c->conf_md5[0]) { /* no md5 to listen with: read again later */
      c->conf_read_needed = true;
      k->next_at = now + 10000;
    }
    return;
  case OP_LISTEN:
    if (why[0]) {
      slot_state(k, MQ_LOG_WARN, why);
      k->next_at = now + RETRY_MS;
      return;
    }
    slot_state(k, MQ_LOG_WARN, "");
    if (mq_nacos_listener_changed((const char *)k->body.data, k->body.len, MQ_NACOS_DATA_ID,
                                  c->cfg->nacos_group))
      c->conf_read_needed = true;
    return;
  }
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */

static bool may_call(const struct mq_nacos *c) { return !auth_on(c) || c->token[0]; }

static void schedule(struct mq_nacos *c, int64_t now) {
  struct call *k;
  if (auth_on(c) && (!c->token[0] || now >= c->token_refresh_at) && !c->login.busy &&
      now >= c->login.next_at)
    start_login(c);
  if (!may_call(c))
    return;
  k = &c->conf;
  if (!k->busy && now >= k->next_at && !c->v3) { /* the config paths are v1 only */
    if (c->conf_read_needed || (c->booting && !c->conf_done))
      start_read(c);
    else if (!c->booting)
      start_listen(c);
  }
  if (c->booting)
    return;
  k = &c->list;
  if (!k->busy && now >= k->next_at)
    start_list(c);
  k = &c->inst;
  if (k->busy || now < k->next_at || !c->peer_port)
    return;
  if (c->deregistering)
    return;
  if (!c->registered || now >= c->reregister_at || (c->v3 && now >= c->beat_at))
    start_register(c);
  else if (now >= c->beat_at)
    start_beat(c);
}

static int64_t later(int64_t a, int64_t b) { return a > b ? a : b; }

/* When schedule() will next start something: only slots that can start
 * count, or a slot waiting on another would make the loop spin. */
static int64_t next_due(const struct mq_nacos *c, int64_t now) {
  int64_t t = now + 1000;
  const struct call *k;
#define SOONER(x)                                                                                  \
  do {                                                                                             \
    if ((x) < t)                                                                                   \
      t = (x);                                                                                     \
  } while (0)
  if (auth_on(c) && !c->login.busy)
    SOONER(c->token[0] ? later(c->token_refresh_at, c->login.next_at) : c->login.next_at);
  if (may_call(c)) {
    if (!c->conf.busy && !c->v3)
      SOONER(c->conf.next_at);
    if (!c->booting && !c->list.busy)
      SOONER(c->list.next_at);
    k = &c->inst;
    if (!c->booting && !k->busy && c->peer_port && !c->deregistering)
      SOONER(later(k->next_at, c->registered
                                   ? (c->beat_at < c->reregister_at ? c->beat_at : c->reregister_at)
                                   : 0));
  }
#undef SOONER
  return t < now ? now : t;
}

/* One round: start what is due, move transfers, handle what finished,
 * wait at most until the next thing is due (or a wakeup). */
static void step(struct mq_nacos *c) {
  int running = 0, left = 0;
  int64_t now = mq_clock_mono_ms();
  schedule(c, now);
  curl_multi_perform(c->multi, &running);
  CURLMsg *m;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    struct call *all[] = {&c->login, &c->inst, &c->list, &c->conf};
    for (size_t i = 0; i < 4; i++)
      if (all[i]->busy && all[i]->easy == m->easy_handle) {
        finished(c, all[i], m->data.result);
        break;
      }
  }
  now = mq_clock_mono_ms();
  schedule(c, now);
  int64_t wait = next_due(c, now) - now;
  curl_multi_poll(c->multi, NULL, 0, (int)(wait > 1000 ? 1000 : wait), NULL);
}

/* Deregistration, on the client's thread: no beat or registration after
 * it; a call still in flight on the instance slot finishes first (or is
 * dropped after a second), then the DELETE goes out. */
static void deregister_step(struct mq_nacos *c) {
  struct call *k = &c->inst;
  if (!c->deregistering) {
    c->deregistering = true;
    c->registered = false;
  }
  if (k->busy && k->op != OP_DEREGISTER && mq_clock_mono_ms() - k->began_at > 1000) {
    curl_multi_remove_handle(c->multi, k->easy);
    k->busy = false;
  }
  if (!k->busy && k->op != OP_DEREGISTER) {
    if (c->peer_port)
      start_deregister(c);
    if (!k->busy) { /* nothing to deregister, or it could not start */
      k->op = OP_DEREGISTER;
      pthread_mutex_lock(&c->mu);
      c->dereg_done = true;
      pthread_cond_broadcast(&c->cv);
      pthread_mutex_unlock(&c->mu);
    }
  }
}

static void build_metadata(struct mq_nacos *c) {
  char id[300];
  json_str(id, sizeof id, c->cfg->node_id);
  snprintf(c->meta, sizeof c->meta,
           "{\"node_id\":%s,\"incarnation\":\"%llu\",\"api_port\":\"%d\",\"http_port\":\"%d\","
           "\"shards_total\":\"%d\",\"version\":\"%s\"}",
           id, (unsigned long long)mq_node_incarnation(c->node), c->api_port, c->http_port,
           c->applied.shards_total, MQ_VERSION);
}

static void *run(void *arg) {
  struct mq_nacos *c = arg;
  pthread_setname_np(pthread_self(), "mq-nacos");
  pthread_mutex_lock(&c->mu);
  while (!c->started && !c->stopping)
    pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);

  if (c->node) {
    const char *addr = mq_node_peer_address(c->node);
    const char *colon = strrchr(addr, ':');
    c->peer_port = colon ? atoi(colon + 1) : 0;
    snprintf(c->ip, sizeof c->ip, "%s", c->cfg->advertise_addr);
    build_metadata(c);
    if (!c->peer_port)
      mq_warn("nacos", "this agent runs no peer transport: it lists but does not register");
  }
  for (;;) {
    pthread_mutex_lock(&c->mu);
    bool stop = c->stopping, dereg = c->dereg_asked && !c->dereg_done;
    pthread_mutex_unlock(&c->mu);
    if (stop)
      break;
    if (dereg)
      deregister_step(c);
    step(c);
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

static int parse_servers(struct mq_nacos *c, struct mq_status *st) {
  const char *s = c->cfg->nacos_addr;
  while (*s && c->n_servers < MAX_SERVERS) {
    size_t n = strcspn(s, ",");
    while (n && (*s == ' ')) {
      s++;
      n--;
    }
    size_t m = n;
    while (m && (s[m - 1] == ' ' || s[m - 1] == '/'))
      m--;
    if (m > 250)
      return mq_status_set(st, MQ_EINVAL, "--nacos: address \"%.40s...\" is too long", s);
    if (m) {
      char one[256];
      snprintf(one, sizeof one, "%.*s", (int)m, s);
      snprintf(c->servers[c->n_servers++], sizeof c->servers[0], "%s%s",
               strstr(one, "://") ? "" : "http://", one);
    }
    s += n;
    if (*s == ',')
      s++;
  }
  if (!c->n_servers)
    return mq_status_set(st, MQ_EINVAL, "--nacos: no server address");
  return 0;
}

/* The config (and the login it needs) before the node starts. */
static void boot(struct mq_nacos *c) {
  int64_t deadline = mq_clock_mono_ms() + START_BUDGET_MS;
  c->booting = true;
  while (!c->conf_done && mq_clock_mono_ms() < deadline)
    step(c);
  if (!c->conf_done) {
    const char *why = c->login.state[0] ? c->login.state : c->conf.state;
    mq_warn("nacos", "config %s not read within %d s (%s): starting with the local settings",
            MQ_NACOS_DATA_ID, START_BUDGET_MS / 1000, why[0] ? why : "no answer");
    if (c->conf.busy) {
      curl_multi_remove_handle(c->multi, c->conf.easy);
      c->conf.busy = false;
    }
    c->conf_read_needed = true;
  }
  c->booting = false;
  c->conf.next_at = 0;
}

int mq_nacos_new(struct mq_nacos **out, const struct mq_config *cfg, struct mq_config *eff,
                 struct mq_status *st) {
  int rc;
  struct mq_nacos *c = calloc(1, sizeof *c);
  *out = NULL;
  *eff = *cfg;
  if (!c)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  c->cfg = cfg;
  c->applied = *cfg;
  c->beat_ms = DEFAULT_BEAT_MS;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  if ((rc = parse_servers(c, st)))
    goto free_client;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    rc = mq_status_set(st, MQ_EIO, "cannot initialise libcurl");
    goto free_client;
  }
  c->multi = curl_multi_init();
  c->listed = calloc(MAX_LISTED, sizeof *c->listed);
  c->peers = calloc(MAX_LISTED, sizeof *c->peers);
  if (!c->multi || !c->listed || !c->peers || call_init(&c->login) || call_init(&c->inst) ||
      call_init(&c->list) || call_init(&c->conf)) {
    rc = mq_status_set(st, MQ_ENOMEM, "cannot create the Nacos client: out of memory");
    goto free_curl;
  }
  boot(c);
  *eff = c->applied;
  if (pthread_create(&c->thread, NULL, run, c) != 0) {
    rc = mq_status_set(st, MQ_EIO, "cannot start the Nacos client thread");
    goto free_curl;
  }
  c->have_thread = true;
  *out = c;
  return 0;

free_curl:
  call_close(c, &c->login);
  call_close(c, &c->inst);
  call_close(c, &c->list);
  call_close(c, &c->conf);
  if (c->multi)
    curl_multi_cleanup(c->multi);
  free(c->listed);
  free(c->peers);
  curl_global_cleanup();
free_client:
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
  return rc;
}

void mq_nacos_start(struct mq_nacos *c, struct mq_node *node, int api_port, int http_port) {
  pthread_mutex_lock(&c->mu);
  c->node = node;
  c->api_port = api_port;
  c->http_port = http_port;
  c->started = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

void mq_nacos_deregister(struct mq_nacos *c) {
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  bool go = c->started && !c->dereg_asked;
  c->dereg_asked = true;
  pthread_mutex_unlock(&c->mu);
  if (!go)
    return;
  curl_multi_wakeup(c->multi);
  struct timespec deadline; /* the condition variable waits on CLOCK_MONOTONIC */
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += DEREGISTER_BUDGET_MS / 1000;
  pthread_mutex_lock(&c->mu);
  int wrc = 0;
  while (!c->dereg_done && wrc == 0)
    wrc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
  bool done = c->dereg_done;
  pthread_mutex_unlock(&c->mu);
  if (!done)
    mq_warn("nacos",
            "no answer to the deregistration within %d s; Nacos drops the instance "
            "once its beats stop",
            DEREGISTER_BUDGET_MS / 1000);
}

void mq_nacos_free(struct mq_nacos *c) {
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (c->have_thread) {
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
  }
  call_close(c, &c->login);
  call_close(c, &c->inst);
  call_close(c, &c->list);
  call_close(c, &c->conf);
  curl_multi_cleanup(c->multi);
  free(c->listed);
  free(c->peers);
  curl_global_cleanup();
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}
