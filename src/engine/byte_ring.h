/*
 * byte_ring.h - the bytes one side of a TCP flow has sent beyond what the
 * other side has matched so far.
 *
 * Only the side that is ahead has bytes here; when the other side catches
 * up its segment is compared straight against the ring and the ring is
 * consumed. Capacity is a power of two, grown on demand up to a bound.
 */
#ifndef COLO_BYTE_RING_H
#define COLO_BYTE_RING_H

#include <stddef.h>
#include <stdint.h>

struct colo_byte_ring {
	uint8_t *buf;
	size_t cap; /* power of two, or 0 */
	size_t head;
	size_t len;
};

/* byte_ring.c APIs: */
/* Appends n bytes; returns 0, or -1 if that would pass max bytes or
 * memory is exhausted (the ring is then unchanged). */
int colo_ring_push(struct colo_byte_ring *r, const uint8_t *p, size_t n,
		   size_t max);
/* Compares n <= len bytes at the head with p; returns the index of the
 * first difference, or n when equal. */
size_t colo_ring_compare(const struct colo_byte_ring *r, const uint8_t *p,
			 size_t n);
uint8_t colo_ring_byte(const struct colo_byte_ring *r, size_t i);
void colo_ring_consume(struct colo_byte_ring *r, size_t n);
void colo_ring_clear(struct colo_byte_ring *r);
void colo_ring_free(struct colo_byte_ring *r);

#endif
