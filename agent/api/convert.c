/* memquorum.v1 unary methods: request validation, protobuf -> struct mq_req,
 * and struct mq_req results -> reply messages (DESIGN.md section 3).
 *
 * Validation happens here, before the request reaches the core loop, and
 * names the field at fault: a request that passes it can still fail in the
 * node (no leader, a failed precondition), never crash it. The mq_req
 * borrows strings and bytes from the unpacked message, which the call
 * object keeps until the request is done. */
#include "api/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MQ_VERSION
#define MQ_VERSION "0.0.0"
#endif

/* ------------------------------------------------------------------------ */
/* Validators */

/* Inputs are validated once, by the node (cluster/exec.c), for every front
 * end alike; a method only checks what its conversion would lose: enum
 * values, and signed fields that become unsigned. */

static int check_consistency(int c, bool *serializable, struct mq_status *st) {
  if (c != MEMQUORUM__V1__CONSISTENCY__LINEARIZABLE &&
      c != MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE)
    return mq_status_set(st, MQ_EINVAL,
                         "consistency %d is unknown (0 LINEARIZABLE, 1 SERIALIZABLE)", c);
  *serializable = c == MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE;
  return 0;
}

static int check_nonneg(const char *field, int64_t v, struct mq_status *st) {
  if (v < 0)
    return mq_status_set(st, MQ_EINVAL, "%s must not be negative (got %" PRId64 ")", field, v);
  return 0;
}

static int precondition(const Memquorum__V1__Precondition *p, struct mq_precond *out,
                        struct mq_status *st) {
  memset(out, 0, sizeof *out);
  if (!p)
    return 0;
  switch (p->condition_case) {
  case MEMQUORUM__V1__PRECONDITION__CONDITION__NOT_SET:
    return 0;
  case MEMQUORUM__V1__PRECONDITION__CONDITION_ABSENT:
    if (p->absent)
      out->type = MQ_PRE_ABSENT;
    return 0;
  case MEMQUORUM__V1__PRECONDITION__CONDITION_VERSION:
    out->type = MQ_PRE_VERSION;
    out->num = p->version;
    return 0;
  case MEMQUORUM__V1__PRECONDITION__CONDITION_MOD_REVISION:
    out->type = MQ_PRE_MOD_REVISION;
    out->num = p->mod_revision;
    return 0;
  case MEMQUORUM__V1__PRECONDITION__CONDITION_VALUE:
    out->type = MQ_PRE_VALUE;
    out->value = p->value.data;
    out->value_len = p->value.len;
    return 0;
  default:
    return mq_status_set(st, MQ_EINVAL, "precondition has an unknown condition");
  }
}

/* ------------------------------------------------------------------------ */
/* Store types -> messages */

void api_kv_to_msg(struct api_strs *a, const struct mq_kv *kv, Memquorum__V1__KeyValue *m) {
  memquorum__v1__key_value__init(m);
  m->key = api_strs_dup(a, kv->key, kv->key_len);
  m->value.data = (uint8_t *)kv->value;
  m->value.len = kv->value_len;
  m->create_revision = kv->create_revision;
  m->mod_revision = kv->mod_revision;
  m->version = kv->version;
  m->expires_at_ms = kv->expires_at_ms;
  m->shard = kv->shard;
}

void api_entry_to_msg(struct api_strs *a, const struct mq_entry *e, Memquorum__V1__Entry *m) {
  memquorum__v1__entry__init(m);
  m->key = api_strs_dup(a, e->key, e->key_len);
  m->value.data = (uint8_t *)e->value;
  m->value.len = e->value_len;
  m->timestamp = e->timestamp;
  m->offset = e->offset;
  m->partition = e->partition;
}

/* Packs m unless a string copy failed; frees the copies. */
static grpc_byte_buffer *pack_free(struct api_strs *a, const ProtobufCMessage *m) {
  grpc_byte_buffer *bb = a->err ? NULL : mq_grpc_pack(m);
  api_strs_free(a);
  return bb;
}

/* ------------------------------------------------------------------------ */
/* KV */

static int put_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__PutRequest *m = (const void *)u->msg;
  struct mq_req *r = &u->req;
  int rc;
  mq_req_init(r, MQ_REQ_PUT);
  if ((rc = precondition(m->precondition, &r->pre, st)))
    return rc;
  r->key = m->key;
  r->key_len = strlen(m->key);
  r->value = m->value.data;
  r->value_len = m->value.len;
  r->ttl_ms = m->ttl_ms;
  r->return_previous = m->return_previous;
  return 0;
}

