/*
 * align.h - bring a secondary capture into the primary's sequence space
 * and clock before the replay.
 *
 * Captures users can take (tcpdump on each guest's interface) hold each
 * guest's own TCP sequence numbers: the live secondary proxy's rewriter
 * aligns them before its comparer sees them, so the analyzer must too.
 * Per TCP flow the offset comes from the two SYN or SYN/ACKs (the
 * rewriter's own computation) or, for a capture that began
 * mid-connection, from the data: the first bytes one side sent located
 * in the other side's stream; a stream that repeats itself gives several
 * candidate offsets and is reported ambiguous rather than guessed. The
 * two captures may come from hosts whose clocks differ: the secondary's
 * timestamps are moved so that the first matching frames coincide, or by
 * a skew the user gives.
 */
#ifndef COLO_ALIGN_H
#define COLO_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "flow.h"
#include "tcp_offset.h"

enum colo_align_mode {
	COLO_ALIGN_AUTO,      /* handshake, else inferred from the data */
	COLO_ALIGN_HANDSHAKE, /* handshake only; other flows as captured */
	COLO_ALIGN_NONE,      /* as captured (taken after a rewriter) */
};

enum colo_align_how {
	COLO_ALIGNED_HANDSHAKE, /* from both SYN(/ACK)s */
	COLO_ALIGNED_INFERRED,	/* from the data: one candidate offset */
	/* auto mode, no offset known: not replayed (comparing with a
	 * guessed offset would only invent divergences, and their
	 * checkpoints would resynchronise every other flow) */
	COLO_ALIGN_AMBIGUOUS,	/* several candidates */
	COLO_ALIGN_NO_MATCH,	/* no common bytes found */
	COLO_ALIGN_NO_DATA,	/* too few payload bytes */
	COLO_ALIGN_ONE_SIDE,	/* the flow is in one capture only */
	COLO_ALIGN_AS_CAPTURED, /* the mode asked for no alignment */
};

struct colo_flow_align {
	struct colo_flow_key key; /* the guest's egress direction */
	enum colo_align_how how;
	struct colo_tcp_offset off; /* applied to the secondary's frames */
	uint32_t alt_seq;	    /* ambiguous: a second candidate offset */
	/* inferred: the matched bytes start at pri_seq (primary) and
	 * sec_seq (secondary, as captured) */
	uint32_t pri_seq, sec_seq;
	size_t needle; /* inferred/ambiguous: bytes matched */
	size_t frames[2];
	uint64_t first_ns; /* the flow's first frame, either side */
	/* The first frames of each side known to carry the same thing
	 * (the SYN(/ACK)s, or the matched bytes); COLO_NO_ANCHOR if none. */
	size_t anchor[2];
	/* inferred: the first frame of each side replayed; those captured
	 * before it are skipped. skipped[]: frames not replayed (all of
	 * them when no offset is known) */
	size_t start[2];
	size_t skipped[2];
};

#define COLO_NO_ANCHOR SIZE_MAX

struct colo_align_config {
	enum colo_align_mode mode;
	bool skew_auto;	 /* measure the skew on the first matching frames */
	int64_t skew_ns; /* otherwise: secondary clock - primary clock */
};

struct colo_alignment {
	struct colo_flow_align *flows; /* TCP flows in order of appearance */
	size_t n;
	int64_t skew_ns;  /* subtracted from the secondary's timestamps */
	bool skew_found;  /* auto: a pair of matching frames was found */
	size_t anchor[2]; /* auto: the pair it was measured on */
};

/* align.c APIs: */
void colo_align_config_default(struct colo_align_config *cfg);
/* Rewrites the secondary capture in place (sequence numbers and TSvals
 * of aligned flows, with valid checksums; timestamps by the skew) and
 * describes what was done in out. Returns 0, or -1 when memory is
 * exhausted; out must be freed in both cases. */
int colo_align(struct colo_capture *const side[2],
	       const struct colo_align_config *cfg, struct colo_alignment *out);
void colo_alignment_free(struct colo_alignment *a);
const char *colo_align_how_name(enum colo_align_how how);

#endif
