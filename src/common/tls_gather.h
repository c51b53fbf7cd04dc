/*
 * tls_gather.h - the memory output BIO behind colo_tls_gather(): records
 * are gathered and sent by one send() per flush (see tls_gather.c).
 */
#ifndef COLO_TLS_GATHER_H
#define COLO_TLS_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

struct colo_tls_gather;

/* tls_gather.c APIs: */
/* A gatherer sending to socket fd and its BIO (*bio, owned by whoever
 * the caller gives it to, e.g. SSL_set0_wbio). NULL without memory. */
struct colo_tls_gather *colo_tls_gather_new(int fd, BIO **bio);
void colo_tls_gather_free(struct colo_tls_gather *g);
size_t colo_tls_gather_unsent(const struct colo_tls_gather *g);
/* Sends what is gathered without blocking: 0 all sent, -1 with errno
 * (EAGAIN: some bytes remain). */
int colo_tls_gather_flush(struct colo_tls_gather *g);

#endif
