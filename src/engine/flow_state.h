/*
 * flow_state.h - what the comparer remembers about one flow.
 *
 * A TCP flow is two byte streams (primary, secondary) in the primary's
 * sequence space. `m` is the first sequence number not yet matched; each
 * side's contiguous stream ends at end[side]; the side that is ahead keeps
 * its unmatched bytes [m, end[lead]) in `ring`. Held primary frames wait in
 * p_head..p_tail until their bytes are matched and their ACK is covered.
 *
 * A datagram flow (UDP, ICMP, other IP, malformed) holds either unmatched
 * primary frames or unmatched secondary frames, never both: a new datagram
 * from one side is compared with the oldest waiting one of the other.
 */
#ifndef COLO_FLOW_STATE_H
#define COLO_FLOW_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "byte_ring.h"
#include "flow.h"
#include "keyed_table.h"
#include "frame_pool.h"

struct colo_tcp_state {
	bool synced : 1; /* m and end[] are meaningful */
	/* The secondary's SYN came on the closed flow: the new incarnation
	 * (reincarnate, on the primary's SYN) starts with it seen. One bit
	 * beside synced: an idle flow stays within its byte budget
	 * (test_memory). */
	bool s_syn_reopen : 1;
	/* The primary has sent on the stream: until then a primary SYN
	 * starts the stream at its own number, whatever the secondary's
	 * (perhaps unshifted) segments set it to. */
	bool p_in : 1;
	uint8_t lead; /* side whose bytes are in ring */
	bool have_ack[2];
	bool fin_seen[2];
	/* Each side's guest opened the connection (a SYN without ACK). */
	bool syn_seen[2];
	uint32_t m;
	uint32_t end[2];
	uint32_t max_ack[2];
	uint32_t fin_seq[2];
	/* Highest sequence end the primary has sent, diverged or not: where
	 * both streams resume after a checkpoint. */
	uint32_t p_high;
	/* The secondary's unmatched bytes when it leads (NULL while it
	 * has none: idle flows hold no buffer); the primary's stay in its
	 * held frames, and pcur is where the last comparison against them
	 * ended (a hint, cleared when that frame leaves). */
	struct colo_byte_ring *ring;
	struct colo_frame *pcur;
	/* Segments beyond a hole in their side's stream: primary ones are
	 * held frames flagged `ooo`; secondary ones a private list. */
	uint32_t nooo[2];
	struct colo_frame *s_ooo;
};

struct colo_dgram_state {
	struct colo_frame *s_head, *s_tail; /* unmatched secondary datagrams */
	uint32_t s_count;
	uint8_t seen; /* sides that sent on it this epoch (opened_ports.c) */
	/* Both replicas hold the socket: both sent on it in some epoch, or
	 * the primary did before a checkpoint copied it to the secondary.
	 * A first datagram of a later epoch is then no opening. Kept across
	 * epochs; gone with the flow. */
	bool both_hold;
};

struct colo_flow {
	struct colo_flow_key key;
	struct colo_hnode hn; /* flow_table.h */
	struct colo_flow *lru_next, *lru_prev;
	uint64_t last_ns;
	uint32_t epoch; /* comparer epoch this state belongs to */
	bool is_tcp;
	bool diverged;	     /* stop comparing until the checkpoint */
	bool closed;	     /* FIN both ways or RST: reclaim sooner */
	bool in_closed_list; /* which activity list holds the flow */
	struct colo_frame *p_head, *p_tail; /* held primary frames */
	uint32_t p_count;
	union {
		struct colo_tcp_state tcp;
		struct colo_dgram_state dgram;
	} u;
};

/* Sequence number arithmetic modulo 2^32 (RFC 793 / RFC 1982). */
static inline bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static inline bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}
static inline bool seq_gt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

#endif
