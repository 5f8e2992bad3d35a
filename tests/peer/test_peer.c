/* The peer transport (agent/peer/peer.h) end to end: several transports in
 * one process on 127.0.0.1, port 0, talking over real gRPC. Covers frame
 * order and identity, both directions, sending from inside on_frame, calls
 * and their error codes, dead addresses, deadlines, refused handshakes, a
 * restarted peer under a new incarnation, the queue bound, shutdown with
 * calls in flight, and garbage sent to both methods by a raw gRPC client.
 * Every wait polls a condition with a deadline. */
#include "peer/peer.h"
#include "unit/check.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAMES 20000
#define WAIT_MS 5000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls cond(arg) every 2 ms for up to ms. */
static bool wait_until(bool (*cond)(void *), void *arg, int ms) {
  int64_t end = now_ms() + ms;
  while (!cond(arg)) {
    if (now_ms() > end)
      return false;
    sleep_ms(2);
  }
  return true;
}

#define AWAIT(cond, arg, what)                                                                     \
  do {                                                                                             \
    if (!wait_until(cond, arg, WAIT_MS))                                                           \
      CHECK_FAIL("timed out after %d ms waiting for %s", WAIT_MS, what);                           \
  } while (0)

/* ------------------------------------------------------------------------ */
/* A test agent: one transport and what its callbacks saw */

struct rec_frame {
  char from[128];
  uint64_t incarnation;
  uint32_t seq;
  size_t len;
};

struct agent {
  struct mq_peer_net *net;
  struct mq_peer_hello hello;
  pthread_mutex_t mu;
  struct rec_frame *frames;
  int n_frames;
  int ups;
  struct mq_peer_hello last_up;
  int downs;
  struct mq_peer_call_ctx *held[16]; /* calls the "hold" handler keeps */
  int n_held;
};

static uint32_t get_seq(const uint8_t *d, size_t len) {
  uint32_t v = 0;
  if (len >= 4)
    memcpy(&v, d, 4);
  return v;
}

static void on_frame(void *arg, const struct mq_peer_hello *from, const uint8_t *data, size_t len) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  if (a->n_frames < MAX_FRAMES) {
    struct rec_frame *f = &a->frames[a->n_frames++];
    snprintf(f->from, sizeof f->from, "%s", from->node_id);
    f->incarnation = from->incarnation;
    f->seq = get_seq(data, len);
    f->len = len;
  }
  pthread_mutex_unlock(&a->mu);
  /* "ping" frames are answered from inside the callback. */
  if (len == 8 && memcmp(data + 4, "ping", 4) == 0) {
    uint8_t pong[8];
    memcpy(pong, data, 4);
    memcpy(pong + 4, "pong", 4);
    CHECK_EQ(mq_peer_send(a->net, from->node_id, from->peer_address, pong, sizeof pong), 0);
  }
}

static void on_peer_up(void *arg, const struct mq_peer_hello *peer) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  a->ups++;
  a->last_up = *peer;
  pthread_mutex_unlock(&a->mu);
}

static void on_peer_down(void *arg, const char *node_id) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  a->downs++;
  pthread_mutex_unlock(&a->mu);
}

/* Call bodies: "echo:..." answers "re:...", "notfound" answers
 * MQ_ENOTFOUND, "hold" keeps the call unanswered. */
