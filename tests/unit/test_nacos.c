/* The Nacos client's pure parts: the answers r-nacos 0.8.8 really sends
 * (scripts/services/NACOS-NOTES.md) decoded into instances, beat interval
 * and token; garbage refused with a message; the listener's answer; and the
 * Nacos config applied under flags and environment
 * (mq_config_apply_props_text, mq_config_diff). */
#include "config/config.h"
#include "discovery/nacos_json.h"

#include "check.h"

#include <stdlib.h>

#define LIST_V1                                                                                    \
  "{\"name\":\"DEFAULT_GROUP@@memquorum-cluster\",\"clusters\":\"\",\"cacheMillis\":10000,"        \
  "\"hosts\":[{\"service\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ip\":\"10.213.0.2\","            \
  "\"port\":7070,\"clusterName\":\"DEFAULT\",\"weight\":1.0,\"healthy\":true,"                     \
  "\"instanceId\":\"10.213.0.2#7070\",\"metadata\":{\"node_id\":\"n1\",\"api_port\":\"8080\","     \
  "\"incarnation\":\"7\"},\"marked\":true,\"enabled\":true,"                                       \
  "\"serviceName\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ephemeral\":true},"                      \
  "{\"service\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ip\":\"10.213.0.99\",\"port\":7070,"        \
  "\"clusterName\":\"DEFAULT\",\"weight\":1.0,\"healthy\":false,"                                  \
  "\"instanceId\":\"10.213.0.99#7070\",\"metadata\":{},\"marked\":true,\"enabled\":true,"          \
  "\"serviceName\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ephemeral\":true}],"                     \
  "\"lastRefTime\":1796402988724,\"checksum\":\"1796402988724\",\"useSpecifiedURL\":false,"        \
  "\"env\":\"\",\"protectThreshold\":null,\"reachLocalSiteCallThreshold\":null,"                   \
  "\"dom\":\"memquorum-cluster\",\"metadata\":null}"

static int list(const char *js, struct mq_nacos_instance *out, size_t cap, size_t *n,
                size_t *skipped, struct mq_status *st) {
  mq_status_clear(st);
  return mq_nacos_parse_list(js, strlen(js), out, cap, n, skipped, st);
}

static void test_list_v1(void) {
  struct mq_nacos_instance in[4];
  struct mq_status st;
  size_t n, skipped;
  CHECK_EQ(list(LIST_V1, in, 4, &n, &skipped, &st), 0);
  CHECK_EQ(n, 2);
  CHECK_EQ(skipped, 0);
  CHECK_STREQ(in[0].ip, "10.213.0.2");
  CHECK_EQ(in[0].port, 7070);
  CHECK(in[0].healthy && in[0].enabled);
  CHECK_STREQ(in[0].node_id, "n1");
  CHECK_UEQ(in[0].incarnation, 7);
  CHECK_STREQ(in[1].ip, "10.213.0.99");
  CHECK(!in[1].healthy);
  CHECK_STREQ(in[1].node_id, "");
  CHECK_UEQ(in[1].incarnation, 0);

  /* cap: the first ones only */
  CHECK_EQ(list(LIST_V1, in, 1, &n, &skipped, &st), 0);
  CHECK_EQ(n, 1);

  /* nobody registered */
  CHECK_EQ(
      list("{\"name\":\"DEFAULT_GROUP@@x\",\"hosts\":[],\"dom\":\"x\"}", in, 4, &n, &skipped, &st),
      0);
  CHECK_EQ(n, 0);
}

static void test_list_v3_and_odd_hosts(void) {
  struct mq_nacos_instance in[8];
  struct mq_status st;
  size_t n, skipped;
  CHECK_EQ(list("{\"code\":0,\"message\":\"success\",\"data\":[{\"ip\":\"::1\",\"port\":7071,"
                "\"metadata\":{\"node_id\":\"a-1\",\"incarnation\":18446744073709551615}}]}",
                in, 8, &n, &skipped, &st),
           0);
  CHECK_EQ(n, 1);
  CHECK_STREQ(in[0].ip, "::1");
  CHECK(in[0].healthy && in[0].enabled); /* absent: true */
  CHECK_UEQ(in[0].incarnation, UINT64_MAX);
  CHECK_EQ(list("{\"data\":{\"hosts\":[{\"ip\":\"h\",\"port\":1}]}}", in, 8, &n, &skipped, &st), 0);
  CHECK_EQ(n, 1);

  /* Unusable hosts are skipped, the others kept: no ip, port 0, port too
   * large, port as text, an escaped ip, a space in the ip, not an object;
   * a bad node id or incarnation only loses that field. */
  CHECK_EQ(list("{\"hosts\":[{\"port\":1},{\"ip\":\"a\",\"port\":0},{\"ip\":\"a\",\"port\":65536},"
                "{\"ip\":\"a\",\"port\":\"x\"},{\"ip\":\"a\\u0041\",\"port\":1},"
                "{\"ip\":\"a b\",\"port\":1},7,"
                "{\"ip\":\"ok\",\"port\":2,\"metadata\":{\"node_id\":\"bad id\","
                "\"incarnation\":\"-1\"}}]}",
                in, 8, &n, &skipped, &st),
           0);
  CHECK_EQ(n, 1);
  CHECK_EQ(skipped, 7);
  CHECK_STREQ(in[0].ip, "ok");
  CHECK_STREQ(in[0].node_id, "");
  CHECK_UEQ(in[0].incarnation, 0);
}

