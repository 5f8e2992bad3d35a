/* Which malloc the agent runs on (util/alloc.h). */
#include "util/alloc.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef MQ_HAVE_MIMALLOC
#include <mimalloc.h>

const char *mq_alloc_name(void) {
  static char name[32];
  int v = mi_version(); /* e.g. 209 for 2.0.9 */
  snprintf(name, sizeof name, "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
  return name;
}

bool mq_alloc_as_built(void) {
  void *p = calloc(1, 16); /* zeroed: the check reads nothing uninitialized */
  bool ours = p && mi_is_in_heap_region(p);
  free(p);
  return ours;
}

void mq_alloc_trim(bool idle) {
  static long busy_delay = -1;
  if (busy_delay < 0)
    busy_delay = mi_option_get(mi_option_decommit_delay);
  mi_option_set(mi_option_decommit_delay, idle ? 0 : busy_delay);
  if (idle)
    mi_collect(true);
}
#else
const char *mq_alloc_name(void) { return "the C library's malloc"; }

bool mq_alloc_as_built(void) { return true; }

void mq_alloc_trim(bool idle) { (void)idle; }
#endif
