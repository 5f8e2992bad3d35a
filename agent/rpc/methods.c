/* The table of every method the API server answers. Services for health
 * checks and reflection's list_services are derived from it, so a method
 * added here is served, health-checked and listed without other changes. */
#include "rpc/internal.h"

#include <string.h>

const struct rpc_method rpc_methods[] = {
    {"/memquorum.v1.PartitionService/Produce", RPC_UNARY, rpc_unary_start, &rpc_um_produce},
    {"/memquorum.v1.PartitionService/Read", RPC_UNARY, rpc_unary_start, &rpc_um_read},
    {"/memquorum.v1.KV/Put", RPC_UNARY, rpc_unary_start, &rpc_um_put},
    {"/memquorum.v1.KV/Get", RPC_UNARY, rpc_unary_start, &rpc_um_get},
    {"/memquorum.v1.KV/Delete", RPC_UNARY, rpc_unary_start, &rpc_um_delete},
    {"/memquorum.v1.KV/Scan", RPC_UNARY, rpc_unary_start, &rpc_um_scan},
    {"/memquorum.v1.Watch/Watch", RPC_SERVER_STREAM, rpc_watch_start, NULL},
    {"/memquorum.v1.Cluster/Status", RPC_UNARY, rpc_unary_start, &rpc_um_status},
    {"/memquorum.v1.Cluster/Recover", RPC_UNARY, rpc_unary_start, &rpc_um_recover},
    {"/grpc.health.v1.Health/Check", RPC_UNARY, rpc_unary_start, &rpc_um_health_check},
    {"/grpc.health.v1.Health/Watch", RPC_SERVER_STREAM, rpc_health_watch_start, NULL},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", RPC_BIDI, rpc_reflection_start,
     NULL},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", RPC_BIDI,
     rpc_reflection_start, NULL},
};
const size_t rpc_n_methods = sizeof rpc_methods / sizeof rpc_methods[0];

void rpc_method_service(const struct rpc_method *m, char *buf, size_t cap) {
  const char *p = m->path + 1;
  const char *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
}

bool rpc_is_service(const char *name) {
  char svc[128];
  for (size_t i = 0; i < rpc_n_methods; i++) {
    rpc_method_service(&rpc_methods[i], svc, sizeof svc);
    if (strcmp(svc, name) == 0)
      return true;
  }
  return false;
}
