/*
 * free_cache.c - trimming the decaying free lists of free_cache.h.
 */
#include <stdlib.h>

#include "free_cache.h"

static void free_some(struct colo_free_cache *fc, uint32_t k)
{
	while (k-- && fc->head) {
		void *o = fc->head;

		memcpy(&fc->head, o, sizeof(fc->head));
		fc->n--;
		free(o);
	}
}

uint32_t colo_fc_trim(struct colo_free_cache *fc)
{
	uint32_t k = fc->low < fc->n ? fc->low : fc->n;

	free_some(fc, k);
	fc->low = fc->n;
	return k;
}

void colo_fc_destroy(struct colo_free_cache *fc)
{
	free_some(fc, fc->n);
	fc->n = fc->low = 0;
}
