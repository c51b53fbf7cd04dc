/*
 * repl_lobby.h - the blk secondary's lobby: the connections to the link
 * port that have not proven anything yet, several at once, so that idle
 * or trickling strangers cannot queue the real primary behind them.
 */
#ifndef COLO_BLK_REPL_LOBBY_H
#define COLO_BLK_REPL_LOBBY_H

#include <stdint.h>

#include "repl_link.h"

/* Connections proven at once; a few absorb strangers and a primary that
 * reconnects before its old connection timed out. */
#define COLO_REPL_LOBBY_SEATS 8

struct colo_tls;
struct colo_tls_creds;
struct colo_repl_lobby;

/* A connection that proved itself: with credentials its TLS peer is the
 * expected host; its HELLO matches the pair (version, auth). Nothing was
 * written to it beyond the TLS handshake. The caller owns fd and tls
 * (NULL on a plain link; handshake done, bytes after the HELLO may wait
 * in it). */
struct colo_repl_joiner {
	int fd;
	struct colo_tls *tls;
	struct colo_link_hello hello;
};

/* Counters, updated by the lobby's thread, read by any. */
struct colo_repl_lobby_stats {
	uint64_t hello_timeouts; /* no whole HELLO in time */
	uint64_t refused;	 /* failed TLS, bad HELLO, lobby of proven */
	uint64_t evicted;	 /* strangers that gave way to a newcomer */
};

/* repl_lobby.c APIs: */
/* creds NULL: plain link. timeout_ms bounds the TLS handshake from the
 * accept, and the HELLO from the accept (plain) or from the handshake's
 * end (TLS). Not owned. NULL when out of memory. */
struct colo_repl_lobby *colo_repl_lobby_new(const struct colo_tls_creds *creds,
					    const char *tls_peer,
					    unsigned int timeout_ms);
/* Accepts on listen_fd and proves connections until one joins (1, *j
 * filled; every other one in the lobby is closed) or wake_fd is readable
 * (0, a byte read from it). -1 when poll fails. */
int colo_repl_lobby_wait(struct colo_repl_lobby *l, int listen_fd, int wake_fd,
			 struct colo_repl_joiner *j);
void colo_repl_lobby_get_stats(struct colo_repl_lobby *l,
			       struct colo_repl_lobby_stats *st);
void colo_repl_lobby_free(struct colo_repl_lobby *l);

#endif
