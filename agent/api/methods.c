/* The table of every method the API server answers. Services for health
 * checks and reflection's list_services are derived from it, so a method
 * added here is served, health-checked and listed without other changes. */
#include "api/internal.h"

#include <string.h>

const struct api_method api_methods[] = {
    {"/memquorum.v1.PartitionService/Produce", API_UNARY, api_unary_start, &api_um_produce},
    {"/memquorum.v1.PartitionService/Read", API_UNARY, api_unary_start, &api_um_read},
    {"/memquorum.v1.KV/Put", API_UNARY, api_unary_start, &api_um_put},
    {"/memquorum.v1.KV/Get", API_UNARY, api_unary_start, &api_um_get},
    {"/memquorum.v1.KV/Delete", API_UNARY, api_unary_start, &api_um_delete},
    {"/memquorum.v1.KV/Scan", API_UNARY, api_unary_start, &api_um_scan},
    {"/memquorum.v1.Watch/Watch", API_SERVER_STREAM, api_watch_start, NULL},
    {"/memquorum.v1.Cluster/Status", API_UNARY, api_unary_start, &api_um_status},
    {"/memquorum.v1.Cluster/Recover", API_UNARY, api_unary_start, &api_um_recover},
    {"/grpc.health.v1.Health/Check", API_UNARY, api_unary_start, &api_um_health_check},
    {"/grpc.health.v1.Health/Watch", API_SERVER_STREAM, api_health_watch_start, NULL},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", API_BIDI, api_reflection_start,
     NULL},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", API_BIDI,
     api_reflection_start, NULL},
};
const size_t api_n_methods = sizeof api_methods / sizeof api_methods[0];

void api_method_service(const struct api_method *m, char *buf, size_t cap) {
  const char *p = m->path + 1;
  const char *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
}

bool api_is_service(const char *name) {
  char svc[128];
  for (size_t i = 0; i < api_n_methods; i++) {
    api_method_service(&api_methods[i], svc, sizeof svc);
    if (strcmp(svc, name) == 0)
      return true;
  }
  return false;
}
