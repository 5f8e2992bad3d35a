/* Memory mapped from the system directly (util/pages.h). */
#include "util/pages.h"

#include <sys/mman.h>
#include <unistd.h>

size_t mq_pages_size(size_t size) {
  long p = sysconf(_SC_PAGESIZE); /* read from the process's auxv: no syscall */
  size_t page = p > 0 ? (size_t)p : 4096;
  return (size + page - 1) / page * page;
}

void *mq_pages_alloc(size_t size) {
  void *p =
      mmap(NULL, mq_pages_size(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void mq_pages_free(void *p, size_t size) {
  if (p)
    munmap(p, mq_pages_size(size));
}