static void on_call(void *arg, struct mq_peer_call_ctx *ctx, const struct mq_peer_hello *from,
                    const uint8_t *body, size_t len) {
  struct agent *a = arg;
  struct mq_status st;
  if (len >= 5 && memcmp(body, "echo:", 5) == 0) {
    char out[256];
    int n = snprintf(out, sizeof out, "re:%.*s from %s", (int)(len - 5), body + 5, from->node_id);
    mq_peer_reply(ctx, 0, NULL, (const uint8_t *)out, (size_t)n);
  } else if (len == 8 && memcmp(body, "notfound", 8) == 0) {
    mq_status_set(&st, MQ_ENOTFOUND, "no such key: k1");
    mq_peer_reply(ctx, MQ_ENOTFOUND, &st, NULL, 0);
  } else if (len == 9 && memcmp(body, "notleader", 9) == 0) {
    mq_status_set(&st, MQ_ENOTLEADER, "leader is node-9");
    mq_peer_reply(ctx, MQ_ENOTLEADER, &st, NULL, 0);
  } else if (len > 1000000) {
    char out[32];
    int n = snprintf(out, sizeof out, "%zu", len);
    mq_peer_reply(ctx, 0, NULL, (const uint8_t *)out, (size_t)n);
  } else if (len == 4 && memcmp(body, "hold", 4) == 0) {
    pthread_mutex_lock(&a->mu);
    CHECK_LT(a->n_held, 16);
    a->held[a->n_held++] = ctx;
    pthread_mutex_unlock(&a->mu);
  } else {
    mq_status_set(&st, MQ_EINVAL, "unknown test call");
    mq_peer_reply(ctx, MQ_EINVAL, &st, NULL, 0);
  }
}

static void agent_start(struct agent *a, const char *id, uint64_t inc, int shards, int port) {
  struct mq_config cfg;
  struct mq_peer_callbacks cb = {on_frame, on_peer_up, on_peer_down, on_call, a};
  struct mq_status st;

  memset(&cfg, 0, sizeof cfg);
  cfg.peer_port = port;
  cfg.grpc_threads = 2;
  snprintf(cfg.advertise_addr, sizeof cfg.advertise_addr, "127.0.0.1");
  if (!a->frames) {
    pthread_mutex_init(&a->mu, NULL);
    a->frames = calloc(MAX_FRAMES, sizeof *a->frames);
    CHECK(a->frames != NULL);
  }
  pthread_mutex_lock(&a->mu);
  a->n_frames = a->ups = a->downs = a->n_held = 0;
  pthread_mutex_unlock(&a->mu);
  memset(&a->hello, 0, sizeof a->hello);
  snprintf(a->hello.node_id, sizeof a->hello.node_id, "%s", id);
  a->hello.incarnation = inc;
  a->hello.shards_total = shards;
  a->hello.protocol_version = MQ_PEER_PROTOCOL_VERSION;
  snprintf(a->hello.peer_address, sizeof a->hello.peer_address, "127.0.0.1:0");
  a->hello.seed_hash = 0x5eed;
  a->hello.features = inc << 40 | inc; /* any bits: the handshake carries all 64 */
  mq_status_clear(&st);
  int rc = mq_peer_start(&a->net, &cfg, &a->hello, &cb, NULL, &st);
  if (rc)
    CHECK_FAIL("mq_peer_start(%s): %s", id, st.msg);
  CHECK_GT(mq_peer_port(a->net), 0);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", mq_peer_port(a->net));
  CHECK_STREQ(mq_peer_self(a->net)->peer_address, want);
}

static void agent_stop(struct agent *a) {
  mq_peer_free(a->net);
  a->net = NULL;
}

static const char *addr_of(struct agent *a) { return mq_peer_self(a->net)->peer_address; }

static int frames_of(struct agent *a) {
  pthread_mutex_lock(&a->mu);
  int n = a->n_frames;
  pthread_mutex_unlock(&a->mu);
  return n;
}

static void send_seq(struct agent *from, struct agent *to, const char *to_addr, uint32_t seq) {
  uint8_t buf[8];
  memcpy(buf, &seq, 4);
  memcpy(buf + 4, "data", 4);
  CHECK_EQ(mq_peer_send(from->net, to->hello.node_id, to_addr, buf, sizeof buf), 0);
}

/* ------------------------------------------------------------------------ */
/* Outgoing calls */

struct call_result {
  pthread_mutex_t mu;
  bool done;
  int calls;
  int rc;
  char msg[MQ_STATUS_MSG_MAX];
  char body[256];
  int64_t at_ms;
};

static void call_done(void *arg, int rc, const struct mq_status *st, const uint8_t *reply,
                      size_t len) {
  struct call_result *r = arg;
  pthread_mutex_lock(&r->mu);
  r->calls++;
  r->done = true;
  r->rc = rc;
  snprintf(r->msg, sizeof r->msg, "%s", st ? st->msg : "");
  snprintf(r->body, sizeof r->body, "%.*s", (int)(len > 255 ? 255 : len), (const char *)reply);
  r->at_ms = now_ms();
  pthread_mutex_unlock(&r->mu);
}

