/*
 * byte_ring.c - growable power-of-two byte ring.
 */
#include <stdlib.h>
#include <string.h>

#include "byte_ring.h"

static int grow(struct colo_byte_ring *r, size_t need, size_t max)
{
	size_t cap = r->cap ? r->cap : 4096;
	uint8_t *nb;

	while (cap < need)
		cap *= 2;
	if (need > max)
		return -1;
	nb = malloc(cap);
	if (!nb)
		return -1;
	/* Linearise the old contents at the start of the new buffer. */
	size_t first = r->cap - r->head < r->len ? r->cap - r->head : r->len;
	if (r->len) {
		memcpy(nb, r->buf + r->head, first);
		memcpy(nb + first, r->buf, r->len - first);
	}
	free(r->buf);
	r->buf = nb;
	r->cap = cap;
	r->head = 0;
	return 0;
}

int colo_ring_push(struct colo_byte_ring *r, const uint8_t *p, size_t n,
		   size_t max)
{
	if (r->len + n > r->cap && grow(r, r->len + n, max) < 0)
		return -1;
	if (r->len + n > max)
		return -1;
	size_t tail = (r->head + r->len) & (r->cap - 1);
	size_t first = r->cap - tail < n ? r->cap - tail : n;
	memcpy(r->buf + tail, p, first);
	memcpy(r->buf, p + first, n - first);
	r->len += n;
	return 0;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (!memcmp(a, b, n))
		return n;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return i;
	return n;
}

size_t colo_ring_compare(const struct colo_byte_ring *r, const uint8_t *p,
			 size_t n)
{
	size_t first = r->cap - r->head < n ? r->cap - r->head : n;
	size_t d = first_diff(r->buf + r->head, p, first);

	if (d < first || first == n)
		return d;
	return first + first_diff(r->buf, p + first, n - first);
}

uint8_t colo_ring_byte(const struct colo_byte_ring *r, size_t i)
{
	return r->buf[(r->head + i) & (r->cap - 1)];
}

void colo_ring_consume(struct colo_byte_ring *r, size_t n)
{
	r->head = (r->head + n) & (r->cap ? r->cap - 1 : 0);
	r->len -= n;
	if (!r->len)
		r->head = 0;
}

void colo_ring_clear(struct colo_byte_ring *r)
{
	r->head = 0;
	r->len = 0;
}

void colo_ring_free(struct colo_byte_ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
