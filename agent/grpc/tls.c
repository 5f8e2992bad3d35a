/* TLS from certificate files: their checks and reloads, and the gRPC
 * credentials built from them (grpc/tls.h). */
#include "grpc/tls.h"
#include "util/log.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
  CERT = MQ_TLS_CERT,
  KEY = MQ_TLS_KEY,
  CA = MQ_TLS_CA
};

#define MAX_PEM_BYTES (1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Files */

static void stamp(const char *path, struct mq_tls_stamp *s) {
  struct stat sb;
  memset(s, 0, sizeof *s);
  if (!path[0] || stat(path, &sb) != 0)
    return;
  s->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
  s->size = (int64_t)sb.st_size;
  s->ino = (uint64_t)sb.st_ino;
}

static bool same(const struct mq_tls_stamp *a, const struct mq_tls_stamp *b) {
  for (int i = 0; i < 3; i++)
    if (a[i].mtime_ns != b[i].mtime_ns || a[i].size != b[i].size || a[i].ino != b[i].ino)
      return false;
  return true;
}

/* The whole file as a NUL-terminated string, or NULL with err set. */
static char *slurp(const char *flag, const char *path, char *err, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, cap, "%s %s: %s", flag, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_PEM_BYTES + 1);
  size_t n = buf ? fread(buf, 1, MAX_PEM_BYTES + 1, f) : 0;
  bool bad = ferror(f) != 0;
  fclose(f);
  if (!buf)
    snprintf(err, cap, "%s %s: out of memory", flag, path);
  else if (bad)
    snprintf(err, cap, "%s %s: read error", flag, path);
  else if (n > MAX_PEM_BYTES)
    snprintf(err, cap, "%s %s: larger than %d bytes", flag, path, MAX_PEM_BYTES);
  else if (n == 0)
    snprintf(err, cap, "%s %s: empty file", flag, path);
  else {
    buf[n] = '\0';
    return buf;
  }
  free(buf);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Checks */

static X509 *first_cert(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return x;
}

/* The checks gRPC would only report at the first handshake, made at start
 * (and at each reload) so the message names the file. */
static int check(const struct mq_tls *t, char *const pem[3], char *err, size_t cap) {
  const char *const *flags = t->f.flag;
  X509 *cert = first_cert(pem[CERT]);
  X509 *ca = pem[CA] ? first_cert(pem[CA]) : NULL;
  BIO *b = BIO_new_mem_buf(pem[KEY], -1);
  EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  int rc = MQ_EINVAL;

  if (!cert)
    snprintf(err, cap, "%s %s: no PEM certificate in it", flags[CERT], t->f.path[CERT]);
  else if (!key)
    snprintf(err, cap, "%s %s: no PEM private key in it (or it is encrypted)", flags[KEY],
             t->f.path[KEY]);
  else if (pem[CA] && !ca)
    snprintf(err, cap, "%s %s: no PEM certificate in it", flags[CA], t->f.path[CA]);
  else if (X509_check_private_key(cert, key) != 1)
    snprintf(err, cap, "%s %s: the key does not match the certificate in %s", flags[KEY],
             t->f.path[KEY], t->f.path[CERT]);
  else if (t->f.name && X509_check_host(cert, t->f.name, 0, 0, NULL) != 1)
    snprintf(err, cap,
             "%s %s: the certificate has no subjectAltName DNS:%s, the name every agent "
             "verifies its peers by",
             flags[CERT], t->f.path[CERT], t->f.name);
  else
    rc = 0;
  ERR_clear_error();
  EVP_PKEY_free(key);
  BIO_free(b);
  X509_free(ca);
  X509_free(cert);
  return rc;
}

/* Every PEM certificate of pem, in order (an empty stack for none). */
static STACK_OF(X509) * all_certs(const char *pem) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x;
  while (sk && b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (!sk_X509_push(sk, x)) {
      X509_free(x);
      break;
    }
  }
  BIO_free(b);
  ERR_clear_error(); /* the end of the text reads as an error */
  return sk;
}

/* Every peer that trusts our CA refuses a certificate it did not sign: say
 * so once here rather than only in the peers' logs. A warning, not an
 * error: a CA bundle may be rotated ahead of the certificates. */
static void warn_unverified(const struct mq_tls *t, char *const pem[3]) {
  if (!pem[CA])
    return;
  const char *const *flags = t->f.flag;
  STACK_OF(X509) *chain = all_certs(pem[CERT]);
  STACK_OF(X509) *cas = all_certs(pem[CA]);
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int ok = -1;

  if (chain && cas && store && ctx && sk_X509_num(chain) > 0) {
    for (int i = 0; i < sk_X509_num(cas); i++)
      X509_STORE_add_cert(store, sk_X509_value(cas, i));
    if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), chain) == 1)
      ok = X509_verify_cert(ctx);
  }
  if (ok == 0)
    mq_warn(t->f.log,
            "%s %s does not verify against %s %s (%s): peers that trust that CA will refuse "
            "this agent",
            flags[CERT], t->f.path[CERT], flags[CA], t->f.path[CA],
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  sk_X509_pop_free(cas, X509_free);
  sk_X509_pop_free(chain, X509_free);
  ERR_clear_error();
}

