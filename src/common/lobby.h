/*
 * lobby.h - who gets a seat among the few connections a link listener
 * proves at once (TLS host, then the link's HELLO) before one becomes
 * the link.
 *
 * Why shared: the frame link (vm/peer_accept.c) and the blk replication
 * link (blk/repl_secondary.c) face the same flood of strangers that
 * connect and say nothing. Both keep a few seats, each with its own
 * deadline, and when all are taken the stranger who came first gives
 * way, so a flood cannot queue the real peer behind it. A seat whose
 * host proved itself is never given away.
 */
#ifndef COLO_LOBBY_H
#define COLO_LOBBY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct colo_lobby_seat {
	bool taken;
	bool proven; /* its host is the expected peer (TLS done) */
	/* It sent bytes (a peer's TLS client speaks first): it gives way
	 * only after every silent stranger, so a flood of connections that
	 * say nothing cannot push out a handshake under way. */
	bool heard;
	uint64_t since; /* taken at (colo_now_ns) */
};

/* lobby.c APIs: */
/* The seat for a newcomer among n: a free one (*evict false), else the
 * unproven one taken first, silent ones before those heard from (*evict
 * true: its owner must close what sits there before reuse). -1 when
 * every seat holds a proven host. */
int colo_lobby_pick(const struct colo_lobby_seat *seats, size_t n, bool *evict);
/* Marks seat taken by a newcomer now (proven: no proof is asked). */
void colo_lobby_take(struct colo_lobby_seat *seat, uint64_t now, bool proven);
void colo_lobby_leave(struct colo_lobby_seat *seat);

#endif
