/* TLS credentials from certificate files that may be rotated: the peer
 * port's mutual TLS (README "Encrypting the peer links") and the API port's
 * optional TLS (README "TLS on the API port").
 *
 * Holds the PEM text of a certificate, its key and, optionally, a CA, and
 * hands gRPC credentials built from them:
 *  - the server asks mq_tls for its certificate config at every handshake
 *    (the certificate config fetcher), so rotated files take effect for the
 *    next connection without a restart; with a CA it requires a client
 *    certificate and verifies it against the CA;
 *  - every new outgoing channel (the peer transport) presents the
 *    certificate and verifies the server's chain against the CA.
 *
 * Reloads: before each use the files are stat()ed; when one changed (mtime,
 * size or inode: cert-manager replaces them by rename) they are read again,
 * the key is checked against the certificate, and only a consistent set
 * replaces the one in use. A half-rotated set (new cert, old key) keeps the
 * old one until the other file arrives. A certificate that does not verify
 * against the CA is only warned about.
 *
 * Threads: any thread; a mutex inside guards the PEM text. */
#ifndef MQ_GRPC_TLS_H
#define MQ_GRPC_TLS_H

#include "util/err.h"

#include <grpc/grpc_security.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum {
  MQ_TLS_CERT,
  MQ_TLS_KEY,
  MQ_TLS_CA
};

/* What to load and how to speak of it. Strings are borrowed: they must
 * outlive the mq_tls. */
struct mq_tls_files {
  const char *path[3]; /* cert, key, CA ("": no CA, no client certificates) */
  const char *flag[3]; /* the settings that name them, for messages */
  const char *name;    /* a DNS subjectAltName the certificate must carry, or NULL */
  const char *what;    /* "peer" or "API", for messages */
  const char *log;     /* log component */
};

struct mq_tls_stamp {
  int64_t mtime_ns;
  int64_t size;
  uint64_t ino;
};

struct mq_tls {
  pthread_mutex_t mu;
  struct mq_tls_files f;
  char *pem[3]; /* the set in use, consistent (pem[MQ_TLS_CA] NULL without a CA) */
  struct mq_tls_stamp loaded[3];
  struct mq_tls_stamp refused[3]; /* last inconsistent set, warned about once */
  uint64_t generation;            /* bumped at every reload */
  uint64_t served;                /* generation the server last took */
};

/* Reads and checks the files. Returns 0, or MQ_EINVAL / MQ_EIO with a
 * message naming the setting and the problem (unreadable file, no
 * certificate, key not matching, certificate without f->name). */
int mq_tls_init(struct mq_tls *t, const struct mq_tls_files *f, struct mq_status *st);
void mq_tls_close(struct mq_tls *t);
/* Warns, once, when the certificate does not verify against the CA. */
void mq_tls_warn_unverified(struct mq_tls *t);

/* Server credentials that fetch t's current set at each handshake; with a
 * CA, a client certificate it signs is required. t must outlive the
 * server. Caller releases. */
grpc_server_credentials *mq_tls_server_creds(struct mq_tls *t);

/* Channel credentials from the current set (read again first if the files
 * changed). Caller releases. */
grpc_channel_credentials *mq_tls_channel_creds(struct mq_tls *t);

#endif