static grpc_byte_buffer *put_reply(struct api_unary *u) {
  Memquorum__V1__PutResponse resp = MEMQUORUM__V1__PUT_RESPONSE__INIT;
  Memquorum__V1__KeyValue prev;
  struct api_strs a;
  api_strs_init(&a);
  resp.revision = u->req.revision;
  resp.shard = u->req.shard;
  if (u->req.has_kv) {
    api_kv_to_msg(&a, &u->req.kv, &prev);
    resp.previous = &prev;
  }
  return pack_free(&a, &resp.base);
}

static int get_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__GetRequest *m = (const void *)u->msg;
  struct mq_req *r = &u->req;
  int rc;
  mq_req_init(r, MQ_REQ_GET);
  if ((rc = check_consistency(m->consistency, &r->serializable, st)))
    return rc;
  r->key = m->key;
  r->key_len = strlen(m->key);
  return 0;
}

static grpc_byte_buffer *get_reply(struct api_unary *u) {
  Memquorum__V1__GetResponse resp = MEMQUORUM__V1__GET_RESPONSE__INIT;
  Memquorum__V1__KeyValue kv;
  struct api_strs a;
  api_strs_init(&a);
  api_kv_to_msg(&a, &u->req.kv, &kv);
  resp.kv = &kv;
  return pack_free(&a, &resp.base);
}

static int delete_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__DeleteRequest *m = (const void *)u->msg;
  struct mq_req *r = &u->req;
  int rc;
  mq_req_init(r, MQ_REQ_DELETE);
  if ((rc = precondition(m->precondition, &r->pre, st)))
    return rc;
  r->key = m->key;
  r->key_len = strlen(m->key);
  return 0;
}

static grpc_byte_buffer *delete_reply(struct api_unary *u) {
  Memquorum__V1__DeleteResponse resp = MEMQUORUM__V1__DELETE_RESPONSE__INIT;
  resp.revision = u->req.revision;
  resp.shard = u->req.shard;
  resp.deleted = u->req.deleted;
  return mq_grpc_pack(&resp.base);
}

static int scan_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__ScanRequest *m = (const void *)u->msg;
  struct mq_req *r = &u->req;
  int rc;
  mq_req_init(r, MQ_REQ_SCAN);
  if ((rc = check_nonneg("limit", m->limit, st)) ||
      (rc = check_consistency(m->consistency, &r->serializable, st)))
    return rc;
  r->prefix = m->prefix;
  r->prefix_len = strlen(m->prefix);
  r->start_after = m->start_after;
  r->start_after_len = strlen(m->start_after);
  r->limit = (uint32_t)m->limit;
  r->keys_only = m->keys_only;
  return 0;
}

static grpc_byte_buffer *scan_reply(struct api_unary *u) {
  Memquorum__V1__ScanResponse resp = MEMQUORUM__V1__SCAN_RESPONSE__INIT;
  size_t n = u->req.n_kvs;
  Memquorum__V1__KeyValue *kvs = n ? calloc(n, sizeof *kvs) : NULL;
  Memquorum__V1__KeyValue **ptrs = n ? calloc(n, sizeof *ptrs) : NULL;
  grpc_byte_buffer *bb = NULL;
  struct api_strs a;
  api_strs_init(&a);
  if (n && (!kvs || !ptrs))
    goto out;
  for (size_t i = 0; i < n; i++) {
    api_kv_to_msg(&a, &u->req.kvs[i], &kvs[i]);
    ptrs[i] = &kvs[i];
  }
  resp.n_kvs = n;
  resp.kvs = ptrs;
  resp.more = u->req.more;
  bb = pack_free(&a, &resp.base);
out:
  api_strs_free(&a);
  free(ptrs);
  free(kvs);
  return bb;
}

/* ------------------------------------------------------------------------ */
/* PartitionService */

static int produce_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__ProduceRequest *m = (const void *)u->msg;
  const Memquorum__V1__Entry *e = m->entry;
  struct mq_req *r = &u->req;
  const char *key = e ? e->key : "";
  (void)st;
  mq_req_init(r, MQ_REQ_PRODUCE);
  r->topic = m->topic;
  r->topic_len = strlen(m->topic);
  r->partition = m->partition;
  r->key = key;
  r->key_len = strlen(key);
  if (e) {
    r->value = e->value.data;
    r->value_len = e->value.len;
    r->timestamp = e->timestamp;
  }
  return 0;
}

static grpc_byte_buffer *produce_reply(struct api_unary *u) {
  Memquorum__V1__ProduceResponse resp = MEMQUORUM__V1__PRODUCE_RESPONSE__INIT;
  resp.offset = u->req.out_offset;
  resp.partition = u->req.shard;
  resp.revision = u->req.revision;
  return mq_grpc_pack(&resp.base);
}

