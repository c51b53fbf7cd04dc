/*
 * frame_pool.c - size-classed free lists of frame buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "frame_pool.h"

static const size_t class_size[2] = { 2048, COLO_MAX_FRAME };
/* Cached buffers beyond this are returned to malloc at once: a burst of
 * held super-frames must not pin its peak memory even until the trim. */
static const uint32_t class_keep[2] = { 8192, 512 };

void colo_frame_pool_init(struct colo_frame_pool *pool)
{
	memset(pool, 0, sizeof(*pool));
	for (int c = 0; c < 2; c++)
		pool->cls[c].max = class_keep[c];
}

struct colo_frame *colo_frame_get(struct colo_frame_pool *pool,
				  const uint8_t *frame, size_t len)
{
	int c = len <= class_size[0] ? 0 : 1;
	struct colo_frame *f;

	if (len > class_size[1])
		return NULL;
	f = colo_fc_get(&pool->cls[c]);
	if (!f) {
		f = malloc(sizeof(*f) + class_size[c]);
		if (!f)
			return NULL;
	}
	memset(f, 0, sizeof(*f));
	f->size_class = (uint8_t)c;
	f->len = (uint32_t)len;
	memcpy(f->data, frame, len);
	return f;
}

void colo_frame_put(struct colo_frame_pool *pool, struct colo_frame *f)
{
	if (!colo_fc_put(&pool->cls[f->size_class], f))
		free(f);
}

size_t colo_frame_pool_trim(struct colo_frame_pool *pool, bool period,
			    uint32_t *budget)
{
	size_t freed = 0;

	for (int c = 0; c < 2; c++) {
		if (period)
			colo_fc_period(&pool->cls[c]);
		freed += colo_fc_trim(&pool->cls[c], budget) *
			 (sizeof(struct colo_frame) + class_size[c]);
	}
	return freed;
}

size_t colo_frame_pool_cached(const struct colo_frame_pool *pool)
{
	size_t bytes = 0;

	for (int c = 0; c < 2; c++)
		bytes += pool->cls[c].n *
			 (sizeof(struct colo_frame) + class_size[c]);
	return bytes;
}

void colo_frame_pool_destroy(struct colo_frame_pool *pool)
{
	for (int c = 0; c < 2; c++)
		colo_fc_destroy(&pool->cls[c]);
}
