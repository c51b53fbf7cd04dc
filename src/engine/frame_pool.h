/*
 * frame_pool.h - storage for frames the comparer must hold.
 *
 * Held frames are recycled through free lists in two size classes (MTU
 * frames and 64 KiB GSO super-frames), so the steady state does no malloc
 * per packet; the lists keep what the recent load needed and give back
 * the rest of a burst when trimmed (free_cache.h). Each frame sits on two
 * intrusive lists at once: its flow's queue and the comparer's global
 * arrival-order list (which gives both "release everything in arrival
 * order" and "oldest held frame" in O(1)).
 */
#ifndef COLO_FRAME_POOL_H
#define COLO_FRAME_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "free_cache.h"

struct colo_flow;

struct colo_frame {
	struct colo_frame *next, *prev;         /* flow queue */
	struct colo_frame *g_next, *g_prev;     /* global arrival order */
	struct colo_flow *flow;
	uint64_t arrival_ns;
	uint32_t len;         /* whole frame, vnet header included */
	uint16_t vnet_hdr_len;
	uint8_t size_class;
	uint8_t ooo;          /* TCP: bytes beyond a hole, not yet in the stream */
	uint8_t tcp_flags;
	/* TCP: sequence range of the payload and the ACK number */
	uint32_t seq, seq_end, ack;
	/* where the compared payload starts, and its length */
	uint32_t payload_off, payload_len;
	/* TCP, for releasing a matched prefix on its own (tcp_split.c):
	 * payload bytes already sent, header offsets and ip version, and
	 * the virtio-net gso_type the frame came with. */
	uint32_t sent;
	uint16_t l3_off, l4_off;
	uint8_t ipver, gso_type;
	uint8_t data[];
};

struct colo_frame_pool {
	struct colo_free_cache cls[2];
};

/* frame_pool.c APIs: */
void colo_frame_pool_init(struct colo_frame_pool *pool);
/* Copies frame[0..len) into a pooled buffer; NULL if len is too large or
 * memory is exhausted. */
struct colo_frame *colo_frame_get(struct colo_frame_pool *pool,
				  const uint8_t *frame, size_t len);
void colo_frame_put(struct colo_frame_pool *pool, struct colo_frame *f);
/* Frees up to *budget cached buffers that stayed unused for a period
 * (ending one first when `period`; see free_cache.h); returns bytes. */
size_t colo_frame_pool_trim(struct colo_frame_pool *pool, bool period,
			    uint32_t *budget);
/* Bytes of buffers cached for reuse. */
size_t colo_frame_pool_cached(const struct colo_frame_pool *pool);
void colo_frame_pool_destroy(struct colo_frame_pool *pool);

/* The largest frame accepted anywhere: QEMU's 4096 + 65536 byte buffer. */
#define COLO_MAX_FRAME (4096 + 65536)

#endif