static bool call_finished(void *arg) {
  struct call_result *r = arg;
  pthread_mutex_lock(&r->mu);
  bool d = r->done;
  pthread_mutex_unlock(&r->mu);
  return d;
}

static void do_call(struct agent *from, const char *addr, const char *body, int64_t deadline,
                    struct call_result *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  CHECK_EQ(
      mq_peer_call(from->net, addr, (const uint8_t *)body, strlen(body), deadline, call_done, r),
      0);
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

/* ------------------------------------------------------------------------ */
/* Conditions */

struct want_frames {
  struct agent *a;
  int n;
};
static bool has_frames(void *arg) {
  struct want_frames *w = arg;
  return frames_of(w->a) >= w->n;
}
static bool has_up(void *arg) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  bool r = a->ups > 0;
  pthread_mutex_unlock(&a->mu);
  return r;
}
static bool has_down(void *arg) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  bool r = a->downs > 0;
  pthread_mutex_unlock(&a->mu);
  return r;
}
static bool has_held(void *arg) {
  struct agent *a = arg;
  pthread_mutex_lock(&a->mu);
  bool r = a->n_held > 0;
  pthread_mutex_unlock(&a->mu);
  return r;
}
static bool has_refusal(void *arg) {
  struct mq_peer_stats s;
  mq_peer_stats(((struct agent *)arg)->net, &s);
  return s.handshakes_refused > 0;
}

struct want_inc {
  struct agent *a;
  uint64_t inc;
};
static bool up_with_inc(void *arg) {
  struct want_inc *w = arg;
  pthread_mutex_lock(&w->a->mu);
  bool r = w->a->ups > 0 && w->a->last_up.incarnation == w->inc;
  pthread_mutex_unlock(&w->a->mu);
  return r;
}

/* ------------------------------------------------------------------------ */
/* Raw gRPC client for garbage */

/* Sends the given messages on method of addr, half-closes, and returns the
 * status code the server ended with. */
