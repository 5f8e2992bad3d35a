/* memquorum: flags, environment and properties file -> configuration ->
 * mq_agent_run(). Nothing else lives here. */
#include "agent.h"
#include "config/config.h"
#include "grpc/log.h"
#include "util/absl_quiet.h"
#include "util/alloc.h"
#include "util/log.h"

#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
  mq_absl_quiet();
  static struct mq_config cfg;
  struct mq_status st;
  mq_status_clear(&st);
  int rc = mq_config_load(&cfg, argc, argv, environ, &st);
  if (rc == 1)
    return 0; /* --help or --version */
  if (rc) {
    fprintf(stderr, "memquorum: %s\n", st.msg);
    fprintf(stderr, "memquorum: see memquorum --help\n");
    return 2;
  }
  mq_log_set_node(cfg.node_id);
  mq_log_set_level((enum mq_log_level)cfg.log_level);
  mq_log_set_format((enum mq_log_format)cfg.log_format);
  mq_grpc_log_route();
  mq_config_log(&cfg);
  if (mq_alloc_as_built())
    mq_info("main", "memory allocator: %s", mq_alloc_name());
  else
    mq_warn("main",
            "memory allocator: %s is linked but malloc() is not served by it "
            "(was another allocator preloaded?)",
            mq_alloc_name());
  return mq_agent_run(&cfg);
}
