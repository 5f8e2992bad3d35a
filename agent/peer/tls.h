/* Mutual TLS for the peer port (README "Encrypting the peer links").
 *
 * Holds the PEM text of this agent's certificate, its key and the CA from
 * --peer-tls-cert/-key/-ca, and hands gRPC credentials built from them:
 *  - the server requires a client certificate and verifies it against the
 *    CA; gRPC asks pn_tls for its certificate config at every handshake
 *    (the certificate config fetcher), so rotated files take effect for the
 *    next connection without a restart;
 *  - every new outgoing channel presents our certificate and verifies the
 *    server's chain against the CA and the fixed name MQ_PEER_TLS_NAME
 *    (GRPC_SSL_TARGET_NAME_OVERRIDE_ARG), not the address dialled.
 *
 * Reloads: before each use the three files are stat()ed; when one changed
 * (mtime, size or inode: cert-manager replaces them by rename) they are read
 * again, the key is checked against the certificate, and only a consistent
 * set replaces the one in use. A half-rotated set (new cert, old key) keeps
 * the old one until the other file arrives. A certificate that does not
 * verify against the CA is only warned about (mq_peer_tls_check, reloads).
 *
 * Threads: any thread; a mutex inside guards the PEM text. */
#ifndef MQ_PEER_TLS_H
#define MQ_PEER_TLS_H

#include "config/config.h"
#include "util/err.h"

#include <grpc/grpc_security.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct pn_tls_stamp {
  int64_t mtime_ns;
  int64_t size;
  uint64_t ino;
};

struct pn_tls {
  pthread_mutex_t mu;
  const char *path[3]; /* cert, key, ca: borrowed from the config */
  char *pem[3];        /* the set in use, consistent */
  struct pn_tls_stamp loaded[3];
  struct pn_tls_stamp refused[3]; /* last inconsistent set, warned about once */
  uint64_t generation;            /* bumped at every reload */
  uint64_t served;                /* generation the server last took */
};

/* Reads and checks the files named by cfg (borrowed: cfg must outlive t).
 * Returns 0, or MQ_EINVAL / MQ_EIO with a message naming the flag and the
 * problem (unreadable file, no certificate, key not matching, certificate
 * without the MQ_PEER_TLS_NAME subjectAltName). */
int pn_tls_init(struct pn_tls *t, const struct mq_config *cfg, struct mq_status *st);
void pn_tls_close(struct pn_tls *t);

/* Server credentials that fetch t's current set at each handshake. t must
 * outlive the server. Caller releases. */
grpc_server_credentials *pn_tls_server_creds(struct pn_tls *t);

/* Channel credentials from the current set (read again first if the files
 * changed). Caller releases. */
grpc_channel_credentials *pn_tls_channel_creds(struct pn_tls *t);

#endif
