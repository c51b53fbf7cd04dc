/*
 * repl_link_tls.h - internal to the replication link: the TLS stream a
 * link socket may carry (repl_link_tls.c), as repl_link.c's socket I/O
 * uses it. colo_link_tls_start and colo_link_close are in repl_link.h.
 */
#ifndef COLO_BLK_REPL_LINK_TLS_H
#define COLO_BLK_REPL_LINK_TLS_H

#include "repl_link.h"

struct colo_tls_stream;

/* repl_link_tls.c APIs: */
/* fd's session, or NULL for a plain socket. */
struct colo_tls_stream *colo_link_tls_find(int fd);

#endif
