/*
 * repl_link_tls.h - internal to the replication link: the TLS session a
 * link socket may carry (repl_link_tls.c), as repl_link.c's socket I/O
 * uses it. colo_link_tls_start and colo_link_close are in repl_link.h.
 */
#ifndef COLO_BLK_REPL_LINK_TLS_H
#define COLO_BLK_REPL_LINK_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "repl_link.h"

struct colo_link_tls;

/* repl_link_tls.c APIs: */
/* fd's session, or NULL for a plain socket. */
struct colo_link_tls *colo_link_tls_find(int fd);
/* All of buf: 0, -ETIMEDOUT (send timeout), -ECONNRESET, -EPROTO. */
int colo_link_tls_write_all(struct colo_link_tls *t, const void *buf,
			    size_t len);
/* Some bytes (>0), -ECONNRESET at the end, -EAGAIN at the receive
 * timeout, -EPROTO or -errno. */
ssize_t colo_link_tls_read_some(struct colo_link_tls *t, void *buf, size_t len);

#endif
