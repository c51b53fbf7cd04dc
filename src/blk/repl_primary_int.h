/*
 * repl_primary_int.h - the replicating primary's insides, shared by
 * repl_primary.c (writes, barriers, the link) and repl_resync.c (the
 * copy that brings a secondary in sync). Not an API: see repl_primary.h.
 */
#ifndef COLO_BLK_REPL_PRIMARY_INT_H
#define COLO_BLK_REPL_PRIMARY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk_dev.h"
#include "dirty_map.h"
#include "repl_primary.h"
#include "repl_link.h"
#include "sock_spec.h"

/* DIGEST_REQs in flight during a resync by digest, and the bytes each
 * covers (fewer granules when they are larger): the secondary hashes one
 * range while the next ones travel, and `order` is held for the primary's
 * hashing of one range at a time only. */
#define COLO_PRIM_DIGEST_WINDOW 4
#define COLO_PRIM_DIGEST_BYTES	(1U << 20)

struct colo_digester;

/* One DIGEST_REQ in flight: our digests of the range, then theirs. */
struct colo_prim_digest_slot {
	uint64_t seq, off;
	uint32_t len, count;
	uint8_t *mine, *theirs; /* dw_per digests each */
};

struct pending {
	uint64_t seq;
	uint64_t off; /* len 0: a barrier, nothing to re-copy */
	uint32_t len;
	void (*done)(void *arg, int result); /* an async write's last frame */
	void *arg;
};

struct colo_repl_primary {
	struct colo_blk_dev dev;
	struct colo_blk_dev *image;
	struct colo_sock_spec spec;
	bool async;
	unsigned int reconnect_ms, timeout_ms;
	const struct colo_tls_creds *creds; /* NULL: plain link */
	const char *tls_peer;
	char tls_err[256]; /* the last TLS failure, logged once */

	pthread_mutex_t order;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;		/* link socket, -1 when none; changed under both */
	uint64_t epoch; /* bumped when a link is lost */
	enum colo_repl_state state;
	uint64_t next_seq, acked_seq;
	uint64_t refused_seq; /* the last barrier the secondary refused */
	struct pending *q;    /* ring of unacknowledged frames */
	size_t qhead, qlen, qcap;
	struct pending *lost; /* completions of a lost link, to run unlocked */
	size_t nlost, lost_cap;
	struct colo_dirty_map dirty;  /* changed while not forwarded */
	struct colo_dirty_map resync; /* being copied by the resync */
	bool resync_active;
	/* Nothing is known of the secondary's image (no resync completed
	 * since the first link or a retarget): the resync compares digests
	 * instead of trusting the dirty map, when both sides can. */
	bool unknown;
	bool resync_full; /* --resync full: never compare digests */
	bool peer_digest; /* this link's secondary can hash (its HELLO) */
	/* The resync by digest's requests in flight, oldest first: issued
	 * counts the DIGEST_REQs sent, replied the DIGESTs received, on
	 * this link (both reset at link up). */
	struct colo_prim_digest_slot dw[COLO_PRIM_DIGEST_WINDOW];
	uint64_t dw_issued, dw_replied;
	uint32_t dw_per; /* granules per request */
	struct colo_digester *dg;
	uint8_t *rx; /* the receiver's payload buffer (a DIGEST's) */
	bool stop;
	bool started;
	pthread_t link_thread;
	struct colo_repl_primary_stats st;
	uint8_t *chunk; /* one granule, for the resync */
};

/* repl_primary.c internals for repl_resync.c: */
/* Under lock: a frame awaiting its ack (len 0: nothing to re-copy). */
int colo_prim_queue_push(struct colo_repl_primary *p, uint64_t seq,
			 uint64_t off, uint32_t len);
/* The link of `epoch` is gone (if still current): changes recorded. */
void colo_prim_link_lost(struct colo_repl_primary *p, uint64_t epoch,
			 const char *why);
/* Until seq is acked (0), the link lost (-ECONNRESET) or timeout_ms
 * (0: none) passed (-ETIMEDOUT). */
int colo_prim_wait_ack(struct colo_repl_primary *p, uint64_t seq,
		       uint64_t epoch, unsigned int timeout_ms);

/* repl_resync.c: */
/* Copies (or compares, then copies) the resync set over the link of
 * `epoch`; 0 once the secondary acknowledged all of it (protected). */
int colo_prim_resync(struct colo_repl_primary *p, int fd, uint64_t epoch);
/* The receiver got a DIGEST (under lock): 0 once stored in its slot,
 * -EPROTO when it answers no request in flight. */
int colo_prim_digest_arrived(struct colo_repl_primary *p,
			     const struct colo_link_hdr *h,
			     const uint8_t *payload);
/* The window's buffers, at creation: 0 or -ENOMEM. */
int colo_prim_digest_init(struct colo_repl_primary *p);
void colo_prim_digest_free(struct colo_repl_primary *p);

#endif