static void test_list_garbage(void) {
  struct mq_nacos_instance in[2];
  struct mq_status st;
  size_t n, skipped;
  const char *bad[] = {
      "",
      "ok",
      "<html>502 Bad Gateway</html>",
      "[1,2]",
      "{\"hosts\":",
      "{\"hosts\":{}}",
      "{\"hosts\":[{\"ip\":\"a\",\"port\":1}]",
      "{\"name\":\"x\"}",
      "{\"hosts\" \"x\"}",
      "{\"code\":0,\"data\":7}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ(list(bad[i], in, 2, &n, &skipped, &st), MQ_EINVAL);
    CHECK(st.msg[0] != '\0');
    CHECK_EQ(n, 0);
  }
  CHECK_EQ(list("{\"hosts\":[", in, 2, &n, &skipped, &st), MQ_EINVAL);
  CHECK_CONTAINS(st.msg, "truncated");

  /* larger than the limit: refused before parsing */
  size_t big = MQ_NACOS_MAX_BODY + 1;
  char *js = malloc(big);
  CHECK(js != NULL);
  memset(js, ' ', big);
  js[0] = '{';
  js[big - 1] = '}';
  mq_status_clear(&st);
  CHECK_EQ(mq_nacos_parse_list(js, big, in, 2, &n, &skipped, &st), MQ_EINVAL);
  CHECK_CONTAINS(st.msg, "larger");
  /* many tokens within the size limit: refused, not allocated */
  size_t k = 0;
  js[k++] = '{';
  const char *head = "\"hosts\":[";
  memcpy(js + k, head, strlen(head));
  k += strlen(head);
  while (k + 4 < MQ_NACOS_MAX_BODY) {
    js[k++] = '1';
    js[k++] = ',';
  }
  js[k++] = '1';
  js[k++] = ']';
  js[k++] = '}';
  CHECK_EQ(mq_nacos_parse_list(js, k, in, 2, &n, &skipped, &st), MQ_EINVAL);
  CHECK_CONTAINS(st.msg, "tokens");
  free(js);
}

static void test_beat(void) {
  struct mq_status st;
  int code = -1;
  int64_t ms = 1;
  const char *js = "{\"lightBeatEnabled\":true,\"clientBeatInterval\":5000,\"code\":10200}";
  CHECK_EQ(mq_nacos_parse_beat(js, strlen(js), &code, &ms, &st), 0);
  CHECK_EQ(code, 10200);
  CHECK_EQ(ms, 5000);
  js = "{\"code\":20404}";
  ms = 4000;
  CHECK_EQ(mq_nacos_parse_beat(js, strlen(js), &code, &ms, &st), 0);
  CHECK_EQ(code, 20404);
  CHECK_EQ(ms, 4000); /* absent: unchanged */
  js = "{\"code\":10200,\"clientBeatInterval\":1}";
  CHECK_EQ(mq_nacos_parse_beat(js, strlen(js), &code, &ms, &st), 0);
  CHECK_EQ(ms, 4000); /* out of range: unchanged */
  js = "{\"code\":0,\"data\":{\"clientBeatInterval\":3000}}";
  CHECK_EQ(mq_nacos_parse_beat(js, strlen(js), &code, &ms, &st), 0);
  CHECK_EQ(ms, 3000);
  CHECK_EQ(mq_nacos_parse_beat("ok", 2, &code, &ms, &st), MQ_EINVAL);
}

static void test_login(void) {
  struct mq_status st;
  char token[128];
  int64_t ttl = 0;
  const char *js = "{\"accessToken\":\"475df2c74d404ab5b33b55b70714098e32eff5841e3945de8c9ee425f3a"
                   "4e83c\",\"tokenTtl\":3600,\"globalAdmin\":false,\"username\":\"admin\"}";
  CHECK_EQ(mq_nacos_parse_login(js, strlen(js), token, sizeof token, &ttl, &st), 0);
  CHECK_STREQ(token, "475df2c74d404ab5b33b55b70714098e32eff5841e3945de8c9ee425f3a4e83c");
  CHECK_EQ(ttl, 3600);
  js = "{\"accessToken\":\"t\"}";
  CHECK_EQ(mq_nacos_parse_login(js, strlen(js), token, sizeof token, &ttl, &st), 0);
  CHECK_EQ(ttl, 18000);
  const char *bad[] = {"unknown user!", "{\"tokenTtl\":5}", "{\"accessToken\":\"\"}",
                       "{\"accessToken\":7}", "{\"accessToken\":\"a\\\"b\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mq_status_clear(&st);
    CHECK_EQ(mq_nacos_parse_login(bad[i], strlen(bad[i]), token, sizeof token, &ttl, &st),
             MQ_EINVAL);
    CHECK(st.msg[0] != '\0');
    CHECK_STREQ(token, "");
  }
  /* a token longer than the buffer */
  char small[4];
  js = "{\"accessToken\":\"abcdef\"}";
  CHECK_EQ(mq_nacos_parse_login(js, strlen(js), small, sizeof small, &ttl, &st), MQ_EINVAL);
}

