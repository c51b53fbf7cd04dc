/*
 * tcp_rewriter.h - the secondary's TCP sequence-number rewriter.
 *
 * Two guests answering the same client choose different initial sequence
 * numbers (and TCP timestamp offsets). The secondary proxy shifts its
 * guest's egress into the primary's sequence space (so the comparer sees
 * equal streams and, after failover, the client sees a continuous one) and
 * shifts the client's ingress into the secondary's space.
 *
 * The primary proxy tells the secondary the primary's ISN (and TSval) of
 * every connection, from the primary guest's SYN or SYN/ACK, so both
 * passive and active opens work and nothing is guessed.
 *
 * A library without sockets: frames in, frames rewritten in place.
 */
#ifndef COLO_TCP_REWRITER_H
#define COLO_TCP_REWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"

/* What the primary proxy learns from its guest's SYN or SYN/ACK. */
struct colo_conn_meta {
	struct colo_flow_key key; /* the guest's egress direction */
	uint32_t isn;		  /* the guest's initial sequence number */
	uint32_t tsval;		  /* TSval in that SYN(/ACK), if has_ts */
	bool has_ts;
};

enum colo_rw_verdict {
	COLO_RW_PASS, /* forward the (possibly rewritten) frame */
	COLO_RW_WAIT, /* egress of a connection whose primary ISN is not
			 known yet: queue it, retry after learn() */
};

struct colo_rewriter_stats {
	uint64_t conns, conns_created, conns_reclaimed;
	uint64_t egress_rewritten, ingress_rewritten, passed;
	uint64_t waits, checkpoints;
	/* primary ISNs taken from the client's ACK (ack - 1) because the
	 * metadata had not arrived: should stay 0 */
	uint64_t fallback_learns;
	/* Open connections whose offsets are not 0, counted at each tick:
	 * after failover, the ones only this rewriter can keep alive. */
	uint64_t shifted;
};

struct colo_rewriter;

/* tcp_rewriter.c APIs: */
struct colo_rewriter *colo_rewriter_new(void);
void colo_rewriter_free(struct colo_rewriter *rw);
/* Primary side: true if the frame is the guest's SYN or SYN/ACK, with the
 * metadata to send to the secondary. */
bool colo_conn_meta_from_frame(const uint8_t *frame, size_t len,
			       size_t vnet_len, struct colo_conn_meta *m);
/* Secondary side. */
void colo_rewriter_learn(struct colo_rewriter *rw,
			 const struct colo_conn_meta *m, uint64_t now_ns);
/* Secondary guest -> client: seq (and TSval) into the primary's space. */
enum colo_rw_verdict colo_rewriter_egress(struct colo_rewriter *rw,
					  uint8_t *frame, size_t len,
					  size_t vnet_len, uint64_t now_ns);
/* Client -> secondary guest: ack, SACK edges (and TSecr) into the
 * secondary's space. */
void colo_rewriter_ingress(struct colo_rewriter *rw, uint8_t *frame, size_t len,
			   size_t vnet_len, uint64_t now_ns);
/* A checkpoint made the secondary a copy of the primary: offsets are 0. */
void colo_rewriter_checkpoint(struct colo_rewriter *rw);
/* Failover: connections with an offset keep being rewritten for life;
 * new connections pass untouched; nothing waits any more. */
void colo_rewriter_failover(struct colo_rewriter *rw);
/* Reclaims closed and idle connections. */
void colo_rewriter_tick(struct colo_rewriter *rw, uint64_t now_ns);
/* Counts the open shifted connections now (O(connections): for a
 * control command, not per packet) and stores it in stats' shifted. A
 * tick's count can be up to a tick old: too old to decide whether a
 * restart would cut a connection. */
uint64_t colo_rewriter_count_shifted(struct colo_rewriter *rw);
const struct colo_rewriter_stats *
colo_rewriter_stats(const struct colo_rewriter *rw);

#endif
