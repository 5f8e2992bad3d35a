/* Java .properties reader (see props.h for the accepted syntax). */
#include "config/props.h"

#include "util/utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\f'; }

/* A growable byte string for one logical line or one unescaped token. */
struct sbuf {
  char *p;
  size_t len, cap;
};

static int sbuf_put(struct sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
      return MQ_ENOMEM;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

/* Unescapes s[0..n) into out. With trim_end, trailing whitespace that was not
 * escaped is dropped. */
static int unescape(const char *s, size_t n, bool trim_end, struct sbuf *out, const char *name,
                    int line, struct mq_status *st) {
  size_t keep = 0; /* out->len after the last character that must be kept */
  out->len = 0;
  if (sbuf_put(out, "", 0))
    return MQ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    int rc;
    char c = s[i];
    if (c != '\\') {
      if ((rc = sbuf_put(out, &c, 1)))
        return rc;
      if (!is_ws(c))
        keep = out->len;
      continue;
    }
    if (++i == n) /* a lone backslash at the very end of the file */
      break;
    c = s[i];
    if (c == 'u') {
      uint32_t cp;
      size_t used;
      int erc = mq_utf16_escape(s + i + 1, n - i - 1, &cp, &used);
      if (erc == MQ_EINVAL)
        return mq_status_set(st, MQ_EINVAL, "%s line %d: malformed \\uXXXX escape", name, line);
      if (erc)
        return mq_status_set(st, MQ_EINVAL, "%s line %d: unpaired UTF-16 surrogate \\u%04X", name,
                             line, (unsigned)cp);
      if (cp == 0)
        return mq_status_set(st, MQ_EINVAL, "%s line %d: \\u0000 is not allowed", name, line);
      i += used;
      char u[MQ_UTF8_MAX];
      rc = sbuf_put(out, u, mq_utf8_encode(cp, u));
    } else {
      char e = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 'f' ? '\f' : c;
      rc = sbuf_put(out, &e, 1);
    }
    if (rc)
      return rc;
    keep = out->len;
  }
  if (trim_end) {
    out->len = keep;
    out->p[keep] = '\0';
  }
  return 0;
}

static int push(struct mq_props *p, const char *key, const char *value, int line) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    struct mq_prop *np = realloc(p->items, cap * sizeof *np);
    if (!np)
      return MQ_ENOMEM;
    p->items = np;
    p->cap = cap;
  }
  char *k = strdup(key), *v = strdup(value);
  if (!k || !v) {
    free(k);
    free(v);
    return MQ_ENOMEM;
  }
  p->items[p->n++] = (struct mq_prop){.key = k, .value = v, .line = line};
  return 0;
}

/* Sets [*b, *e) to the next natural line starting at *pos and moves *pos
 * past its terminator (\n, \r or \r\n). */
static void natural_line(const char *t, size_t len, size_t *pos, size_t *b, size_t *e) {
  size_t i = *pos;
  *b = i;
  while (i < len && t[i] != '\n' && t[i] != '\r')
    i++;
  *e = i;
  if (i < len && t[i] == '\r' && i + 1 < len && t[i + 1] == '\n')
    i++;
  *pos = i < len ? i + 1 : i;
}

/* True when the natural line [b, e) ends in an odd number of backslashes. */
static bool continues(const char *t, size_t b, size_t e) {
  size_t k = 0;
  while (e > b && t[e - 1] == '\\') {
    k++;
    e--;
  }
  return k % 2 == 1;
}

int mq_props_parse(struct mq_props *p, const char *t, size_t len, const char *name,
                   struct mq_status *st) {
  struct sbuf logical = {0}, key = {0}, value = {0};
  size_t pos = 0;
  int line = 0, rc = 0;

  if (memchr(t, '\0', len)) {
    size_t at = (size_t)((const char *)memchr(t, '\0', len) - t);
    int l = 1;
    for (size_t i = 0; i < at; i++)
      l += t[i] == '\n';
    return mq_status_set(st, MQ_EINVAL, "%s line %d: NUL byte in file", name, l);
  }
  if (len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0)
    pos = 3;

  while (pos < len) {
    size_t b, e;
    natural_line(t, len, &pos, &b, &e);
    line++;
    while (b < e && is_ws(t[b]))
      b++;
    if (b == e || t[b] == '#' || t[b] == '!')
      continue;

    int start_line = line;
    logical.len = 0;
    while (continues(t, b, e) && pos < len) {
      if ((rc = sbuf_put(&logical, t + b, e - b - 1)))
        goto done;
      natural_line(t, len, &pos, &b, &e);
      line++;
      while (b < e && is_ws(t[b]))
        b++;
    }
    if ((rc = sbuf_put(&logical, t + b, e - b)))
      goto done;

    /* The key runs to the first unescaped '=', ':' or whitespace. */
    const char *l = logical.p;
    size_t n = logical.len, i = 0;
    while (i < n && l[i] != '=' && l[i] != ':' && !is_ws(l[i]))
      i += (l[i] == '\\' && i + 1 < n) ? 2 : 1;
    size_t key_end = i;
    while (i < n && is_ws(l[i]))
      i++;
    if (i < n && (l[i] == '=' || l[i] == ':'))
      i++;
    while (i < n && is_ws(l[i]))
      i++;
    if ((rc = unescape(l, key_end, false, &key, name, start_line, st)) ||
        (rc = unescape(l + i, n - i, true, &value, name, start_line, st)))
      goto done;
    if (key.len == 0) {
      rc = mq_status_set(st, MQ_EINVAL, "%s line %d: empty key", name, start_line);
      goto done;
    }
    if ((rc = push(p, key.p, value.p, start_line)))
      goto done;
  }

done:
  if (rc == MQ_ENOMEM)
    mq_status_set(st, rc, "%s: out of memory", name);
  free(logical.p);
  free(key.p);
  free(value.p);
  return rc;
}

int mq_props_read_file(struct mq_props *p, const char *path, struct mq_status *st) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return mq_status_set(st, mq_err_from_errno(e) == MQ_ENOTFOUND ? MQ_ENOTFOUND : MQ_EIO,
                         "cannot read %s: %s", path, strerror(e));
  }
  char *text = malloc(MQ_PROPS_MAX_FILE + 1);
  int rc;
  if (!text) {
    rc = mq_status_set(st, MQ_ENOMEM, "%s: out of memory", path);
    goto close_file;
  }
  size_t n = fread(text, 1, MQ_PROPS_MAX_FILE + 1, f);
  if (ferror(f)) {
    rc = mq_status_set(st, MQ_EIO, "cannot read %s: %s", path, strerror(errno));
    goto free_text;
  }
  if (n > MQ_PROPS_MAX_FILE) {
    rc = mq_status_set(st, MQ_EINVAL, "%s is larger than %u bytes; is it a properties file?", path,
                       MQ_PROPS_MAX_FILE);
    goto free_text;
  }
  rc = mq_props_parse(p, text, n, path, st);
free_text:
  free(text);
close_file:
  fclose(f);
  return rc;
}

const struct mq_prop *mq_props_find(const struct mq_props *p, const char *key) {
  for (size_t i = p->n; i > 0; i--)
    if (strcmp(p->items[i - 1].key, key) == 0)
      return &p->items[i - 1];
  return NULL;
}

void mq_props_free(struct mq_props *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->items[i].key);
    free(p->items[i].value);
  }
  free(p->items);
  *p = (struct mq_props){0};
}
