/*
 * byte_ring.c - power-of-two byte rings lent to flows by a pool.
 *
 * Rings are taken when a flow's secondary gets ahead and given back the
 * moment the primary catches up, which happens on nearly every segment of
 * a busy connection: the pool's free lists make that a pointer swap, not
 * a malloc. Each size class may cache up to CLASS_KEEP_BYTES; the trim
 * gives back what a burst left behind.
 */
#include <stdlib.h>
#include <string.h>

#include "byte_ring.h"

#define CLASS_KEEP_BYTES ((size_t)64 << 20)

static size_t class_cap(int c)
{
	return (size_t)COLO_RING_MIN << c;
}

/* The class of a ring of capacity cap (a power of two, at least
 * COLO_RING_MIN), or -1 for unpooled sizes. */
static int class_of(size_t cap)
{
	if (cap > COLO_RING_POOLED)
		return -1;
	return __builtin_ctzll(cap) - __builtin_ctzll(COLO_RING_MIN);
}

void colo_ring_pool_init(struct colo_ring_pool *pool)
{
	memset(pool, 0, sizeof(*pool));
	for (int c = 0; c < COLO_RING_CLASSES; c++)
		pool->cls[c].max = (uint32_t)(CLASS_KEEP_BYTES / class_cap(c));
}

static struct colo_byte_ring *ring_get(struct colo_ring_pool *pool, size_t need)
{
	size_t cap = COLO_RING_MIN;
	struct colo_byte_ring *r = NULL;

	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return NULL;
		cap *= 2;
	}
	int c = class_of(cap);
	if (c >= 0)
		r = colo_fc_get(&pool->cls[c]);
	if (!r) {
		if (cap > SIZE_MAX - sizeof(*r))
			return NULL;
		r = malloc(sizeof(*r) + cap);
		if (!r)
			return NULL;
	}
	r->cap = cap;
	r->head = 0;
	r->len = 0;
	pool->in_use_bytes += cap;
	return r;
}

static void ring_put(struct colo_ring_pool *pool, struct colo_byte_ring *r)
{
	int c = class_of(r->cap);

	pool->in_use_bytes -= r->cap;
	if (c < 0 || !colo_fc_put(&pool->cls[c], r))
		free(r);
}

/* Moves r's contents, linearised, into a ring of at least need bytes. */
static struct colo_byte_ring *grow(struct colo_ring_pool *pool,
				   struct colo_byte_ring *r, size_t need)
{
	struct colo_byte_ring *nr = ring_get(pool, need);

	if (!nr)
		return NULL;
	if (r) {
		size_t first =
			r->cap - r->head < r->len ? r->cap - r->head : r->len;
		memcpy(nr->buf, r->buf + r->head, first);
		memcpy(nr->buf + first, r->buf, r->len - first);
		nr->len = r->len;
		ring_put(pool, r);
	}
	return nr;
}

int colo_ring_push(struct colo_ring_pool *pool, struct colo_byte_ring **rp,
		   const uint8_t *p, size_t n, size_t max)
{
	struct colo_byte_ring *r = *rp;
	size_t len = colo_ring_len(r);

	if (!n)
		return 0;
	if (n > max || len > max - n)
		return -1;
	if (!r || len + n > r->cap) {
		r = grow(pool, r, len + n);
		if (!r)
			return -1;
		*rp = r;
	}
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

void colo_ring_consume(struct colo_ring_pool *pool, struct colo_byte_ring **rp,
		       size_t n)
{
	struct colo_byte_ring *r = *rp;

	if (!r || !n)
		return;
	if (n >= r->len) {
		colo_ring_release(pool, rp);
		return;
	}
	r->head = (r->head + n) & (r->cap - 1);
	r->len -= n;
}

void colo_ring_release(struct colo_ring_pool *pool, struct colo_byte_ring **rp)
{
	if (*rp)
		ring_put(pool, *rp);
	*rp = NULL;
}

size_t colo_ring_pool_trim(struct colo_ring_pool *pool, bool period,
			   uint32_t *budget)
{
	size_t freed = 0;

	for (int c = 0; c < COLO_RING_CLASSES; c++) {
		if (period)
			colo_fc_period(&pool->cls[c]);
		freed += colo_fc_trim(&pool->cls[c], budget) * class_cap(c);
	}
	return freed;
}

size_t colo_ring_pool_cached(const struct colo_ring_pool *pool)
{
	size_t bytes = 0;

	for (int c = 0; c < COLO_RING_CLASSES; c++)
		bytes += pool->cls[c].n * class_cap(c);
	return bytes;
}

void colo_ring_pool_destroy(struct colo_ring_pool *pool)
{
	for (int c = 0; c < COLO_RING_CLASSES; c++)
		colo_fc_destroy(&pool->cls[c]);
}
