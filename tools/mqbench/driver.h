/* A benchmark driver: one target protocol, seen by the runner as "make the
 * request for operation X on key number k" and "is this reply a proper
 * answer". The runner owns everything about calls, timing and threads;
 * a driver owns only the bytes. A second protocol (say etcd v3's KV
 * Put/Range) is another driver_*.c file with another struct
 * mq_bench_driver, chosen by name in main.c.
 *
 * A driver's state is created once per run, before the threads start, and
 * is read-only afterwards, so request() and check() run concurrently on
 * every thread without locks. */
#ifndef MQ_BENCH_DRIVER_H
#define MQ_BENCH_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

struct mq_bench_params {
  size_t value_size;  /* bytes per written value */
  const char *topic;  /* topic for log appends */
  const char *method; /* method path override, or NULL */
  uint64_t seed;      /* fills values deterministically */
  int serializable;   /* reads may be served by any replica, possibly stale */
  uint64_t ttl_ms;    /* memquorum put: PutRequest.ttl_ms; 0: none */
};

struct mq_bench_driver {
  const char *name;
  /* Space-separated list of the ops it knows, for help and errors. */
  const char *ops;
  /* Creates state for op. Returns 0, or a negative MQ_E* code with a
   * message in err. */
  int (*open)(void **state, const char *op, const struct mq_bench_params *p, char *err,
              size_t errlen);
  /* Full gRPC method path the op calls, e.g. "/memquorum.v1.KV/Put"; lives
   * as long as state. */
  const char *(*method)(void *state);
  /* The op whose writes make this op's reads succeed (a get needs a put of
   * each key first), or NULL when none is needed. */
  const char *(*preload_op)(void *state);
  /* A new request message for key number k; the caller owns and destroys
   * it. NULL only when memory runs out. */
  grpc_byte_buffer *(*request)(void *state, uint64_t k);
  /* 0 when reply (borrowed; may be NULL if the server sent none) is a proper
   * answer to an OK call, else MQ_ECORRUPT. */
  int (*check)(void *state, grpc_byte_buffer *reply);
  void (*close)(void *state);
};

/* MemQuorum's own API: put, get, produce, echo (driver_mq.c). */
/* The value every driver writes: value_size printable letters from an
 * xorshift stream seeded by p->seed, so runs with the same seed write the
 * same bytes to every system and values stay valid UTF-8. malloc()ed;
 * NULL when out of memory. */
uint8_t *mq_bench_value_new(const struct mq_bench_params *p);

extern const struct mq_bench_driver mq_bench_driver_memquorum;

/* etcd v3's KV.Put and KV.Range over the same keys and values (driver_etcd.c). */
extern const struct mq_bench_driver mq_bench_driver_etcd;

#endif
