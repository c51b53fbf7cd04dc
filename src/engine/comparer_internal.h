/*
 * comparer_internal.h - state shared by comparer.c (flows, holding,
 * releasing, checkpoints) and the per-protocol rules in tcp_compare.c and
 * dgram_compare.c.
 */
#ifndef COLO_COMPARER_INTERNAL_H
#define COLO_COMPARER_INTERNAL_H

#include "byte_ring.h"
#include "comparer.h"
#include "flow_state.h"
#include "flow_table.h"
#include "frame_pool.h"
#include "packet.h"

struct colo_flow_list {
	struct colo_flow *head, *tail;
};

/* A flow one side opened lately (opened_ports.c). */
#define COLO_OPENED_SLOTS 8
struct colo_opened {
	struct colo_flow_key key;
	uint32_t epoch; /* stale after a checkpoint */
	bool live;	/* not yet paired with the other side's */
};

struct colo_comparer {
	struct colo_comparer_config cfg;
	struct colo_comparer_ops ops;
	void *opaque;
	struct colo_flow_table table;
	struct colo_frame_pool pool;
	struct colo_ring_pool rings; /* secondary bytes of leading flows */
	uint64_t last_trim;	     /* when the last trim period began */
	size_t freed_since_return;   /* bytes freed since malloc_trim */
	struct colo_frame *g_head, *g_tail; /* held frames, arrival order */
	struct colo_flow_list open, closed; /* by last activity, oldest first */
	uint32_t epoch;			    /* bumped by every checkpoint */
	bool pending;			    /* a checkpoint was requested */
	bool full_reported;		    /* table full told this epoch */
	uint64_t now;
	struct colo_stats st;
	struct colo_opened opened[2][COLO_OPENED_SLOTS]; /* by side */
	uint8_t opened_next[2];
};

/* One frame as it arrives: the parse, plus where its bytes are. */
struct colo_input {
	enum colo_side side;
	const struct colo_packet *pkt;
	const uint8_t *raw; /* whole frame, vnet header included */
	size_t len;
	size_t vnet_hdr_len;
};

/* comparer.c APIs used by the protocol rules: */
struct colo_frame *colo_cmp_hold(struct colo_comparer *c, struct colo_flow *fl,
				 const struct colo_input *in);
void colo_cmp_release(struct colo_comparer *c, struct colo_frame *f);
void colo_cmp_release_raw(struct colo_comparer *c, const struct colo_input *in);
/* Records a cause for a checkpoint on flow fl (NULL d fields are zero).
 * Payload, control and queue causes mark the flow diverged. */
void colo_cmp_diverge(struct colo_comparer *c, struct colo_flow *fl,
		      struct colo_divergence *d);

/* tcp_compare.c APIs: */
void colo_tcp_input(struct colo_comparer *c, struct colo_flow *fl,
		    const struct colo_input *in);
void colo_tcp_reset(struct colo_comparer *c, struct colo_flow *fl);
void colo_tcp_destroy(struct colo_comparer *c, struct colo_flow *fl);

/* tcp_split.c APIs: */
/* Records, when a TCP frame is held, what splitting it needs. */
void colo_tcp_split_note(struct colo_frame *f, const struct colo_input *in);
/* Whether a held frame's payload may leave in parts. */
bool colo_tcp_splittable(const struct colo_frame *f);
/* Sends payload [f->sent, to) of held frame f as a frame of its own. */
void colo_tcp_release_part(struct colo_comparer *c, struct colo_frame *f,
			   uint32_t to);

/* dgram_compare.c APIs: */
void colo_dgram_input(struct colo_comparer *c, struct colo_flow *fl,
		      const struct colo_input *in);
void colo_dgram_reset(struct colo_comparer *c, struct colo_flow *fl);

/* opened_ports.c APIs: side sent its first datagram or TCP SYN (without
 * ACK) on fl this epoch; other_too: the other side already sent on fl. */
void colo_flow_opened(struct colo_comparer *c, struct colo_flow *fl, int side,
		      bool other_too);
/* fl is reclaimed: what it opened can no longer pair or diverge. */
void colo_flow_forgotten(struct colo_comparer *c, const struct colo_flow *fl);

#endif
