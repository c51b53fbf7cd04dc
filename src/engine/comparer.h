/*
 * comparer.h - the COLO packet comparer: decides, frame by frame, whether
 * the primary guest's output may be released to the client.
 *
 * A library with no sockets and no clock of its own: the caller feeds
 * frames with a timestamp, calls tick() periodically, and receives
 * released frames and checkpoint requests through callbacks. The daemon,
 * the offline analyzer, the tests and the fuzzers all drive it the same way.
 *
 * Rules (see README "How the comparer decides"):
 *  - TCP is compared as two byte streams by sequence number, so primary
 *    and secondary may segment differently. A primary frame is released
 *    once all its payload bytes matched the secondary's AND its ACK number
 *    does not acknowledge more than the secondary has acknowledged; a FIN
 *    additionally needs the secondary's FIN at the same sequence number.
 *  - UDP, ICMP and other IP: datagrams compared in order per flow.
 *  - Non-IP from the primary is released at once; from the secondary dropped.
 *  - A divergence, a primary frame held longer than the compare timeout, or
 *    a queue over its bound asks for ONE checkpoint; further causes are
 *    counted until checkpoint_done(), which releases every held primary
 *    frame in arrival order and resets the per-flow comparison state.
 */
#ifndef COLO_COMPARER_H
#define COLO_COMPARER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flow.h"

enum colo_side { COLO_PRIMARY = 0, COLO_SECONDARY = 1 };

enum colo_cause {
	COLO_CAUSE_PAYLOAD,    /* different bytes / datagrams */
	COLO_CAUSE_CONTROL,    /* FIN at different sequence numbers */
	COLO_CAUSE_TIMEOUT,    /* primary frame unmatched for too long */
	COLO_CAUSE_QUEUE_FULL, /* a per-flow queue passed its bound */
	COLO_CAUSE_SOURCE_PORT, /* datagrams to one place, other ports */
	COLO_CAUSE_COUNT
};

const char *colo_cause_name(enum colo_cause c);

/* One reason to checkpoint. Passed to the event callback for every cause
 * found; `requested` is true for the one that opened a new episode. */
struct colo_divergence {
	enum colo_cause cause;
	bool requested;
	bool table_full; /* QUEUE_FULL because the flow table is full */
	struct colo_flow_key key;
	enum colo_pkt_kind kind;
	/* TCP: sequence number of the first differing byte (or of the oldest
	 * held primary frame for TIMEOUT). Datagrams: 0. */
	uint32_t seq;
	/* Datagrams: byte offset of the first difference inside the compared
	 * payload. TCP: 0. */
	uint32_t offset;
	int primary_byte; /* -1 when one side has no byte there */
	int secondary_byte;
	uint64_t held_ns; /* TIMEOUT: how long the frame was held */
	/* SOURCE_PORT: the other side's source port to the same place */
	uint16_t other_sport;
	/* TIMEOUT on TCP: where the streams stood, to tell a secondary that
	 * fell silent from one with a hole in its stream. */
	bool have_stream;
	uint32_t matched;	/* bytes before this are equal on both */
	uint32_t stream_end[2]; /* next in-order byte expected per side */
	uint32_t waiting[2];	/* segments held beyond a hole per side */
	uint64_t now_ns;
};

struct colo_comparer_ops {
	/* A primary frame may leave. `frame` is exactly what was fed in
	 * (virtio-net header included when vnet_hdr_len > 0). The buffer is
	 * only valid during the call. */
	void (*release)(void *opaque, const uint8_t *frame, size_t len,
			size_t vnet_hdr_len);
	/* A divergence was found (see struct colo_divergence). May be NULL. */
	void (*event)(void *opaque, const struct colo_divergence *d);
};

struct colo_comparer_config {
	uint64_t compare_timeout_ns; /* default 3000 ms */
	uint32_t max_queue;	     /* frames per flow queue, default 1024 */
	uint64_t idle_timeout_ns;    /* reclaim idle flows, default 120 s */
	uint64_t closed_linger_ns; /* reclaim closed TCP flows, default 10 s */
	uint32_t max_flows;	   /* flow table bound, default 4M (0) */
	uint64_t hash_key[2];	   /* SipHash key; {0,0}: random */
};

struct colo_stats {
	uint64_t frames_in[2], bytes_in[2];
	uint64_t released_frames, released_bytes;
	uint64_t released_at_checkpoint; /* of released_frames */
	uint64_t released_parts;	 /* matched fronts of TCP frames sent
					  * ahead of their rest */
	uint64_t matched_bytes;		 /* TCP stream bytes found equal */
	uint64_t matched_datagrams;
	uint64_t retransmits;	    /* primary TCP frames already matched */
	uint64_t non_ip[2];	    /* primary: released, secondary: dropped */
	uint64_t malformed[2];	    /* IP frames failing a length check */
	uint64_t secondary_dropped; /* secondary data not compared (diverged
				       flows, stale after checkpoint) */
	uint64_t divergences[COLO_CAUSE_COUNT];
	uint64_t checkpoint_requests[COLO_CAUSE_COUNT];
	uint64_t checkpoints_done;
	uint64_t flows, flows_created, flows_reclaimed;
	uint64_t flow_limit;	/* max_flows in force */
	uint64_t flows_refused; /* frames of new flows met a full table */
	uint64_t held_frames, held_bytes; /* primary frames waiting now */
	uint64_t held_frames_max;
	uint64_t secondary_buffered_bytes; /* secondary bytes/datagrams waiting
					    */
	/* Memory: byte-ring capacity lent to flows whose secondary leads,
	 * buffers and flow entries cached for reuse, and everything the
	 * periodic trim has given back so far. */
	uint64_t ring_bytes, cached_bytes, trimmed_bytes;
};

/* The flow table's default bound: room for the million connections a
 * big service keeps (both directions, UDP and closed lingerers too),
 * at about 200 bytes a flow before any data is held. */
#define COLO_COMPARER_MAX_FLOWS_DEFAULT (4u * 1024 * 1024)

struct colo_comparer;

/* comparer.c APIs: */
void colo_comparer_config_default(struct colo_comparer_config *cfg);
/* Returns NULL only when memory is exhausted. */
struct colo_comparer *colo_comparer_new(const struct colo_comparer_config *cfg,
					const struct colo_comparer_ops *ops,
					void *opaque);
void colo_comparer_free(struct colo_comparer *c);
/* Feed one frame from one side. Any bytes are safe. The frame is copied
 * if it has to be held. */
void colo_comparer_input(struct colo_comparer *c, enum colo_side side,
			 const uint8_t *frame, size_t len, size_t vnet_hdr_len,
			 uint64_t now_ns);
/* Timeouts and reclaiming of idle flows; call every scan interval. */
void colo_comparer_tick(struct colo_comparer *c, uint64_t now_ns);
/* The checkpoint finished: release everything held, reset comparison. */
void colo_comparer_checkpoint_done(struct colo_comparer *c, uint64_t now_ns);
bool colo_comparer_checkpoint_pending(const struct colo_comparer *c);
/* Release everything held without comparison (data-path failover). */
void colo_comparer_release_all(struct colo_comparer *c);
const struct colo_stats *colo_comparer_stats(const struct colo_comparer *c);

/* stats.c APIs: */
/* Human-readable, one "name value" per line. */
void colo_stats_print(const struct colo_stats *s, FILE *f);
/* One line: "divergence payload tcp 10.0.0.1:80 -> ... seq 1234 ..." */
int colo_divergence_format(const struct colo_divergence *d, char *buf,
			   size_t n);

#endif