static void test_listener(void) {
  const char *id = "memquorum.properties", *g = "DEFAULT_GROUP";
  const char *yes = "memquorum.properties%02DEFAULT_GROUP%01\n";
  CHECK(mq_nacos_listener_changed(yes, strlen(yes), id, g));
  CHECK(!mq_nacos_listener_changed("", 0, id, g));
  CHECK(!mq_nacos_listener_changed("\n", 1, id, g));
  const char *other = "other.properties%02DEFAULT_GROUP%01memquorum.properties%02G2%01\n";
  CHECK(!mq_nacos_listener_changed(other, strlen(other), id, g));
  const char *second = "a%02b%01memquorum.properties%02DEFAULT_GROUP%02tenant-1%01";
  CHECK(mq_nacos_listener_changed(second, strlen(second), id, g));
  const char *raw = "memquorum.properties\x02"
                    "DEFAULT_GROUP\x01";
  CHECK(mq_nacos_listener_changed(raw, strlen(raw), id, g));
  const char *prefix = "memquorum.prop%02DEFAULT_GROUP%01";
  CHECK(!mq_nacos_listener_changed(prefix, strlen(prefix), id, g));
  const char *cut = "memquorum.properties%0";
  CHECK(!mq_nacos_listener_changed(cut, strlen(cut), id, g));
}

/* Precedence: flag > env > Nacos config > file > default. */
static void test_config_precedence(void) {
  struct mq_config base, next;
  struct mq_status st;
  char *argv[] = {"memquorum", "--nacos", "127.0.0.1:8848", "--heartbeat-ms", "50", NULL};
  char *env[] = {"MEMQUORUM_RAFT_ELECTION_TIMEOUT_MS=2s", NULL};
  CHECK_EQ(mq_config_load(&base, 5, argv, env, &st), 0);
  next = base;
  const char *text = "memquorum.raft.heartbeat-ms=70\n"
                     "memquorum.raft.election-timeout-ms=3s\n"
                     "memquorum.raft.leader-follow-window=3s\n"
                     "memquorum.log.level=debug\n"
                     "memquorum.shards.total=32\n"
                     "spring.application.name=ignored\n";
  CHECK_EQ(mq_config_apply_props_text(&next, text, strlen(text), "Nacos memquorum.properties", &st),
           0);
  CHECK_EQ(next.heartbeat_ms, 50);          /* the flag wins */
  CHECK_EQ(next.election_timeout_ms, 2000); /* the environment wins */
  CHECK_EQ(next.leader_follow_ms, 3000);
  CHECK_EQ(next.shards_total, 32);
  CHECK_EQ(mq_config_origin_of(&next, "shards"), MQ_ORIGIN_NACOS);
  CHECK_EQ(mq_config_origin_of(&next, "heartbeat-ms"), MQ_ORIGIN_FLAG);

  int rows[MQ_CONFIG_MAX_SETTINGS];
  size_t n = mq_config_diff(&base, &next, rows, MQ_CONFIG_MAX_SETTINGS);
  CHECK_EQ(n, 3);
  size_t n_rows;
  const struct mq_config_setting *t = mq_config_settings(&n_rows);
  int live = 0;
  for (size_t i = 0; i < n; i++)
    live += (t[rows[i]].flags & MQ_CONFIG_LIVE) != 0;
  CHECK_EQ(live, 2); /* leader-follow window and log level; shards needs a restart */
  CHECK_EQ(mq_config_diff(&base, &base, rows, MQ_CONFIG_MAX_SETTINGS), 0);
}

static void test_config_errors(void) {
  struct mq_config base, next;
  struct mq_status st;
  char *argv[] = {"memquorum", "--nacos", "127.0.0.1:8848", NULL};
  CHECK_EQ(mq_config_load(&base, 3, argv, NULL, &st), 0);
  const char *bad[][2] = {
      {"memquorum.raft.leader-follow-window=soon\n", "memquorum.raft.leader-follow-window"},
      {"memquorum.shards.totl=8\n", "memquorum.shards.totl"},
      {"memquorum.raft.heartbeat-ms=2s\n", "election"},
      {"memquorum.log.level=loud\n", "memquorum.log.level"},
      {"a=\\u12G4\n", "line 1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    next = base;
    mq_status_clear(&st);
    CHECK_EQ(mq_config_apply_props_text(&next, bad[i][0], strlen(bad[i][0]), "Nacos x", &st),
             MQ_EINVAL);
    CHECK_CONTAINS(st.msg, bad[i][1]);
    CHECK_CONTAINS(st.msg, "Nacos x");
  }
}

int main(void) {
  test_list_v1();
  test_list_v3_and_odd_hosts();
  test_list_garbage();
  test_beat();
  test_login();
  test_listener();
  test_config_precedence();
  test_config_errors();
  printf("nacos: ok\n");
  return 0;
}
