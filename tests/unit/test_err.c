/* Status codes: MQ_E* to gRPC and back (agent/util/err.c). Both directions
 * are written out by hand, so they are checked against each other. */
#include "check.h"
#include "util/err.h"

#include <grpc/status.h>

static void test_round_trip(void) {
  /* Every code an agent sends comes back as a code that sends the same
   * status: a relayed error keeps its status across a forward. */
  for (int c = MQ_ECOMPACTED; c <= MQ_OK; c++) {
    int g = mq_err_to_grpc(c);
    CHECK_EQ(mq_err_to_grpc(mq_err_from_grpc(g)), g);
  }
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_OK), MQ_OK);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_NOT_FOUND), MQ_ENOTFOUND);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_FAILED_PRECONDITION), MQ_EPRECOND);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_UNAVAILABLE), MQ_EUNAVAIL);
}

static void test_other_statuses(void) {
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_ABORTED), MQ_EUNAVAIL); /* retryable */
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_PERMISSION_DENIED), MQ_EPRECOND);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_UNAUTHENTICATED), MQ_EPRECOND);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_UNIMPLEMENTED), MQ_EINTERNAL);
  CHECK_EQ(mq_err_from_grpc(GRPC_STATUS_UNKNOWN), MQ_EINTERNAL);
  CHECK_EQ(mq_err_from_grpc(99), MQ_EINTERNAL);
}

int main(void) {
  test_round_trip();
  test_other_statuses();
  printf("test_err: ok\n");
  return 0;
}