static int read_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__ReadRequest *m = (const void *)u->msg;
  struct mq_req *r = &u->req;
  int rc;
  mq_req_init(r, MQ_REQ_READ);
  if ((rc = check_nonneg("count", m->count, st)) ||
      (rc = check_consistency(m->consistency, &r->serializable, st)))
    return rc;
  r->topic = m->topic;
  r->topic_len = strlen(m->topic);
  r->partition = m->partition;
  r->offset = m->offset;
  r->count = (uint32_t)m->count;
  r->key = m->key;
  r->key_len = strlen(m->key);
  return 0;
}

static grpc_byte_buffer *read_reply(struct api_unary *u) {
  Memquorum__V1__ReadResponse resp = MEMQUORUM__V1__READ_RESPONSE__INIT;
  size_t n = u->req.n_entries;
  Memquorum__V1__Entry *es = n ? calloc(n, sizeof *es) : NULL;
  Memquorum__V1__Entry **ptrs = n ? calloc(n, sizeof *ptrs) : NULL;
  grpc_byte_buffer *bb = NULL;
  struct api_strs a;
  api_strs_init(&a);
  if (n && (!es || !ptrs))
    goto out;
  for (size_t i = 0; i < n; i++) {
    api_entry_to_msg(&a, &u->req.entries[i], &es[i]);
    ptrs[i] = &es[i];
  }
  resp.n_entries = n;
  resp.entries = ptrs;
  resp.next_offset = u->req.next_offset;
  resp.high_watermark = u->req.high_watermark;
  resp.log_start_offset = u->req.log_start_offset;
  bb = pack_free(&a, &resp.base);
out:
  api_strs_free(&a);
  free(ptrs);
  free(es);
  return bb;
}

/* ------------------------------------------------------------------------ */
/* Cluster */

static int status_prepare(struct api_unary *u, struct mq_status *st) {
  mq_req_init(&u->req, MQ_REQ_STATUS);
  return 0;
}

static grpc_byte_buffer *status_reply(struct api_unary *u) {
  Memquorum__V1__StatusResponse resp = MEMQUORUM__V1__STATUS_RESPONSE__INIT;
  const struct mq_node_status *ns = u->req.node_status;
  size_t nm = ns ? ns->n_members : 0, nsh = ns ? ns->n_shards : 0;
  Memquorum__V1__Member *mem = calloc(nm ? nm : 1, sizeof *mem);
  Memquorum__V1__Member **memp = calloc(nm ? nm : 1, sizeof *memp);
  Memquorum__V1__ShardStatus *sh = calloc(nsh ? nsh : 1, sizeof *sh);
  Memquorum__V1__ShardStatus **shp = calloc(nsh ? nsh : 1, sizeof *shp);
  Memquorum__V1__ShardMemory *shm = calloc(nsh ? nsh : 1, sizeof *shm);
  char(*digests)[17] = calloc(nsh ? nsh : 1, sizeof *digests);
  char *(*reps)[8] = calloc(nsh ? nsh : 1, sizeof *reps);
  char *(*places)[8] = calloc(nsh ? nsh : 1, sizeof *places);
  Memquorum__V1__DiscoverySource src[MQ_DISCOVERY_SOURCES];
  Memquorum__V1__DiscoverySource *srcp[MQ_DISCOVERY_SOURCES];
  char cluster_id[17] = "";
  grpc_byte_buffer *bb = NULL;

  if (!mem || !memp || !sh || !shp || !shm || !digests || !reps || !places)
    goto out;
  resp.version = (char *)MQ_VERSION;
  if (ns) {
    resp.node_id = (char *)ns->node_id;
    resp.shards_total = ns->shards_total;
    resp.replication_factor = ns->replication_factor;
    resp.discovery = (char *)mq_discovery_source_name((enum mq_discovery_source)ns->discovery);
    for (int i = 0; i < MQ_DISCOVERY_SOURCES; i++) {
      const struct mq_discovery_status *ds = &ns->sources[i];
      memquorum__v1__discovery_source__init(&src[i]);
      src[i].name = (char *)mq_discovery_source_name((enum mq_discovery_source)i);
      src[i].configured = ds->configured;
      src[i].answering = ds->answering;
      src[i].last_success_unix_ms = ds->last_success_unix_ms;
      src[i].errors = (int64_t)ds->errors;
      src[i].last_error = (char *)ds->last_error;
      src[i].found = ds->found;
      srcp[i] = &src[i];
    }
    resp.n_discovery_sources = MQ_DISCOVERY_SOURCES;
    resp.discovery_sources = srcp;
    if (ns->cluster_id)
      snprintf(cluster_id, sizeof cluster_id, "%016" PRIx64, ns->cluster_id);
    resp.cluster_id = cluster_id;
    resp.moves_in_progress = ns->moves_in_progress;
  }
  for (size_t i = 0; i < nm; i++) {
    const struct mq_member_status *ms = &ns->members[i];
    memquorum__v1__member__init(&mem[i]);
    mem[i].node_id = (char *)ms->node_id;
    mem[i].address = (char *)ms->address;
    mem[i].state = (char *)ms->state;
    memp[i] = &mem[i];
  }
  for (size_t i = 0; i < nsh; i++) {
    const struct mq_shard_status *ss = &ns->shards[i];
    Memquorum__V1__ShardStatus *m = &sh[i];
    memquorum__v1__shard_status__init(m);
    m->shard = ss->shard;
    m->leader = (char *)ss->leader;
    int nr = ss->n_replicas < 0 ? 0 : ss->n_replicas > 8 ? 8 : ss->n_replicas;
    for (int k = 0; k < nr; k++)
      reps[i][k] = (char *)ss->replicas[k];
    m->n_replicas = (size_t)nr;
    m->replicas = reps[i];
    int np = ss->n_placement < 0 ? 0 : ss->n_placement > 8 ? 8 : ss->n_placement;
    for (int k = 0; k < np; k++)
      places[i][k] = (char *)ss->placement[k];
    m->n_placement = (size_t)np;
    m->placement = places[i];
    m->role = (char *)ss->role;
    m->term = (int64_t)ss->term;
    m->commit_index = (int64_t)ss->commit_index;
    m->applied_index = (int64_t)ss->applied_index;
    m->keys = (int64_t)ss->keys;
    m->bytes = (int64_t)ss->bytes;
    snprintf(digests[i], sizeof digests[i], "%016" PRIx64, ss->digest);
    m->digest = digests[i];
    m->revision = ss->revision;
    m->healthy = ss->healthy;
    m->health = (char *)ss->health;
    memquorum__v1__shard_memory__init(&shm[i]);
    shm[i].kv_records = (int64_t)ss->mem[MQ_MEM_KV_RECORDS];
    shm[i].kv_index = (int64_t)ss->mem[MQ_MEM_KV_INDEX];
    shm[i].raft_log = (int64_t)ss->mem[MQ_MEM_RAFT_LOG];
    shm[i].watch_history = (int64_t)ss->mem[MQ_MEM_WATCH_HISTORY];
    shm[i].request_ids = (int64_t)ss->mem[MQ_MEM_REQUEST_IDS];
    shm[i].topic_logs = (int64_t)ss->mem[MQ_MEM_TOPIC_LOGS];
    m->memory = &shm[i];
    shp[i] = m;
  }
  resp.n_members = nm;
  resp.members = memp;
  resp.n_shards = nsh;
  resp.shards = shp;
  bb = mq_grpc_pack(&resp.base);
out:
  free(places);
  free(reps);
  free(digests);
  free(shp);
  free(shm);
  free(sh);
  free(memp);
  free(mem);
  return bb;
}

