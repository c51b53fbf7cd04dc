/*
 * ingress_hold.h - the ingress cut of a checkpoint: client frames for a
 * guest held from the cut to checkpoint-done (see ingress_hold.c).
 */
#ifndef COLO_PROXY_INGRESS_HOLD_H
#define COLO_PROXY_INGRESS_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Above this many held bytes a frame is dropped (and counted). */
#define COLO_HOLD_MAX (64u << 20)
/* Longest wait for the CUT of a checkpoint already resumed: the CUT left
 * before the primary VM stopped, so only a backlog on the link delays it;
 * one lost with a reset link never comes. */
#define COLO_HOLD_LATE_CUT_NS (2000ull * 1000 * 1000)

enum colo_cut_state {
	COLO_CUT_PASS, /* frames go to the guest */
	COLO_CUT_HOLD, /* after a cut: kept until checkpoint-done */
	COLO_CUT_DROP, /* secondary: done came first; frames before the cut
			* were the retired VM's: kept, and dropped at the CUT
			* (or let in, should the CUT not come in time) */
};

struct colo_ingress_hold {
	enum colo_cut_state state;
	bool secondary;	  /* may enter COLO_CUT_DROP */
	bool cuts_seen;	  /* a CUT came once: the primary cuts (kept
			   * across resets, which forget the numbers) */
	uint64_t cut_seq; /* checkpoint of the last cut, 0: none */
	/* the last cut before a reset forgot cut_seq: its resume, should it
	 * come after the reset, must not wait for a CUT already seen */
	uint64_t reset_cut_seq;
	uint64_t done_seq; /* checkpoint of the last done */
	uint64_t wait_ns;  /* longest hold, set by the owner (0: no end) */
	uint64_t deadline; /* the present hold or drop ends here (0: never) */
	uint8_t *buf;	   /* [be32 len][u8 vnet_len][frame]... */
	size_t len, cap;
	uint64_t cuts, held, dropped, stale, expired;
	uint64_t held_now; /* frames in buf */
};

/* Where released frames go; fn may rewrite the frame in place. */
typedef void (*colo_hold_fn)(void *ctx, uint8_t *f, size_t len,
			     size_t vnet_len);

bool colo_hold_take_slow(struct colo_ingress_hold *h, const uint8_t *f,
			 size_t len, size_t vnet_len);
/* The hot path's one test: true when the frame was held or dropped here
 * and must not reach the guest now. */
static inline bool colo_hold_take(struct colo_ingress_hold *h, const uint8_t *f,
				  size_t len, size_t vnet_len)
{
	return h->state != COLO_CUT_PASS &&
	       colo_hold_take_slow(h, f, len, vnet_len);
}
/* The cut of checkpoint seq at time now: frames from here wait, until
 * now + wait_ns at most. Frames still held from an earlier cut that was
 * never done came before this cut: they go to fn first. */
void colo_hold_cut(struct colo_ingress_hold *h, uint64_t seq, uint64_t now,
		   colo_hold_fn fn, void *ctx);
/* Checkpoint seq is done (or failed) at time now: held frames go to fn,
 * in order. */
void colo_hold_done(struct colo_ingress_hold *h, uint64_t seq, uint64_t now,
		    colo_hold_fn fn, void *ctx);
/* A hold or drop past its deadline ends: what it kept goes to fn (a
 * checkpoint that never ends must not starve the guest). Returns whether
 * one ended. */
bool colo_hold_expire(struct colo_ingress_hold *h, uint64_t now,
		      colo_hold_fn fn, void *ctx);
/* No checkpoint is under way any more (failover, peer lost): held frames
 * go to fn and the sequence numbers are forgotten. */
void colo_hold_reset(struct colo_ingress_hold *h, colo_hold_fn fn, void *ctx);
void colo_hold_free(struct colo_ingress_hold *h);

#endif
