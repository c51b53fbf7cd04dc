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

enum colo_cut_state {
	COLO_CUT_PASS, /* frames go to the guest */
	COLO_CUT_HOLD, /* after a cut: kept until checkpoint-done */
	COLO_CUT_DROP, /* secondary: done came first; frames before the cut
			* were the retired VM's */
};

struct colo_ingress_hold {
	enum colo_cut_state state;
	bool secondary;	   /* may enter COLO_CUT_DROP */
	uint64_t cut_seq;  /* checkpoint of the last cut, 0: none */
	uint64_t done_seq; /* checkpoint of the last done */
	uint8_t *buf;	   /* [be32 len][u8 vnet_len][frame]... */
	size_t len, cap;
	uint64_t cuts, held, dropped, stale;
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
/* The cut of checkpoint seq: frames from here wait. Frames still held
 * from an earlier cut that was never done came before this cut: they go
 * to fn first. */
void colo_hold_cut(struct colo_ingress_hold *h, uint64_t seq, colo_hold_fn fn,
		   void *ctx);
/* Checkpoint seq is done (or failed): held frames go to fn, in order. */
void colo_hold_done(struct colo_ingress_hold *h, uint64_t seq, colo_hold_fn fn,
		    void *ctx);
/* No checkpoint is under way any more (failover, peer lost): held frames
 * go to fn and the sequence numbers are forgotten. */
void colo_hold_reset(struct colo_ingress_hold *h, colo_hold_fn fn, void *ctx);
void colo_hold_free(struct colo_ingress_hold *h);

#endif
