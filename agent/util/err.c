/* Error codes: names, gRPC mapping, errno mapping. */
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *mq_strerror(int code) {
  switch (code) {
  case MQ_OK:
    return "ok";
  case MQ_EINVAL:
    return "invalid argument";
  case MQ_ENOTFOUND:
    return "not found";
  case MQ_EPRECOND:
    return "failed precondition";
  case MQ_ERANGE:
    return "out of range";
  case MQ_ENOSPACE:
    return "resource exhausted";
  case MQ_EUNAVAIL:
    return "unavailable";
  case MQ_ETIMEDOUT:
    return "deadline exceeded";
  case MQ_ENOMEM:
    return "out of memory";
  case MQ_EIO:
    return "i/o error";
  case MQ_ECORRUPT:
    return "corrupt data";
  case MQ_EEXIST:
    return "already exists";
  case MQ_ECANCELED:
    return "cancelled";
  case MQ_EINTERNAL:
    return "internal error";
  case MQ_ENOTLEADER:
    return "not leader";
  case MQ_ECOMPACTED:
    return "compacted";
  case MQ_EOUTOFSEQ:
    return "out of sequence";
  }
  return "unknown error";
}

int mq_err_to_grpc(int code) {
  /* Numbering of grpc_status_code (grpc/impl/codegen/status.h). */
  switch (code) {
  case MQ_OK:
    return 0;
  case MQ_ECANCELED:
    return 1;
  case MQ_EINVAL:
    return 3;
  case MQ_ETIMEDOUT:
    return 4;
  case MQ_ENOTFOUND:
    return 5;
  case MQ_EEXIST:
    return 6;
  case MQ_ENOSPACE:
    return 8;
  case MQ_ENOMEM:
    return 8;
  case MQ_EPRECOND:
  case MQ_EOUTOFSEQ:
    return 9;
  case MQ_ERANGE:
    return 11;
  case MQ_ECOMPACTED:
    return 11;
  case MQ_EUNAVAIL:
    return 14;
  case MQ_ENOTLEADER:
    return 14;
  case MQ_ECORRUPT:
    return 13;
  case MQ_EIO:
    return 13;
  case MQ_EINTERNAL:
    return 13;
  }
  return 2; /* UNKNOWN */
}

int mq_err_from_grpc(int grpc_code) {
  switch (grpc_code) {
  case 0:
    return MQ_OK;
  case 1:
    return MQ_ECANCELED; /* CANCELLED */
  case 3:
    return MQ_EINVAL; /* INVALID_ARGUMENT */
  case 4:
    return MQ_ETIMEDOUT; /* DEADLINE_EXCEEDED */
  case 5:
    return MQ_ENOTFOUND; /* NOT_FOUND */
  case 6:
    return MQ_EEXIST; /* ALREADY_EXISTS */
  case 7:
    return MQ_EPRECOND; /* PERMISSION_DENIED */
  case 8:
    return MQ_ENOSPACE; /* RESOURCE_EXHAUSTED */
  case 9:
    return MQ_EPRECOND; /* FAILED_PRECONDITION */
  case 10:
    return MQ_EUNAVAIL; /* ABORTED: retryable, like a lost leader */
  case 11:
    return MQ_ERANGE; /* OUT_OF_RANGE */
  case 14:
    return MQ_EUNAVAIL; /* UNAVAILABLE */
  case 15:
    return MQ_ECORRUPT; /* DATA_LOSS */
  case 16:
    return MQ_EPRECOND; /* UNAUTHENTICATED */
  }
  return MQ_EINTERNAL; /* UNKNOWN, UNIMPLEMENTED, INTERNAL */
}

int mq_err_from_errno(int errnum) {
  switch (errnum) {
  case 0:
    return MQ_OK;
  case EINVAL:
    return MQ_EINVAL;
  case ENOENT:
    return MQ_ENOTFOUND;
  case ENOMEM:
    return MQ_ENOMEM;
  case ENOSPC:
    return MQ_ENOSPACE;
  case ETIMEDOUT:
    return MQ_ETIMEDOUT;
  case EEXIST:
    return MQ_EEXIST;
  case ECANCELED:
    return MQ_ECANCELED;
  case ERANGE:
    return MQ_ERANGE;
  }
  return MQ_EIO;
}

int mq_status_set(struct mq_status *st, int code, const char *fmt, ...) {
  if (st) {
    va_list ap;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
