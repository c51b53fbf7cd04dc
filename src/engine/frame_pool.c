/*
 * frame_pool.c - size-classed free lists of frame buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "frame_pool.h"

static const size_t class_size[2] = { 2048, COLO_MAX_FRAME };
/* Cached buffers beyond this are returned to malloc: a burst of held
 * super-frames must not pin its peak memory forever. */
static const uint32_t class_keep[2] = { 8192, 512 };

struct colo_frame *colo_frame_get(struct colo_frame_pool *pool,
				  const uint8_t *frame, size_t len)
{
	int c = len <= class_size[0] ? 0 : 1;
	struct colo_frame *f;

	if (len > class_size[1])
		return NULL;
	f = pool->free[c];
	if (f) {
		pool->free[c] = f->next;
		pool->nfree[c]--;
	} else {
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
	int c = f->size_class;

	if (pool->nfree[c] >= class_keep[c]) {
		free(f);
		return;
	}
	f->next = pool->free[c];
	pool->free[c] = f;
	pool->nfree[c]++;
}

void colo_frame_pool_destroy(struct colo_frame_pool *pool)
{
	for (int c = 0; c < 2; c++) {
		while (pool->free[c]) {
			struct colo_frame *f = pool->free[c];
			pool->free[c] = f->next;
			free(f);
		}
		pool->nfree[c] = 0;
	}
}