static int raw_call(const char *addr, const char *method, const char *const *msgs,
                    const size_t *lens, int n) {
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(addr, creds, NULL);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                               grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_metadata_array imd, tmd;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details;
  grpc_byte_buffer *recv = NULL;
  grpc_op ops[4];
  int tag = 0;

  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[2].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[2].data.recv_status_on_client.status = &status;
  ops[2].data.recv_status_on_client.status_details = &details;
  CHECK_EQ(grpc_call_start_batch(call, ops, 3, &tag, NULL), GRPC_CALL_OK);

  for (int i = 0; i < n; i++) {
    grpc_slice s = grpc_slice_from_copied_buffer(msgs[i], lens[i]);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    int t2 = 0;
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_MESSAGE;
    ops[0].data.send_message.send_message = bb;
    CHECK_EQ(grpc_call_start_batch(call, ops, 1, &t2, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(cq, &t2, deadline, NULL);
    CHECK_EQ(ev.type, GRPC_OP_COMPLETE);
    grpc_byte_buffer_destroy(bb);
    if (!ev.success)
      break; /* the server already ended the call */
  }
  int t3 = 0;
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &recv;
  CHECK_EQ(grpc_call_start_batch(call, ops, 2, &t3, NULL), GRPC_CALL_OK);
  CHECK_EQ(grpc_completion_queue_pluck(cq, &t3, deadline, NULL).type, GRPC_OP_COMPLETE);
  CHECK_EQ(grpc_completion_queue_pluck(cq, &tag, deadline, NULL).type, GRPC_OP_COMPLETE);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_call_unref(call);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return (int)status;
}

/* ------------------------------------------------------------------------ */
/* Tests */

static struct agent A, B, C, D;

static uint64_t queued(struct agent *a) {
  struct mq_peer_stats s;
  mq_peer_stats(a->net, &s);
  return s.frames_queued;
}

struct drained {
  struct agent *from, *to;
  uint64_t total;
};
/* Every frame sent so far was either received or dropped. */
static bool all_accounted(void *arg) {
  struct drained *d = arg;
  struct mq_peer_stats sf, st;
  mq_peer_stats(d->from->net, &sf);
  mq_peer_stats(d->to->net, &st);
  return st.frames_received + sf.frames_dropped == d->total;
}

static void test_frames_in_order(void) {
  /* A burst while the pipe is still dialing overflows the queue: the
   * oldest frames go, the rest arrive in order. */
  for (uint32_t i = 0; i < 300; i++)
    send_seq(&A, &B, addr_of(&B), i);
  struct drained d = {&A, &B, 300};
  AWAIT(all_accounted, &d, "the burst received or dropped");
  struct mq_peer_stats s;
  mq_peer_stats(A.net, &s);
  CHECK_GE(s.frames_dropped, 300 - 256);
  int burst = frames_of(&B);
  pthread_mutex_lock(&B.mu);
  CHECK_GT(burst, 0);
  for (int i = 1; i < burst; i++)
    CHECK_LT(B.frames[i - 1].seq, B.frames[i].seq);
  CHECK_UEQ(B.frames[burst - 1].seq, 299);
  pthread_mutex_unlock(&B.mu);

  /* Paced below the bound, nothing is lost. */
  for (uint32_t i = 0; i < 500; i++) {
    while (queued(&A) >= 128)
      sleep_ms(1);
    send_seq(&A, &B, addr_of(&B), 1000 + i);
  }
  struct want_frames w = {&B, burst + 500};
  if (!wait_until(has_frames, &w, WAIT_MS)) {
    struct mq_peer_stats sa, sb;
    mq_peer_stats(A.net, &sa);
    mq_peer_stats(B.net, &sb);
    CHECK_FAIL("B got %d of %d frames (A sent %llu, queued %llu, dropped %llu; B received %llu)",
               frames_of(&B), burst + 500, (unsigned long long)sa.frames_sent,
               (unsigned long long)sa.frames_queued, (unsigned long long)sa.frames_dropped,
               (unsigned long long)sb.frames_received);
  }
  pthread_mutex_lock(&B.mu);
  for (int i = 0; i < 500; i++) {
    CHECK_STREQ(B.frames[burst + i].from, "A");
    CHECK_UEQ(B.frames[burst + i].incarnation, 11);
    CHECK_UEQ(B.frames[burst + i].seq, 1000u + (uint32_t)i);
  }
  CHECK_EQ(B.n_frames, burst + 500);
  pthread_mutex_unlock(&B.mu);
  AWAIT(has_up, &A, "A's on_peer_up for B");
  pthread_mutex_lock(&A.mu);
  CHECK_STREQ(A.last_up.node_id, "B");
  CHECK_UEQ(A.last_up.incarnation, 22);
  CHECK_UEQ(A.last_up.features, (uint64_t)22 << 40 | 22);
  CHECK_STREQ(A.last_up.peer_address, addr_of(&B));
  pthread_mutex_unlock(&A.mu);
  AWAIT(has_up, &B, "B's on_peer_up for A (inbound)");
  pthread_mutex_lock(&B.mu);
  CHECK_STREQ(B.last_up.node_id, "A");
  CHECK_UEQ(B.last_up.incarnation, 11);
  CHECK_UEQ(B.last_up.features, (uint64_t)11 << 40 | 11);
  pthread_mutex_unlock(&B.mu);
  uint64_t dropped = s.frames_dropped;
  mq_peer_stats(A.net, &s);
  CHECK_UEQ(s.frames_sent, (uint64_t)burst + 500);
  CHECK_UEQ(s.frames_dropped, dropped);
  mq_peer_stats(B.net, &s);
  CHECK_UEQ(s.frames_received, (uint64_t)burst + 500);
  CHECK_UEQ(s.bytes_received, ((uint64_t)burst + 500) * 8);
  printf("ok frames A->B in order\n");
}

static void test_both_directions(void) {
  int a0 = frames_of(&A), b0 = frames_of(&B);
  for (uint32_t i = 0; i < 20; i++)
    send_seq(&B, &A, addr_of(&A), 1000 + i);
  struct want_frames wa = {&A, a0 + 20};
  AWAIT(has_frames, &wa, "20 frames from B at A");
  pthread_mutex_lock(&A.mu);
  for (int i = 0; i < 20; i++) {
    CHECK_STREQ(A.frames[a0 + i].from, "B");
    CHECK_UEQ(A.frames[a0 + i].seq, 1000u + (uint32_t)i);
  }
  pthread_mutex_unlock(&A.mu);
  /* A ping to B is answered by B from inside on_frame. */
  uint8_t ping[8];
  uint32_t seq = 4242;
  memcpy(ping, &seq, 4);
  memcpy(ping + 4, "ping", 4);
  CHECK_EQ(mq_peer_send(A.net, "B", addr_of(&B), ping, sizeof ping), 0);
  struct want_frames wb = {&B, b0 + 1};
  AWAIT(has_frames, &wb, "the ping at B");
  wa.n = a0 + 21;
  AWAIT(has_frames, &wa, "the pong sent from B's on_frame");
  pthread_mutex_lock(&A.mu);
  CHECK_UEQ(A.frames[a0 + 20].seq, 4242);
  pthread_mutex_unlock(&A.mu);
  /* An empty frame is a frame too. */
  CHECK_EQ(mq_peer_send(A.net, "B", addr_of(&B), NULL, 0), 0);
  send_seq(&A, &B, addr_of(&B), 77);
  wb.n = b0 + 3;
  AWAIT(has_frames, &wb, "an empty frame and the next one at B");
  pthread_mutex_lock(&B.mu);
  CHECK_UEQ(B.frames[b0 + 1].seq, 0);
  CHECK_UEQ(B.frames[b0 + 2].seq, 77);
  pthread_mutex_unlock(&B.mu);
  printf("ok frames both directions, send from on_frame\n");
}

static void test_calls(void) {
  struct call_result r;
  do_call(&A, addr_of(&B), "echo:hi", 0, &r);
  AWAIT(call_finished, &r, "echo call");
  CHECK_EQ(r.rc, 0);
  CHECK_STREQ(r.body, "re:hi from A");

  do_call(&A, addr_of(&B), "notfound", 0, &r);
  AWAIT(call_finished, &r, "notfound call");
  CHECK_EQ(r.rc, MQ_ENOTFOUND);
  CHECK_CONTAINS(r.msg, "no such key: k1");

  /* Codes that share a gRPC status come back exactly. */
  do_call(&A, addr_of(&B), "notleader", 0, &r);
  AWAIT(call_finished, &r, "notleader call");
  CHECK_EQ(r.rc, MQ_ENOTLEADER);
  CHECK_CONTAINS(r.msg, "leader is node-9");
  CHECK_EQ(r.calls, 1);

  struct mq_peer_stats s;
  mq_peer_stats(B.net, &s);
  CHECK_UEQ(s.calls_received, 3);
  printf("ok calls: reply, error codes and messages\n");
}

/* Messages past gRPC's default 4 MiB limit: snapshot chunks ride here. */
static void test_large(void) {
  size_t big = 6u << 20;
  uint8_t *buf = calloc(1, big);
  CHECK(buf != NULL);
  uint32_t seq = 9999;
  memcpy(buf, &seq, 4);
  int b0 = frames_of(&B);
  CHECK_EQ(mq_peer_send(A.net, "B", addr_of(&B), buf, big), 0);
  struct want_frames w = {&B, b0 + 1};
  AWAIT(has_frames, &w, "a 6 MiB frame at B");
  pthread_mutex_lock(&B.mu);
  CHECK_UEQ(B.frames[b0].seq, 9999);
  CHECK_UEQ(B.frames[b0].len, big);
  pthread_mutex_unlock(&B.mu);

  struct call_result r;
  memset(&r, 0, sizeof r);
  pthread_mutex_init(&r.mu, NULL);
  CHECK_EQ(mq_peer_call(A.net, addr_of(&B), buf, big, 0, call_done, &r), 0);
  AWAIT(call_finished, &r, "a 6 MiB call");
  CHECK_EQ(r.rc, 0);
  char want[32];
  snprintf(want, sizeof want, "%zu", big);
  CHECK_STREQ(r.body, want);
  free(buf);
  printf("ok 6 MiB frame and call\n");
}

static void test_call_dead_address(void) {
  struct call_result r;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", dead_port());
  int64_t t0 = now_ms();
  do_call(&A, addr, "echo:x", t0 + 3000, &r);
  AWAIT(call_finished, &r, "call to a dead address");
  CHECK_EQ(r.rc, MQ_EUNAVAIL);
  CHECK_LE(r.at_ms - t0, 3000);
  printf("ok call to a dead address: unavailable after %lld ms\n", (long long)(r.at_ms - t0));
}

static void test_call_deadline(void) {
  struct call_result r;
  int64_t t0 = now_ms();
  do_call(&A, addr_of(&B), "hold", t0 + 300, &r);
  AWAIT(call_finished, &r, "call past its deadline");
  CHECK_EQ(r.rc, MQ_ETIMEDOUT);
  CHECK_GE(r.at_ms - t0, 250);
  AWAIT(has_held, &B, "the held call at B");
  printf("ok deadline -> timed out\n");
}

static void test_refused_handshake(void) {
  agent_start(&C, "C", 33, 32, 0);
  for (uint32_t i = 0; i < 5; i++)
    send_seq(&A, &C, addr_of(&C), i);
  AWAIT(has_refusal, &C, "C refusing A's handshake");
  AWAIT(has_refusal, &A, "A seeing the refusal");
  struct mq_peer_stats s;
  mq_peer_stats(A.net, &s);
  CHECK_EQ(s.frames_queued, 5); /* none went to C */
  CHECK_EQ(frames_of(&C), 0);
  pthread_mutex_lock(&A.mu);
  CHECK_STREQ(A.last_up.node_id, "B"); /* C never came up */
  pthread_mutex_unlock(&A.mu);
  agent_stop(&C);
  printf("ok refused handshake (shards_total 32 vs 16)\n");
}

static void test_restart(void) {
  int port = mq_peer_port(B.net);
  char addr[300];
  snprintf(addr, sizeof addr, "%s", addr_of(&B));
  /* B holds an unanswered call from the deadline test: reply after
   * shutdown only frees it. */
  mq_peer_shutdown(B.net);
  pthread_mutex_lock(&B.mu);
  for (int i = 0; i < B.n_held; i++)
    mq_peer_reply(B.held[i], 0, NULL, (const uint8_t *)"late", 4);
  B.n_held = 0;
  pthread_mutex_unlock(&B.mu);
  agent_stop(&B);
  AWAIT(has_down, &A, "A's on_peer_down for B");

  pthread_mutex_lock(&A.mu);
  A.ups = 0;
  pthread_mutex_unlock(&A.mu);
  agent_start(&B, "B", 23, 16, port);
  CHECK_STREQ(addr_of(&B), addr);
  for (uint32_t i = 0; i < 10; i++)
    send_seq(&A, &B, addr, 2000 + i);
  struct want_frames w = {&B, 10};
  AWAIT(has_frames, &w, "frames at the restarted B");
  struct want_inc wi = {&A, 23};
  AWAIT(up_with_inc, &wi, "A's on_peer_up with B's new incarnation");
  pthread_mutex_lock(&B.mu);
  for (int i = 0; i < 10; i++)
    CHECK_UEQ(B.frames[i].seq, 2000u + (uint32_t)i);
  pthread_mutex_unlock(&B.mu);
  printf("ok restarted peer: re-dialed, new incarnation\n");

  /* Restarted elsewhere (a new pod IP, here a new port): the next send
   * names the new address and the pipe moves there. */
  agent_stop(&B);
  agent_start(&B, "B", 24, 16, 0);
  CHECK_NE(mq_peer_port(B.net), port);
  for (uint32_t i = 0; i < 10; i++)
    send_seq(&A, &B, addr_of(&B), 3000 + i);
  AWAIT(has_frames, &w, "frames at B's new address");
  wi.inc = 24;
  AWAIT(up_with_inc, &wi, "A's on_peer_up at B's new address");
  pthread_mutex_lock(&B.mu);
  CHECK_UEQ(B.frames[0].seq, 3000);
  pthread_mutex_unlock(&B.mu);
  printf("ok peer at a new address: pipe moved\n");
}

static void test_queue_bound(void) {
  char addr[64];
  uint8_t buf[1024];
  struct mq_peer_stats s0, s;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", dead_port());
  memset(buf, 7, sizeof buf);
  mq_peer_stats(A.net, &s0);
  for (int i = 0; i < 10000; i++)
    CHECK_EQ(mq_peer_send(A.net, "nobody", addr, buf, sizeof buf), 0);
  mq_peer_stats(A.net, &s);
  CHECK_LE(s.frames_queued - s0.frames_queued, 256);
  CHECK_LE(s.bytes_queued - s0.bytes_queued, 256 * sizeof buf);
  CHECK_GE(s.frames_dropped - s0.frames_dropped, 10000 - 256);
  printf("ok queue bound: %llu dropped, %llu queued\n",
         (unsigned long long)(s.frames_dropped - s0.frames_dropped),
         (unsigned long long)(s.frames_queued - s0.frames_queued));
}

static void test_garbage(void) {
  const char *addr = addr_of(&B);
  const char bad[] = "\x0a\xff\xff\xff\xff\x0f garbage";
  const char *msgs[2] = {bad, ""};
  size_t lens[2] = {sizeof bad - 1, 0};
  CHECK_EQ(raw_call(addr, "/memquorum.peer.v1.Peer/Pipe", msgs, lens, 1),
           GRPC_STATUS_INVALID_ARGUMENT);
  CHECK_EQ(raw_call(addr, "/memquorum.peer.v1.Peer/Call", msgs, lens, 1),
           GRPC_STATUS_INVALID_ARGUMENT);
  /* An empty message parses, but is not a Hello. */
  CHECK_EQ(raw_call(addr, "/memquorum.peer.v1.Peer/Pipe", msgs + 1, lens + 1, 1),
           GRPC_STATUS_INVALID_ARGUMENT);
  /* A Hello that is fine, then garbage after the handshake. */
  char hello[256];
  size_t n = 0;
  const char *id = "G", *pa = "127.0.0.1:1";
  hello[n++] = 0x0a; /* PipeMessage.hello */
  size_t len_at = n++;
  hello[n++] = 0x0a;
  hello[n++] = (char)strlen(id);
  memcpy(hello + n, id, strlen(id));
  n += strlen(id);
  hello[n++] = 0x18;
  hello[n++] = 16; /* shards_total */
  hello[n++] = 0x20;
  hello[n++] = 1; /* protocol_version */
  hello[n++] = 0x2a;
  hello[n++] = (char)strlen(pa);
  memcpy(hello + n, pa, strlen(pa));
  n += strlen(pa);
  hello[n++] = 0x30;
  hello[n++] = (char)0xed;
  hello[n++] = (char)0xbd;
  hello[n++] = 0x01; /* seed 0x5eed */
  hello[len_at] = (char)(n - len_at - 1);
  const char *seq[2] = {hello, bad};
  size_t seql[2] = {n, sizeof bad - 1};
  CHECK_EQ(raw_call(addr, "/memquorum.peer.v1.Peer/Pipe", seq, seql, 2),
           GRPC_STATUS_INVALID_ARGUMENT);
  /* The same Hello alone is accepted and ends cleanly on half-close. */
  CHECK_EQ(raw_call(addr, "/memquorum.peer.v1.Peer/Pipe", seq, seql, 1), GRPC_STATUS_OK);

  struct call_result r;
  do_call(&A, addr, "echo:still here", 0, &r);
  AWAIT(call_finished, &r, "a call after the garbage");
  CHECK_EQ(r.rc, 0);
  printf("ok garbage on Pipe and Call\n");
}

static void test_shutdown_with_calls(void) {
  struct call_result r[3];
  agent_start(&D, "D", 44, 16, 0);
  for (int i = 0; i < 3; i++)
    do_call(&D, addr_of(&B), "hold", now_ms() + 20000, &r[i]);
  /* Wait until B holds them, so they are truly in flight. */
  int64_t end = now_ms() + WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&B.mu);
    int held = B.n_held;
    pthread_mutex_unlock(&B.mu);
    if (held >= 3)
      break;
    if (now_ms() > end)
      CHECK_FAIL("B holds %d of 3 calls", held);
    sleep_ms(2);
  }
  int64_t t0 = now_ms();
  mq_peer_shutdown(D.net);
  for (int i = 0; i < 3; i++) {
    CHECK(call_finished(&r[i]));
    CHECK_EQ(r[i].rc, MQ_ECANCELED);
    CHECK_EQ(r[i].calls, 1);
  }
  CHECK_LT(now_ms() - t0, 2000);
  struct call_result late;
  memset(&late, 0, sizeof late);
  CHECK_EQ(mq_peer_call(D.net, addr_of(&B), (const uint8_t *)"x", 1, 0, call_done, &late),
           MQ_EUNAVAIL);
  CHECK_EQ(mq_peer_send(D.net, "B", addr_of(&B), (const uint8_t *)"x", 1), MQ_EUNAVAIL);
  agent_stop(&D);
  printf("ok shutdown completes calls in flight with cancelled\n");
}

