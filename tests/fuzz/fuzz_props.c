/* Fuzz target: the .properties reader (config/props.c) that reads
 * --config files and the Nacos config. Promises checked: 0, MQ_EINVAL or
 * MQ_ENOMEM; an error has a message naming the input; entries have
 * NUL-terminated keys and values without NUL inside, and sensible lines. */
#include "config/props.h"
#include "fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct mq_props p = {0};
  struct mq_status st;
  mq_status_clear(&st);
  int rc = mq_props_parse(&p, (const char *)data, size, "fuzz.properties", &st);
  FUZZ_CHECK(rc == 0 || rc == MQ_EINVAL || rc == MQ_ENOMEM);
  if (rc == MQ_EINVAL)
    FUZZ_CHECK(strncmp(st.msg, "fuzz.properties", 15) == 0);
  for (size_t i = 0; i < p.n; i++) {
    FUZZ_CHECK(p.items[i].key && p.items[i].value && p.items[i].key[0] != '\0');
    FUZZ_CHECK(p.items[i].line >= 1 && (size_t)p.items[i].line <= size + 1);
    FUZZ_CHECK(mq_props_find(&p, p.items[i].key) != NULL);
  }
  mq_props_free(&p);
  FUZZ_CHECK(p.n == 0);
  return 0;
}
