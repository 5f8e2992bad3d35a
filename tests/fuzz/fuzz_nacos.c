/* Fuzz target: what a Nacos server answers (discovery/nacos_json.c): the
 * instance list, the beat answer, the login answer and the config
 * listener's answer, each given the same bytes. Promises checked: 0,
 * MQ_EINVAL or MQ_ENOMEM, an error with a message; accepted instances have
 * a NUL-terminated host of address characters, a port 1-65535 and a node
 * id that is empty or valid; a token is NUL-terminated within its buffer
 * with a positive TTL; a beat interval stays within its bounds. */
#include "config/values.h"
#include "discovery/nacos_json.h"
#include "fuzz/fuzz.h"

#include <string.h>

#define CAP 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *js = (const char *)data;
  struct mq_nacos_instance in[CAP];
  struct mq_status st;
  size_t n = 99, skipped = 99;

  mq_status_clear(&st);
  int rc = mq_nacos_parse_list(js, size, in, CAP, &n, &skipped, &st);
  FUZZ_CHECK(rc == 0 || rc == MQ_EINVAL || rc == MQ_ENOMEM);
  if (rc) {
    FUZZ_CHECK(st.code == rc && st.msg[0] != '\0');
    FUZZ_CHECK(n == 0);
  }
  FUZZ_CHECK(n <= CAP);
  for (size_t i = 0; i < n; i++) {
    size_t len = strnlen(in[i].ip, sizeof in[i].ip);
    FUZZ_CHECK(len > 0 && len < sizeof in[i].ip);
    FUZZ_CHECK(
        strspn(in[i].ip, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_:%") ==
        len);
    FUZZ_CHECK(in[i].port >= 1 && in[i].port <= 65535);
    FUZZ_CHECK(strnlen(in[i].node_id, sizeof in[i].node_id) < sizeof in[i].node_id);
    FUZZ_CHECK(!in[i].node_id[0] || mq_config_valid_node_id(in[i].node_id));
  }

  int code = -1;
  int64_t interval = 5000;
  mq_status_clear(&st);
  rc = mq_nacos_parse_beat(js, size, &code, &interval, &st);
  FUZZ_CHECK(rc == 0 || rc == MQ_EINVAL || rc == MQ_ENOMEM);
  FUZZ_CHECK(rc == 0 || st.msg[0] != '\0');
  FUZZ_CHECK(interval >= 100 && interval <= 3600000);

  char token[64];
  int64_t ttl = 0;
  mq_status_clear(&st);
  rc = mq_nacos_parse_login(js, size, token, sizeof token, &ttl, &st);
  FUZZ_CHECK(rc == 0 || rc == MQ_EINVAL || rc == MQ_ENOMEM);
  if (rc == 0)
    FUZZ_CHECK(token[0] && strnlen(token, sizeof token) < sizeof token && ttl > 0);
  else
    FUZZ_CHECK(st.msg[0] != '\0' && token[0] == '\0');

  /* Any answer: a yes or a no, never a read past the end. */
  (void)mq_nacos_listener_changed(js, size, "memquorum.properties", "DEFAULT_GROUP");
  return 0;
}
