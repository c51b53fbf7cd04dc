/*
 * tcp_offset.h - how far apart two guests' TCP sequence (and timestamp)
 * spaces are, and moving a secondary segment into the primary's.
 *
 * Shared by the live rewriter (tcp_rewriter.c) and the offline analyzer
 * (colo analyze), so that a capture is aligned exactly the way the
 * secondary proxy would have aligned the same traffic.
 */
#ifndef COLO_TCP_OFFSET_H
#define COLO_TCP_OFFSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one guest's SYN or SYN/ACK says about its sequence space. */
struct colo_tcp_syn {
	uint32_t isn;
	uint32_t tsval;
	bool has_ts;
};

/* secondary - primary, modulo 2^32. */
struct colo_tcp_offset {
	uint32_t seq;
	uint32_t ts;
	bool ts_ok; /* ts is known: both SYN(/ACK)s carried timestamps */
};

/* Where the options the rewriter touches are in a TCP header. */
struct colo_tcp_opts {
	size_t ts_at;	/* offset of TSval in the TCP header, 0: none */
	size_t sack_at; /* offset of the first SACK block, 0: none */
	unsigned nsack;
};

/* tcp_offset.c APIs: */
void colo_tcp_offset_from_syns(const struct colo_tcp_syn *pri,
			       const struct colo_tcp_syn *sec,
			       struct colo_tcp_offset *off);
/* tcp: the TCP header, doff: its length (data offset * 4), which the
 * caller has checked lies inside the frame. */
void colo_tcp_find_options(const uint8_t *tcp, size_t doff,
			   struct colo_tcp_opts *o);
/* Moves a secondary egress segment into the primary's space: seq and, if
 * off->ts_ok and ts_at, TSval. With csum the TCP checksum is updated
 * incrementally, otherwise left alone (a device completes it). */
void colo_tcp_offset_shift_egress(uint8_t *tcp, size_t ts_at, bool csum,
				  const struct colo_tcp_offset *off);

#endif
