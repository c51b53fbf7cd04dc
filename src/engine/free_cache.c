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

void colo_fc_period(struct colo_free_cache *fc)
{
	fc->excess = fc->low;
	fc->low = fc->n;
}

uint32_t colo_fc_trim(struct colo_free_cache *fc, uint32_t *budget)
{
	uint32_t k = fc->excess < fc->n ? fc->excess : fc->n;

	if (k > *budget)
		k = *budget;
	free_some(fc, k);
	*budget -= k;
	fc->excess -= k;
	if (fc->low > fc->n)
		fc->low = fc->n;
	return k;
}

void colo_fc_destroy(struct colo_free_cache *fc)
{
	free_some(fc, fc->n);
	fc->n = fc->low = fc->excess = 0;
}