/* Reads the three files into pem[] and checks them. On failure nothing is
 * left allocated. */
static int load(const struct mq_tls *t, char *pem[3], char *err, size_t cap) {
  int rc = 0;
  for (int i = 0; i < 3; i++)
    pem[i] = NULL;
  for (int i = 0; i < 3 && rc == 0; i++) {
    if (i == CA && !t->f.path[CA][0])
      continue;
    pem[i] = slurp(t->f.flag[i], t->f.path[i], err, cap);
    if (!pem[i])
      rc = MQ_EIO;
  }
  if (rc == 0)
    rc = check(t, pem, err, cap);
  if (rc != 0)
    for (int i = 0; i < 3; i++) {
      free(pem[i]);
      pem[i] = NULL;
    }
  return rc;
}

/* Under t->mu: takes the files again when they changed and are consistent. */
static void refresh(struct mq_tls *t) {
  struct mq_tls_stamp now[3];
  char *pem[3];
  char err[1200];

  for (int i = 0; i < 3; i++)
    stamp(t->f.path[i], &now[i]);
  if (same(now, t->loaded) || same(now, t->refused))
    return;
  if (load(t, pem, err, sizeof err) != 0) {
    memcpy(t->refused, now, sizeof now);
    mq_warn(t->f.log, "%s TLS files changed but cannot be used: %s; keeping the previous ones",
            t->f.what, err);
    return;
  }
  for (int i = 0; i < 3; i++) {
    free(t->pem[i]);
    t->pem[i] = pem[i];
  }
  warn_unverified(t, t->pem);
  memcpy(t->loaded, now, sizeof now);
  t->generation++;
  mq_info(t->f.log, "%s TLS files reloaded: %s, %s%s%s", t->f.what, t->f.path[CERT], t->f.path[KEY],
          t->f.path[CA][0] ? ", " : "", t->f.path[CA]);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle */

int mq_tls_init(struct mq_tls *t, const struct mq_tls_files *f, struct mq_status *st) {
  char err[1200];

  memset(t, 0, sizeof *t);
  t->f = *f;
  for (int i = 0; i < 3; i++)
    stamp(t->f.path[i], &t->loaded[i]);
  int rc = load(t, t->pem, err, sizeof err);
  if (rc != 0)
    return mq_status_set(st, rc, "%s TLS: %s", t->f.what, err);
  t->generation = 1;
  pthread_mutex_init(&t->mu, NULL);
  return 0;
}

void mq_tls_close(struct mq_tls *t) {
  for (int i = 0; i < 3; i++)
    free(t->pem[i]);
  pthread_mutex_destroy(&t->mu);
  memset(t, 0, sizeof *t);
}

void mq_tls_warn_unverified(struct mq_tls *t) { warn_unverified(t, t->pem); }

/* ------------------------------------------------------------------------ */
/* Credentials */

/* gRPC's certificate config fetcher: runs at server start and before each
 * handshake on the port. */
static grpc_ssl_certificate_config_reload_status fetch(void *arg,
                                                       grpc_ssl_server_certificate_config **out) {
  struct mq_tls *t = arg;
  grpc_ssl_certificate_config_reload_status rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

  pthread_mutex_lock(&t->mu);
  refresh(t);
  if (t->served != t->generation) {
    grpc_ssl_pem_key_cert_pair pair = {t->pem[KEY], t->pem[CERT]};
    /* gRPC insists on root certificates even when it asks clients for
     * none; without a CA they are never used, so our own chain does. */
    const char *roots = t->pem[CA] ? t->pem[CA] : t->pem[CERT];
    *out = grpc_ssl_server_certificate_config_create(roots, &pair, 1);
    t->served = t->generation;
    rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }
  pthread_mutex_unlock(&t->mu);
  return rs;
}

grpc_server_credentials *mq_tls_server_creds(struct mq_tls *t) {
  grpc_ssl_server_credentials_options *o =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          t->pem[CA] ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
          fetch, t);
  return o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
}

grpc_channel_credentials *mq_tls_channel_creds(struct mq_tls *t) {
  pthread_mutex_lock(&t->mu);
  refresh(t);
  grpc_ssl_pem_key_cert_pair pair = {t->pem[KEY], t->pem[CERT]};
  /* gRPC copies the PEM text. */
  grpc_channel_credentials *c = grpc_ssl_credentials_create_ex(t->pem[CA], &pair, NULL, NULL);
  pthread_mutex_unlock(&t->mu);
  return c;
}
