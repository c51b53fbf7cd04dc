/*
 * byte_ring.h - the bytes one side of a TCP flow has sent beyond what the
 * other side has matched so far.
 *
 * Only the side that is ahead has bytes here; when the other side catches
 * up its segment is compared straight against the ring and the ring is
 * consumed. A flow holds a ring only while it has unmatched bytes: the
 * first byte takes one from the comparer's pool, the last matched byte
 * gives it back. An idle flow therefore costs a NULL pointer, not a
 * buffer. Capacity is a power of two, grown on demand up to a bound;
 * sizes up to COLO_RING_POOLED come from per-size free lists that keep
 * what the recent load needed (free_cache.h), larger ones from malloc.
 */
#ifndef COLO_BYTE_RING_H
#define COLO_BYTE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "free_cache.h"

/* Header and bytes in one block. */
struct colo_byte_ring {
	size_t cap; /* power of two */
	size_t head;
	size_t len; /* never 0 while a flow holds the ring */
	uint8_t buf[];
};

/* The smallest ring takes one full-size segment (a secondary one MSS
 * ahead is the common case) at under 1.5x its size. */
#define COLO_RING_MIN	  2048
#define COLO_RING_CLASSES 8 /* 2 KiB .. 256 KiB */
#define COLO_RING_POOLED  ((size_t)COLO_RING_MIN << (COLO_RING_CLASSES - 1))

struct colo_ring_pool {
	struct colo_free_cache cls[COLO_RING_CLASSES];
	size_t in_use_bytes; /* capacity of the rings flows hold now */
};

static inline size_t colo_ring_len(const struct colo_byte_ring *r)
{
	return r ? r->len : 0;
}

/* byte_ring.c APIs: */
void colo_ring_pool_init(struct colo_ring_pool *pool);
/* Appends n bytes to *rp (taking a ring from the pool when *rp is NULL);
 * returns 0, or -1 if that would pass max bytes or memory is exhausted
 * (the ring is then unchanged). */
int colo_ring_push(struct colo_ring_pool *pool, struct colo_byte_ring **rp,
		   const uint8_t *p, size_t n, size_t max);
/* Compares n <= len bytes at the head with p; returns the index of the
 * first difference, or n when equal. */
size_t colo_ring_compare(const struct colo_byte_ring *r, const uint8_t *p,
			 size_t n);
uint8_t colo_ring_byte(const struct colo_byte_ring *r, size_t i);
/* Drops n <= len bytes from the head; a drained ring goes back to the
 * pool and *rp becomes NULL. */
void colo_ring_consume(struct colo_ring_pool *pool, struct colo_byte_ring **rp,
		       size_t n);
/* Gives *rp (if any) back to the pool, whatever it holds. */
void colo_ring_release(struct colo_ring_pool *pool, struct colo_byte_ring **rp);
/* Frees up to *budget pooled rings that stayed unused for a period
 * (ending one first when `period`; see free_cache.h); returns bytes. */
size_t colo_ring_pool_trim(struct colo_ring_pool *pool, bool period,
			   uint32_t *budget);
/* Bytes of pooled rings waiting for reuse. */
size_t colo_ring_pool_cached(const struct colo_ring_pool *pool);
void colo_ring_pool_destroy(struct colo_ring_pool *pool);

#endif
