/* main() of a fuzz target outside libFuzzer: runs the target once on each
 * file named, and on each file of each directory named (the corpus), so
 * that every crash the fuzzer ever found keeps being replayed by ctest.
 *   fuzz_<target> FILE_OR_DIR...
 * Exits non-zero when nothing was read (a corpus that went missing must
 * not pass quietly); a broken target aborts, as under libFuzzer. */
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *data = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? 2 * cap : 4096;
      uint8_t *p = realloc(data, cap);
      if (!p) {
        fprintf(stderr, "%s: out of memory\n", path);
        free(data);
        fclose(f);
        return -1;
      }
      data = p;
    }
    size_t n = fread(data + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    fprintf(stderr, "%s: read error\n", path);
    free(data);
    return -1;
  }
  /* an exact-size copy, so ASan sees a read one past the end */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(data);
    return -1;
  }
  if (len)
    memcpy(exact, data, len);
  free(data);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  ++*count;
  return 0;
}

static int run_path(const char *path, size_t *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode))
    return run_file(path, count);
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) && rc == 0) {
    if (e->d_name[0] == '.')
      continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    rc = run_path(sub, count);
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  size_t count = 0;
  for (int i = 1; i < argc; i++)
    if (run_path(argv[i], &count))
      return 1;
  if (count == 0) {
    fprintf(stderr, "%s: no inputs found\n", argv[0]);
    return 1;
  }
  printf("%s: %zu inputs replayed\n", argv[0], count);
  return 0;
}
