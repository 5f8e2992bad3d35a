/* NUL-terminated copies of (pointer, length) strings for protobuf-c string
 * fields of a reply, freed together once it is packed (api/internal.h). */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

struct api_strs_chunk {
  struct api_strs_chunk *next;
  char s[];
};

void api_strs_init(struct api_strs *a) {
  a->head = NULL;
  a->err = 0;
}

char *api_strs_dup(struct api_strs *a, const char *p, size_t n) {
  struct api_strs_chunk *c = malloc(sizeof *c + n + 1);
  if (!c) {
    a->err = MQ_ENOMEM;
    return (char *)"";
  }
  if (n)
    memcpy(c->s, p, n);
  c->s[n] = '\0';
  c->next = a->head;
  a->head = c;
  return c->s;
}

void api_strs_free(struct api_strs *a) {
  while (a->head) {
    struct api_strs_chunk *c = a->head;
    a->head = c->next;
    free(c);
  }
}