static void test_port_in_use(void) {
  struct mq_config cfg;
  struct mq_peer_callbacks cb = {on_frame, on_peer_up, on_peer_down, on_call, &C};
  struct mq_peer_net *net = (struct mq_peer_net *)&cfg; /* must be reset */
  struct mq_status st;
  memset(&cfg, 0, sizeof cfg);
  cfg.peer_port = mq_peer_port(A.net);
  cfg.grpc_threads = 1;
  mq_status_clear(&st);
  CHECK_EQ(mq_peer_start(&net, &cfg, &A.hello, &cb, NULL, &st), MQ_EIO);
  CHECK(net == NULL);
  CHECK_CONTAINS(st.msg, "cannot listen");
  printf("ok port in use: %s\n", st.msg);
}

/* Flushes A's deferred sends (a flush finding the pipe busy sends
 * nothing: the next one does), then checks for frames at w->a. */
static bool flush_a_until(void *arg) {
  mq_peer_flush(A.net);
  return has_frames(arg);
}

/* With sends deferred, frames wait in the queue until the owner flushes,
 * then arrive together and in order. */
static void test_deferred_sends(void) {
  int b0 = frames_of(&B);
  send_seq(&A, &B, addr_of(&B), 1); /* the pipe is up before deferring */
  struct want_frames wb = {&B, b0 + 1};
  AWAIT(has_frames, &wb, "a frame before deferring");
  mq_peer_defer_sends(A.net);
  for (uint32_t i = 0; i < 10; i++)
    send_seq(&A, &B, addr_of(&B), 500 + i);
  sleep_ms(200);
  CHECK_EQ(frames_of(&B), b0 + 1);
  wb.n = b0 + 11;
  AWAIT(flush_a_until, &wb, "the ten deferred frames after a flush");
  pthread_mutex_lock(&B.mu);
  for (int i = 0; i < 10; i++)
    CHECK_UEQ(B.frames[b0 + 1 + i].seq, 500u + (uint32_t)i);
  pthread_mutex_unlock(&B.mu);
  send_seq(&A, &B, addr_of(&B), 600);
  sleep_ms(200);
  CHECK_EQ(frames_of(&B), b0 + 11);
  wb.n = b0 + 12;
  AWAIT(flush_a_until, &wb, "a later frame after a flush");
  printf("ok deferred sends wait for a flush\n");
}

int main(void) {
  int64_t t0 = now_ms();
  agent_start(&A, "A", 11, 16, 0);
  agent_start(&B, "B", 22, 16, 0);
  test_frames_in_order();
  test_both_directions();
  test_calls();
  test_large();
  test_call_dead_address();
  test_call_deadline();
  test_refused_handshake();
  test_restart();
  test_queue_bound();
  test_garbage();
  test_shutdown_with_calls();
  test_port_in_use();
  test_deferred_sends();
  agent_stop(&A);
  /* B's held calls from the last test stay unanswered: free releases them. */
  agent_stop(&B);
  free(A.frames);
  free(B.frames);
  free(C.frames);
  free(D.frames);
  printf("all peer tests passed in %lld ms\n", (long long)(now_ms() - t0));
  return 0;
}
