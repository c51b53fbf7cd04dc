/*
 * align_internal.h - what align.c shares with the two helpers it drives:
 * align_infer.c (an offset from the data) and align_edit.c (changes to
 * captured frames). Not part of the analyzer's API.
 */
#ifndef COLO_ALIGN_INTERNAL_H
#define COLO_ALIGN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "align.h"
#include "packet.h"

/* One TCP frame of a capture, keyed by flow (sorted: key, side, frame). */
struct colo_align_entry {
	struct colo_flow_key key;
	int side;
	size_t frame;
};

/* align_infer.c APIs: */
/* Fills fa->how (inferred, ambiguous, no match, no data) and, when
 * inferred, the offset, the matched sequence numbers and the anchors,
 * from the flow's primary frames e[0..n0) and secondary frames
 * e[n0..n0+n1). Returns 0, or -1 when memory is exhausted. */
int colo_align_infer(const struct colo_capture *const side[2],
		     const struct colo_align_entry *e, size_t n0, size_t n1,
		     struct colo_flow_align *fa);

/* align_edit.c APIs: */
bool colo_align_parse_tcp(const struct colo_frame *f, struct colo_packet *p);
/* Moves the flow's frames e[0..n) of capture c (the secondary's) into the
 * primary's space. */
void colo_align_shift(struct colo_capture *c, const struct colo_align_entry *e,
		      size_t n, const struct colo_tcp_offset *off);
/* Cuts the first `cut` payload bytes off a TCP frame (seq, IP length and
 * checksums follow), so that it starts where the other side's does. */
void colo_align_trim_front(struct colo_frame *f, uint32_t cut);

#endif
