/* One error space for the whole agent (STYLE.md rule 4).
 *
 * Functions return 0 on success or a negative MQ_E* code. Codes map onto the
 * gRPC status codes of DESIGN.md section 3 so that an error found deep in the
 * store reaches the client as the right status without translation tables in
 * between. mq_strerror() names a code; the message a person can act on
 * travels separately (see struct mq_status). */
#ifndef MQ_UTIL_ERR_H
#define MQ_UTIL_ERR_H

#include <stddef.h>

enum {
  MQ_OK = 0,
  MQ_EINVAL = -1,      /* INVALID_ARGUMENT: bad key, topic, partition, size */
  MQ_ENOTFOUND = -2,   /* NOT_FOUND */
  MQ_EPRECOND = -3,    /* FAILED_PRECONDITION */
  MQ_ERANGE = -4,      /* OUT_OF_RANGE */
  MQ_ENOSPACE = -5,    /* RESOURCE_EXHAUSTED: limits, memory budget */
  MQ_EUNAVAIL = -6,    /* UNAVAILABLE: no leader, no quorum, shutting down */
  MQ_ETIMEDOUT = -7,   /* DEADLINE_EXCEEDED */
  MQ_ENOMEM = -8,      /* allocation failed (RESOURCE_EXHAUSTED to clients) */
  MQ_EIO = -9,         /* a syscall failed (INTERNAL to clients) */
  MQ_ECORRUPT = -10,   /* malformed bytes: snapshot, log entry, wire data */
  MQ_EEXIST = -11,     /* already exists (ALREADY_EXISTS) */
  MQ_ECANCELED = -12,  /* CANCELLED */
  MQ_EINTERNAL = -13,  /* a bug; INTERNAL */
  MQ_ENOTLEADER = -14, /* this replica is not the leader (internal, retried) */
  MQ_ECOMPACTED = -15, /* requested revision or offset no longer retained */
  MQ_EOUTOFSEQ = -16,  /* an ingested record's previous offset is not the shard's
                          recorded one: one before it was lost (FAILED_PRECONDITION) */
};

/* Short stable name of an MQ_E* code ("invalid argument", ...). */
const char *mq_strerror(int code);

/* The gRPC status code (grpc_status_code numbering) for an MQ_E* code. */
int mq_err_to_grpc(int code);
/* The MQ_E* code nearest to a gRPC status code (0 for OK). ABORTED reads as
 * MQ_EUNAVAIL (retryable), a refused credential as MQ_EPRECOND, anything
 * unexpected as MQ_EINTERNAL. */
int mq_err_from_grpc(int grpc_code);

/* Maps a positive errno value to an MQ_E* code. */
int mq_err_from_errno(int errnum);

/* An error code with a message for people, carried from where the error is
 * found to where it is reported. The message is truncated if longer. */
#define MQ_STATUS_MSG_MAX 256
struct mq_status {
  int code;
  char msg[MQ_STATUS_MSG_MAX];
};

/* Sets st->code = code and formats the message; returns code so callers can
 * write `return mq_status_set(st, MQ_EINVAL, "key is empty");`.
 * st may be NULL, then only the code is returned. */
int mq_status_set(struct mq_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void mq_status_clear(struct mq_status *st) {
  st->code = 0;
  st->msg[0] = '\0';
}

#endif