static int recover_prepare(struct api_unary *u, struct mq_status *st) {
  const Memquorum__V1__RecoverRequest *m = (const void *)u->msg;
  (void)st;
  mq_req_init(&u->req, MQ_REQ_RECOVER);
  u->req.partition = m->shard;
  u->req.confirm = m->confirm;
  return 0;
}

static grpc_byte_buffer *recover_reply(struct api_unary *u) {
  Memquorum__V1__RecoverResponse resp = MEMQUORUM__V1__RECOVER_RESPONSE__INIT;
  const struct mq_recover_report *rep = u->req.recover;
  resp.shard = u->req.partition;
  if (rep) {
    resp.lossless = rep->lossless;
    resp.started = rep->started;
    resp.report = (char *)rep->text;
  }
  return mq_grpc_pack(&resp.base);
}

/* ------------------------------------------------------------------------ */

const struct api_unary_method api_um_put = {&memquorum__v1__put_request__descriptor, put_prepare,
                                            put_reply, false};
const struct api_unary_method api_um_get = {&memquorum__v1__get_request__descriptor, get_prepare,
                                            get_reply, true};
const struct api_unary_method api_um_delete = {&memquorum__v1__delete_request__descriptor,
                                               delete_prepare, delete_reply, false};
const struct api_unary_method api_um_scan = {&memquorum__v1__scan_request__descriptor, scan_prepare,
                                             scan_reply, false};
const struct api_unary_method api_um_produce = {&memquorum__v1__produce_request__descriptor,
                                                produce_prepare, produce_reply, false};
const struct api_unary_method api_um_read = {&memquorum__v1__read_request__descriptor, read_prepare,
                                             read_reply, false};
const struct api_unary_method api_um_status = {&memquorum__v1__status_request__descriptor,
                                               status_prepare, status_reply, false};
const struct api_unary_method api_um_recover = {&memquorum__v1__recover_request__descriptor,
                                                recover_prepare, recover_reply, false};
